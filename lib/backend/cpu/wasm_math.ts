/**
 * exp and tanh on f64x2 lanes for the wasm fused loops. Inputs are f32 values widened to f64;
 * results are accurate to a few f64 ulps, so after rounding to f32 they equal the reference's
 * Math.exp / Math.tanh rounded to f32 except in rare double-rounding cases (then 1 f32 ulp).
 *
 * exp(x) = 2^m * T[j] * (1 + q(r)) with k = round(64 x / ln 2), m = k >> 6, j = k & 63,
 * r = x - k ln2/64 (|r| <= ln2/128) and q a degree-6 Taylor polynomial.
 */
import { type FuncBuilder, type Local, OP, SIMD } from "./wasm_emit.ts";

/** 2^(j/64), j = 0..63: written into wasm memory at the table address. */
export const EXP_TABLE = Float64Array.from({ length: 64 }, (_, j) => Math.pow(2, j / 64));
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

const LN2_64 = Math.LN2 / 64;
// ln2/64 split so that k * hi is exact for |k| < 2^20
const LN2_64_HI = Math.round(LN2_64 * 2 ** 32) / 2 ** 32;
const LN2_64_LO = LN2_64 - LN2_64_HI;

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
  const splat = (v: number) => f.f64x2(v);
  // xc = clamp(x, -104, 89): beyond these exp rounds to 0 / +inf in f32; pmax / pmin are one
  // instruction each (max / min need NaN and -0 fix-ups on x86) and pass a NaN x through
  f.get(x);
  splat(-104);
  f.simd(V.f64x2Pmax);
  splat(89);
  f.simd(V.f64x2Pmin).set(t.a);
  // k = nearest(xc * 64/ln2)
  f.get(t.a);
  splat(64 / Math.LN2);
  f.simd(V.f64x2Mul).simd(V.f64x2Nearest).set(t.b);
  // r = (xc - k*hi) - k*lo
  f.get(t.a).get(t.b);
  splat(LN2_64_HI);
  f.simd(V.f64x2Mul).simd(V.f64x2Sub).get(t.b);
  splat(LN2_64_LO);
  f.simd(V.f64x2Mul).simd(V.f64x2Sub).set(t.a);
  // q = r * (1 + r * (1/2 + r * (1/6 + r * (1/24 + r * (1/120 + r / 720)))))
  f.get(t.a);
  splat(1 / 720);
  f.simd(V.f64x2Mul);
  for (const c of [1 / 120, 1 / 24, 1 / 6, 1 / 2, 1]) {
    splat(c);
    f.simd(V.f64x2Add).get(t.a).simd(V.f64x2Mul);
  }
  f.set(t.a);
  // k as i32 lanes 0,1: j = k & 63, m = k >> 6
  f.get(t.b).simd(V.i32x4TruncSatF64x2SZero).set(t.b);
  // T[j] for both lanes
  for (let lane = 0; lane < 2; lane++) {
    if (lane === 1) f.get(t.c);
    f.get(t.b).simd(V.i32x4ExtractLane, lane).i32(63).op(0x71 /* i32.and */).i32(3).op(OP.i32Shl);
    f.mem(OP.f64Load, 3, table);
    if (lane === 0) f.simd(SIMD.f64x2Splat);
    else f.simd(V.f64x2ReplaceLane, 1);
    f.set(t.c);
  }
  // 2^m as f64 bits: (m + 1023) << 52
  f.get(t.b).i32(6).simd(V.i32x4ShrS).simd(V.i64x2ExtendLowI32x4S);
  f.v128(i64x2Bytes(1023)).simd(V.i64x2Add).i32(52).simd(V.i64x2Shl);
  // exp = 2^m * (T + T*q)
  f.get(t.c).get(t.c).get(t.a).simd(V.f64x2Mul).simd(V.f64x2Add).simd(V.f64x2Mul).set(out);
  // No fix-ups: exp(89) in f64 rounds to +inf in f32 and exp(-104) to 0, as exp of anything
  // beyond does; NaN passes the clamp (pmax / pmin keep their first operand when it is NaN)
  // and the arithmetic. Every caller rounds the result to f32 (or clamps its argument).
}

/**
 * out = tanh(x) on f64x2 lanes: an odd Taylor polynomial for |x| < 1/32, else
 * sign(x) * (1 - 2 / (exp(2|x|) + 1)) with 2|x| capped at 40 (tanh is 1 in f64 beyond).
 */
export function emitTanh(f: FuncBuilder, x: Local, out: Local, t: MathTemps, table: number): void {
  const splat = (v: number) => f.f64x2(v);
  // e = exp(min(2|x|, 40)) into t.e (t.d holds the argument)
  f.get(x).simd(V.f64x2Abs);
  splat(2);
  f.simd(V.f64x2Mul);
  splat(40);
  f.simd(V.f64x2Pmin).set(t.d);
  emitExp(f, t.d, t.e, t, table);
  // big = 1 - 2 / (e + 1)
  splat(1);
  splat(2);
  f.get(t.e);
  splat(1);
  f.simd(V.f64x2Add).simd(V.f64x2Div).simd(V.f64x2Sub);
  f.set(t.e); // >= 0; the sign of x is applied at the end
  // small = x + x^3 * (-1/3 + x^2 * (2/15 + x^2 * (-17/315 + x^2 * 62/2835)))
  f.get(x).get(x).simd(V.f64x2Mul).set(t.d);
  f.get(t.d);
  splat(62 / 2835);
  f.simd(V.f64x2Mul);
  for (const c of [-17 / 315, 2 / 15, -1 / 3]) {
    splat(c);
    f.simd(V.f64x2Add).get(t.d).simd(V.f64x2Mul);
  }
  // stack: x^2 * poly; times x, plus x  (the last multiply above already applied one x^2)
  f.get(x).simd(V.f64x2Mul).get(x).simd(V.f64x2Add);
  // select small where |x| < 1/32 (false for NaN, which the big branch propagates)
  f.get(t.e);
  f.get(x).simd(V.f64x2Abs);
  splat(1 / 32);
  f.simd(V.f64x2Lt).simd(SIMD.v128Bitselect);
  // copy the sign of x (odd function; keeps tanh(-0) = -0)
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
