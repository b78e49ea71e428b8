/**
 * The fused attention kernels of the CPU executable (lib/ir/attention.ts): per (batch, head)
 * item and per block of query rows, the score block S = Q K^T on the GEMM (the native BLAS or
 * the wasm one), the softmax rows in wasm SIMD (`softmax_rows`, exp on f64x2 lanes as the fused
 * loops), then O = P V on the GEMM, normalized by the row sums afterwards (N x D work rather than
 * N x M). Only one block of scores lives at a time, in per-thread scratch: nothing of size
 * [.., N, M] reaches the arena. A block spans all M keys, so each row's softmax is exact in one
 * pass over cached scores (FlashAttention's running rescale is what a block of fewer keys needs).
 *
 * The backward recomputes S, turns it into P = exp(scale S - lse) and dS = scale P (dP - delta)
 * (`grad_rows`, delta = rowsum(dO * O) - dlse), and accumulates dV += P^T dO, dK += dS^T Q
 * and writes dQ = dS K, all on the GEMM.
 *
 * Items are independent: threads take ranges of them (task_records.ts KIND_ATTENTION).
 */
import { buildModule, FuncBuilder, type Local, OP, SIMD } from "./wasm_emit.ts";
import { emitExp, mathTemps } from "./wasm_math.ts";
import type { GemmFn } from "./task_records.ts";

/** Query rows per block: the block's scores (rows x M f32) stay within about 256 KiB. */
export function blockRows(n: number, m: number): number {
  return Math.max(4, Math.min(n, Math.floor(65536 / Math.max(1, m))));
}

/** Scratch bytes per thread: the score and dP blocks, and two f64 per row. */
export function attentionScratchBytes(n: number, m: number): number {
  const br = blockRows(n, m);
  return Math.ceil((2 * br * m * 4 + br * 16) / 64) * 64;
}

const F64X2 = {
  extractLane: 0x21,
  add: 0xf0,
  sub: 0xf1,
  mul: 0xf2,
} as const;
const F32X4_MAX = 0xe9;
const HIGH_TO_LOW = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const LOW_PAIR_CONCAT = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

/** Pushes the f64x2 of f32 lanes 0,1 (`high`: 2,3) of v128 local `v`. */
function widen(f: FuncBuilder, v: Local, high: boolean): void {
  f.get(v);
  if (high) f.get(v).simd(SIMD.i8x16Shuffle, ...HIGH_TO_LOW);
  f.simd(SIMD.f64x2PromoteLowF32x4);
}

/** `row = base + r * ld`, `p = row + 4 j`. */
function addr(f: FuncBuilder, base: Local, i: Local, stride: Local | number, out: Local): void {
  f.get(base).get(i);
  if (typeof stride === "number") f.i32(stride);
  else f.get(stride);
  f.op(OP.i32Mul).op(OP.i32Add).set(out);
}

/**
 * softmax_rows(s, rows, cols, ld, scale, stats): per row r of the f32 block at s (rows `ld`
 * bytes apart), m = scale * max s, s <- exp(scale s - m) (unnormalized), stats[r] = (m, sum)
 * as two f64.
 */
