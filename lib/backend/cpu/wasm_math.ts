/**
 * exp and tanh on f64x2 lanes for the wasm fused loops. Inputs are f32 values widened to f64;
 * results are accurate to a few f64 ulps, so after rounding to f32 they equal the reference's
 * Math.exp / Math.tanh rounded to f32 except in rare double-rounding cases (then 1 f32 ulp).
 *
 * exp(x) = 2^m * T[j] * (1 + q(r)) with k = round(256 x / ln 2), m = k >> 8, j = k & 255,
 * r = x - k ln2/256 (|r| <= ln2/512) and q a degree-4 Taylor polynomial (error below
 * 2^-54 of e^r); tanh from expm1.
 */
import { type FuncBuilder, type Local, OP, SIMD } from "./wasm_emit.ts";

/** Table entries (a power of two): 2^(j/N), j = 0..N-1. */
const N = 256, N_BITS = 8;
/** 2^(j/N), j = 0..N-1: written into wasm memory at the table address. */
export const EXP_TABLE = Float64Array.from({ length: N }, (_, j) => Math.pow(2, j / N));
export const EXP_TABLE_BYTES = EXP_TABLE.byteLength;

/** SIMD opcodes used only here. */
const V = {
  f64x2ReplaceLane: 0x22,
  i32x4ExtractLane: 0x1b,
  f64x2Ne: 0x48,
  f64x2Lt: 0x49,
  f64x2Gt: 0x4a,
  v128And: 0x4e,
  f64x2Nearest: 0x94,
  i32x4ShrS: 0xac,
  i64x2ExtendLowI32x4S: 0xc7,
  i64x2Shl: 0xcb,
  i64x2Add: 0xce,
  f64x2Abs: 0xec,
  f64x2Neg: 0xed,
  f64x2Add: 0xf0,
  f64x2Sub: 0xf1,
  f64x2Mul: 0xf2,
  f64x2Div: 0xf3,
  f64x2Min: 0xf4,
  f64x2Max: 0xf5,
  f64x2Pmin: 0xf6,
  f64x2Pmax: 0xf7,
  i32x4TruncSatF64x2SZero: 0xfc,
} as const;

const LN2_N = Math.LN2 / N;
// ln2/N split so that k * hi is exact for |k| < 2^20
const LN2_N_HI = Math.round(LN2_N * 2 ** 32) / 2 ** 32;
const LN2_N_LO = LN2_N - LN2_N_HI;

/** Scratch v128 locals for the math routines (allocate once per function). */
export interface MathTemps {
  a: Local;
  b: Local;
  c: Local;
  d: Local;
  e: Local;
}

export function mathTemps(f: FuncBuilder): MathTemps {
  return {
    a: f.local("v128"),
    b: f.local("v128"),
    c: f.local("v128"),
    d: f.local("v128"),
    e: f.local("v128"),
  };
}

/** out = exp(x) on f64x2 lanes (x is left intact). */
export function emitExp(f: FuncBuilder, x: Local, out: Local, t: MathTemps, table: number): void {
  // xc = clamp(x, -104, 89): beyond these exp rounds to 0 / +inf in f32; pmax / pmin are one
  // instruction each (max / min need NaN and -0 fix-ups on x86) and pass a NaN x through.
  // No fix-ups after: exp(89) in f64 rounds to +inf in f32 and exp(-104) to 0, as exp of
  // anything beyond does, and NaN passes the arithmetic. Callers round the result to f32.
  f.get(x);
  f.f64x2(-104);
  f.simd(V.f64x2Pmax);
  f.f64x2(89);
  f.simd(V.f64x2Pmin).set(t.a);
  expParts(f, t.a, t, table);
  // exp = s + s*q
  f.get(t.c).get(t.c).get(t.a).simd(V.f64x2Mul).simd(V.f64x2Add).set(out);
}

/**
 * exp(y) = s * (1 + q) for y in [-104, 89] (y in `y`, which is overwritten): s = 2^m * T[j]
 * into t.c and q into t.a, with k = round(N y / ln 2), m = k >> log2 N, j = k & (N - 1),
 * r = y - k ln2/N (|r| <= ln2/2N) and q a degree-4 Taylor polynomial of e^r - 1.
 */