function softmaxRows(table: number): FuncBuilder {
  const f = new FuncBuilder("softmax_rows", ["i32", "i32", "i32", "i32", "f64", "i32"]);
  const [s, rows, cols, ld, scale, stats] = f.params;
  const r = f.local("i32"), j = f.local("i32"), row = f.local("i32"), p = f.local("i32");
  const cols4 = f.local("i32");
  const m = f.local("f32"), mm = f.local("f64"), tail = f.local("f64");
  const v = f.local("v128"), mx = f.local("v128"), x = f.local("v128"), e = f.local("v128");
  const acc = f.local("v128"), lo = f.local("v128"), hi = f.local("v128");
  const scv = f.local("v128"), mmv = f.local("v128");
  const t = mathTemps(f);
  f.get(cols).i32(-4).op(OP.i32And).set(cols4);
  f.get(scale).simd(SIMD.f64x2Splat).set(scv);
  const scaled = () => f.get(scv).simd(F64X2.mul).get(mmv).simd(F64X2.sub).set(x);
  f.forRange(r, 0, rows, 1, () => {
    addr(f, s, r, ld, row);
    // the row max: four lanes, then the lanes and the tail
    f.f32x4(-Infinity).set(mx);
    f.forRange(j, 0, cols4, 4, () => {
      addr(f, row, j, 4, p);
      f.get(mx).get(p).simdMem(SIMD.v128Load, 0).simd(F32X4_MAX).set(mx);
    });
    f.f32(-Infinity).set(m);
    for (let lane = 0; lane < 4; lane++) {
      f.get(mx).simd(SIMD.f32x4ExtractLane, lane).get(m).op(0x97 /* f32.max */).set(m);
    }
    f.forRange(j, cols4, cols, 1, () => {
      addr(f, row, j, 4, p);
      f.get(p).mem(OP.f32Load, 0).get(m).op(0x97).set(m);
    });
    f.get(m).op(OP.f64PromoteF32).get(scale).op(OP.f64Mul).set(mm);
    f.get(mm).simd(SIMD.f64x2Splat).set(mmv);
    f.f64x2(0).set(acc);
    f.forRange(j, 0, cols4, 4, () => {
      addr(f, row, j, 4, p);
      f.get(p).simdMem(SIMD.v128Load, 0).set(v);
      widen(f, v, false);
      scaled();
      emitExp(f, x, e, t, table);
      f.get(acc).get(e).simd(F64X2.add).set(acc);
      f.get(e).simd(SIMD.f32x4DemoteF64x2Zero).set(lo);
      widen(f, v, true);
      scaled();
      emitExp(f, x, e, t, table);
      f.get(acc).get(e).simd(F64X2.add).set(acc);
      f.get(e).simd(SIMD.f32x4DemoteF64x2Zero).set(hi);
      f.get(p).get(lo).get(hi).simd(SIMD.i8x16Shuffle, ...LOW_PAIR_CONCAT);
      f.simdMem(SIMD.v128Store, 0);
    });
    f.f64(0).set(tail);
    f.forRange(j, cols4, cols, 1, () => {
      addr(f, row, j, 4, p);
      f.get(p).mem(OP.f32Load, 0).op(OP.f64PromoteF32).simd(SIMD.f64x2Splat);
      scaled();
      emitExp(f, x, e, t, table);
      f.get(e).simd(F64X2.extractLane, 0).get(tail).op(OP.f64Add).set(tail);
      f.get(p).get(e).simd(F64X2.extractLane, 0).op(OP.f32DemoteF64).mem(OP.f32Store, 0);
    });
    addr(f, stats, r, 16, p);
    f.get(p).get(mm).mem(OP.f64Store, 0);
    f.get(p).get(acc).simd(F64X2.extractLane, 0).get(acc).simd(F64X2.extractLane, 1);
    f.op(OP.f64Add).get(tail).op(OP.f64Add).mem(OP.f64Store, 0, 8);
  });
  return f;
}

/**
 * grad_rows(s, dp, rows, cols, ld, scale, stats): with stats[r] = (lse, delta) as two f64,
 * p = exp(scale s - lse) into s and scale p (dp - delta) into dp.
 */
function gradRows(table: number): FuncBuilder {
  const f = new FuncBuilder("grad_rows", ["i32", "i32", "i32", "i32", "i32", "f64", "i32"]);
  const [s, dp, rows, cols, ld, scale, stats] = f.params;
  const r = f.local("i32"), j = f.local("i32"), row = f.local("i32"), drow = f.local("i32");
  const p = f.local("i32"), q = f.local("i32"), cols4 = f.local("i32");
  const v = f.local("v128"), w = f.local("v128"), x = f.local("v128"), e = f.local("v128");
  const plo = f.local("v128"), phi = f.local("v128"), dlo = f.local("v128"), dhi = f.local("v128");
  const scv = f.local("v128"), lsev = f.local("v128"), deltav = f.local("v128");
  const t = mathTemps(f);
  f.get(cols).i32(-4).op(OP.i32And).set(cols4);
  f.get(scale).simd(SIMD.f64x2Splat).set(scv);
  /** From the widened s on the stack and the widened dp pushed by `dpw`: p and ds (f64x2). */
  const pair = (dpw: () => void, pOut: Local, dOut: Local) => {
    f.get(scv).simd(F64X2.mul).get(lsev).simd(F64X2.sub).set(x);
    emitExp(f, x, e, t, table);
    f.get(e).simd(SIMD.f32x4DemoteF64x2Zero).set(pOut);
    dpw();
    f.get(deltav).simd(F64X2.sub).get(e).simd(F64X2.mul).get(scv).simd(F64X2.mul);
    f.simd(SIMD.f32x4DemoteF64x2Zero).set(dOut);
  };
  f.forRange(r, 0, rows, 1, () => {
    addr(f, s, r, ld, row);
    addr(f, dp, r, ld, drow);
    addr(f, stats, r, 16, p);
    f.get(p).mem(OP.f64Load, 0).simd(SIMD.f64x2Splat).set(lsev);
    f.get(p).mem(OP.f64Load, 0, 8).simd(SIMD.f64x2Splat).set(deltav);
    f.forRange(j, 0, cols4, 4, () => {
      addr(f, row, j, 4, p);
      addr(f, drow, j, 4, q);
      f.get(p).simdMem(SIMD.v128Load, 0).set(v);
      f.get(q).simdMem(SIMD.v128Load, 0).set(w);
      widen(f, v, false);
      pair(() => widen(f, w, false), plo, dlo);
      widen(f, v, true);
      pair(() => widen(f, w, true), phi, dhi);
      f.get(p).get(plo).get(phi).simd(SIMD.i8x16Shuffle, ...LOW_PAIR_CONCAT);
      f.simdMem(SIMD.v128Store, 0);
      f.get(q).get(dlo).get(dhi).simd(SIMD.i8x16Shuffle, ...LOW_PAIR_CONCAT);
      f.simdMem(SIMD.v128Store, 0);
    });
    f.forRange(j, cols4, cols, 1, () => {
      addr(f, row, j, 4, p);
      addr(f, drow, j, 4, q);
      f.get(p).mem(OP.f32Load, 0).op(OP.f64PromoteF32).simd(SIMD.f64x2Splat);
      pair(
        () => void f.get(q).mem(OP.f32Load, 0).op(OP.f64PromoteF32).simd(SIMD.f64x2Splat),
        plo,
        dlo,
      );
      f.get(p).get(plo).simd(SIMD.f32x4ExtractLane, 0).mem(OP.f32Store, 0);
      f.get(q).get(dlo).simd(SIMD.f32x4ExtractLane, 0).mem(OP.f32Store, 0);
    });
  });
  return f;
}

export interface AttentionFns {
  softmax_rows: (
    s: number,
    rows: number,
    cols: number,
    ld: number,
    scale: number,
    stats: number,
  ) => void;
  grad_rows: (
    s: number,
    dp: number,
    rows: number,
    cols: number,
    ld: number,
    scale: number,
    stats: number,
  ) => void;
}

const modules = new Map<boolean, WebAssembly.Module>();

/** The row kernels' module (exp table at address 0 of the memory, as the fused loops'). */
export function attentionModule(shared: boolean): WebAssembly.Module {
  let m = modules.get(shared);
  if (!m) {
    const bytes = buildModule([softmaxRows(0), gradRows(0)], {
      minPages: 1,
      maxPages: 65536,
      shared,
    });
    modules.set(shared, m = new WebAssembly.Module(bytes));
  }
  return m;
}

/** What an attention step's items run on, on one thread. */
export interface AttentionContext {
  gemm: GemmFn;
  fns: AttentionFns;
  memory: WebAssembly.Memory;
}

/** One attention node's operands, result and sizes (addresses in bytes). */
export interface AttentionJob {
  backward: boolean;
  /** q, k, v, then for the backward the forward's packed result and its cotangent. */
  ins: number[];
  out: number;
  n: number;
  m: number;
  d: number;
  /** Row length of the backward's cotangent: d + 1 (with the lse's), or d (the output's only). */
  gd: number;
  scale: number;
  /** This thread's attention scratch, and the GEMM's packing scratch. */
  scratch: number;
  gemmScratch: number;
}

export function attentionContext(
  memory: WebAssembly.Memory,
  module: WebAssembly.Module,
  gemm: GemmFn,
): AttentionContext {
  const fns = new WebAssembly.Instance(module, { env: { memory } })
    .exports as unknown as AttentionFns;
  return { gemm, fns, memory };
}