function expParts(f: FuncBuilder, y: Local, t: MathTemps, table: number): void {
  const splat = (v: number) => f.f64x2(v);
  // k = nearest(y * N/ln2)
  f.get(y);
  splat(N / Math.LN2);
  f.simd(V.f64x2Mul).simd(V.f64x2Nearest).set(t.b);
  // r = (y - k*hi) - k*lo
  f.get(y).get(t.b);
  splat(LN2_N_HI);
  f.simd(V.f64x2Mul).simd(V.f64x2Sub).get(t.b);
  splat(LN2_N_LO);
  f.simd(V.f64x2Mul).simd(V.f64x2Sub).set(t.a);
  // q = r * (1 + r * (1/2 + r * (1/6 + r / 24)))
  f.get(t.a);
  splat(1 / 24);
  f.simd(V.f64x2Mul);
  for (const c of [1 / 6, 1 / 2, 1]) {
    splat(c);
    f.simd(V.f64x2Add).get(t.a).simd(V.f64x2Mul);
  }
  f.set(t.a);
  // k as i32 lanes 0,1: j = k & (N - 1), m = k >> log2 N
  f.get(t.b).simd(V.i32x4TruncSatF64x2SZero).set(t.b);
  // T[j] for both lanes
  for (let lane = 0; lane < 2; lane++) {
    if (lane === 1) f.get(t.c);
    f.get(t.b).simd(V.i32x4ExtractLane, lane).i32(N - 1).op(0x71 /* i32.and */).i32(3).op(
      OP.i32Shl,
    );
    f.mem(OP.f64Load, 3, table);
    if (lane === 0) f.simd(SIMD.f64x2Splat);
    else f.simd(V.f64x2ReplaceLane, 1);
    f.set(t.c);
  }
  // s = 2^m * T, 2^m as f64 bits: (m + 1023) << 52
  f.get(t.b).i32(N_BITS).simd(V.i32x4ShrS).simd(V.i64x2ExtendLowI32x4S);
  f.v128(i64x2Bytes(1023)).simd(V.i64x2Add).i32(52).simd(V.i64x2Shl);
  f.get(t.c).simd(V.f64x2Mul).set(t.c);
}

/**
 * out = tanh(x) on f64x2 lanes: with e = expm1(-2|x|) (clamped at -40, where tanh is 1 in
 * f64), tanh |x| = -e / (2 + e), then the sign of x. expm1 = (s - 1) + s*q from expParts has
 * no cancellation near 0 (there k = 0, s = 1 exactly), so one formula serves every |x|.
 */
export function emitTanh(f: FuncBuilder, x: Local, out: Local, t: MathTemps, table: number): void {
  // y = max(-2|x|, -40) into t.d (pmax keeps a NaN first operand)
  f.get(x).simd(V.f64x2Abs);
  f.f64x2(-2);
  f.simd(V.f64x2Mul);
  f.f64x2(-40);
  f.simd(V.f64x2Pmax).set(t.d);
  expParts(f, t.d, t, table);
  // e = (s - 1) + s*q
  f.get(t.c);
  f.f64x2(1);
  f.simd(V.f64x2Sub).get(t.c).get(t.a).simd(V.f64x2Mul).simd(V.f64x2Add).set(t.e);
  // -e / (2 + e) >= 0
  f.get(t.e).simd(V.f64x2Neg);
  f.f64x2(2);
  f.get(t.e).simd(V.f64x2Add).simd(V.f64x2Div);
  // the sign of x (odd function; keeps tanh(-0) = -0)
  f.simd(V.f64x2Abs).get(x).v128(signMaskBytes()).simd(V.v128And).simd(SIMD.v128Or).set(out);
}

function signMaskBytes(): number[] {
  const b = new BigUint64Array([1n << 63n, 1n << 63n]);
  return [...new Uint8Array(b.buffer)];
}

function i64x2Bytes(v: number): number[] {
  const b = new BigInt64Array([BigInt(v), BigInt(v)]);
  return [...new Uint8Array(b.buffer)];
}