/** Runs items [i0, i1) of `job`. */
export function runAttention(c: AttentionContext, job: AttentionJob, i0: number, i1: number): void {
  if (job.backward) backward(c, job, i0, i1);
  else forward(c, job, i0, i1);
}

function forward(c: AttentionContext, j: AttentionJob, i0: number, i1: number): void {
  const { gemm, fns } = c;
  const { n, m, d, scale, scratch, gemmScratch: gs } = j;
  const [q, k, v] = j.ins;
  const F = new Float32Array(c.memory.buffer), D64 = new Float64Array(c.memory.buffer);
  const br = blockRows(n, m);
  const S = scratch, stats = scratch + 2 * br * m * 4;
  for (let it = i0; it < i1; it++) {
    const qa = q + it * n * d * 4, ka = k + it * m * d * 4, va = v + it * m * d * 4;
    const oa = j.out + it * n * (d + 1) * 4;
    for (let r0 = 0; r0 < n; r0 += br) {
      const rb = Math.min(br, n - r0);
      gemm(qa + r0 * d * 4, d * 4, 4, ka, 4, d * 4, S, m * 4, rb, m, d, gs, 0);
      fns.softmax_rows(S, rb, m, m * 4, scale, stats);
      const o0 = oa + r0 * (d + 1) * 4;
      gemm(S, m * 4, 4, va, d * 4, 4, o0, (d + 1) * 4, rb, d, m, gs, 0);
      for (let r = 0; r < rb; r++) {
        const mm = D64[stats / 8 + 2 * r], l = D64[stats / 8 + 2 * r + 1];
        const inv = 1 / l, row = o0 / 4 + r * (d + 1);
        for (let e = 0; e < d; e++) F[row + e] *= inv;
        F[row + d] = mm + Math.log(l);
      }
    }
  }
}

function backward(c: AttentionContext, j: AttentionJob, i0: number, i1: number): void {
  const { gemm, fns } = c;
  const { n, m, d, gd, scale, scratch, gemmScratch: gs } = j;
  const [q, k, v, out, g] = j.ins;
  const F = new Float32Array(c.memory.buffer), D64 = new Float64Array(c.memory.buffer);
  const br = blockRows(n, m);
  const S = scratch, dP = scratch + br * m * 4, stats = scratch + 2 * br * m * 4;
  const rows = n + 2 * m;
  for (let it = i0; it < i1; it++) {
    const qa = q + it * n * d * 4, ka = k + it * m * d * 4, va = v + it * m * d * 4;
    const oa = out + it * n * (d + 1) * 4, ga = g + it * n * gd * 4;
    const dq = j.out + it * rows * d * 4, dk = dq + n * d * 4, dv = dk + m * d * 4;
    for (let r0 = 0; r0 < n; r0 += br) {
      const rb = Math.min(br, n - r0), acc = r0 > 0 ? 1 : 0;
      const qb = qa + r0 * d * 4, gb = ga + r0 * gd * 4;
      gemm(qb, d * 4, 4, ka, 4, d * 4, S, m * 4, rb, m, d, gs, 0);
      gemm(gb, gd * 4, 4, va, 4, d * 4, dP, m * 4, rb, m, d, gs, 0);
      for (let r = 0; r < rb; r++) {
        const o = (oa + r0 * (d + 1) * 4) / 4 + r * (d + 1), gr = gb / 4 + r * gd;
        let delta = gd > d ? -F[gr + d] : 0;
        for (let e = 0; e < d; e++) delta += F[gr + e] * F[o + e];
        D64[stats / 8 + 2 * r] = F[o + d];
        D64[stats / 8 + 2 * r + 1] = delta;
      }
      fns.grad_rows(S, dP, rb, m, m * 4, scale, stats);
      gemm(S, 4, m * 4, gb, gd * 4, 4, dv, d * 4, m, d, rb, gs, acc);
      gemm(dP, m * 4, 4, ka, d * 4, 4, dq + r0 * d * 4, d * 4, rb, d, m, gs, 0);
      gemm(dP, 4, m * 4, qb, d * 4, 4, dk, d * 4, m, d, rb, gs, acc);
    }
  }
}
