import type { GroupIR } from "./fused_ir.ts";
import { columnReduction, rowReduction, splitExtent } from "./wasm_fused.ts";

/**
 * Chunks of work as records of i32s in shared memory: the main thread and the workers
 * (worker.ts) run the chunks of one step side by side (threads.ts). A chunk is a range of
 * batch items (or rows / columns) of a GEMM, or a range of the split dim of a fused wasm loop.
 */

/** Most chunks per job (fits the 7 bits of the claim word in threads.ts). */
export const MAX_CHUNKS = 64;
/** Ints per task record. */
export const TASK_INTS = 32;
/** At most this many (merged) batch dims can be split across threads. */
export const MAX_TASK_BATCH_DIMS = 2;

export const KIND_GEMM = 0;
/**
 * A fused loop: function `fn` of the registered fused module (export `g<fn>`), `nargs` byte
 * addresses from `args`, over [q0, q1) of its split dim.
 */
export const KIND_FUSED = 1;
export const FUSED = { fn: 6, nargs: 7, args: 8 } as const;
/** A range of (batch, head) items of a fused attention node (attention_step.ts). */
export const KIND_ATTENTION = 2;
/** Fused loops with more arguments than a record holds run on one thread. */
export const MAX_FUSED_ARGS = 31 - 8;

/** Field offsets within a task record (words 0-3 are unused). */
export const F = {
  /** KIND_GEMM, KIND_FUSED or KIND_ATTENTION. */
  kind: 31,
  q0: 4,
  q1: 5,
  a: 6,
  b: 7,
  c: 8,
  sam: 9,
  sak: 10,
  sbk: 11,
  sbn: 12,
  ldc: 13,
  m: 14,
  n: 15,
  k: 16,
  /** Packing scratch of thread 0; thread i uses scratch + i * scratchStride. */
  scratch: 17,
  scratchStride: 27,
  batchDims: 18,
  /** batchDims x (size, a stride, b stride, c stride), in bytes for the strides. */
  dims: 19,
} as const;

export type GemmFn = (
  a: number,
  sam: number,
  sak: number,
  b: number,
  sbk: number,
  sbn: number,
  c: number,
  ldc: number,
  m: number,
  n: number,
  k: number,
  scratch: number,
  accumulate: number,
) => void;

/** Runs batch items [q0, q1) of the task at `t[o..]` on thread `thread` (0: the caller). */
export function runGemmTask(gemm: GemmFn, t: Int32Array, o: number, thread: number): void {
  const nb = t[o + F.batchDims];
  const a = t[o + F.a] >>> 0, b = t[o + F.b] >>> 0, c = t[o + F.c] >>> 0;
  const sam = t[o + F.sam], sak = t[o + F.sak], sbk = t[o + F.sbk], sbn = t[o + F.sbn];
  const ldc = t[o + F.ldc], m = t[o + F.m], n = t[o + F.n], k = t[o + F.k];
  const scratch = (t[o + F.scratch] >>> 0) + thread * (t[o + F.scratchStride] >>> 0);
  for (let q = t[o + F.q0], q1 = t[o + F.q1]; q < q1; q++) {
    let rem = q, ao = a, bo = b, co = c;
    for (let d = nb - 1; d >= 0; d--) {
      const base = o + F.dims + 4 * d;
      const size = t[base];
      const i = rem % size;
      rem = (rem - i) / size;
      ao += i * (t[base + 1] >>> 0);
      bo += i * (t[base + 2] >>> 0);
      co += i * (t[base + 3] >>> 0);
    }
    gemm(ao, sam, sak, bo, sbk, sbn, co, ldc, m, n, k, scratch, 0);
  }
}

/** Fused loops below this many elements run on one thread. */
const LOOP_SPLIT_MIN_ELEMENTS = 1 << 17;

/**
 * Wasm loops over enough elements: elementwise ones, row reductions cut by rows and column
 * reductions by columns (each output still sums in order on one thread); other reductions run
 * on one thread.
 */
export function splittable(ir: GroupIR): boolean {
  const domain = ir.dims.reduce((a, b) => a * b, 1);
  if (ir.reduce && !(rowReduction(ir) && ir.dims.length > 1) && !columnReduction(ir)) {
    return false;
  }
  return domain >= LOOP_SPLIT_MIN_ELEMENTS && splitExtent(ir) > 16;
}

/** Task records cutting a wasm loop's split dim [0, extent) into `threads` ranges. */
export function loopSlices(
  fn: number,
  args: number[],
  extent: number,
  threads: number,
): Int32Array[] | null {
  if (args.length > MAX_FUSED_ARGS) return null;
  const slices: Int32Array[] = [];
  // ranges in multiples of 16 so that vector loops start aligned; several per thread so that
  // a slow thread's share is taken over by the others
  const chunks = Math.min(MAX_CHUNKS, 4 * threads);
  const step = Math.ceil(extent / chunks / 16) * 16;
  for (let lo = 0; lo < extent; lo += step) {
    const t = new Int32Array(TASK_INTS);
    t[F.kind] = KIND_FUSED;
    t[FUSED.fn] = fn;
    t[FUSED.nargs] = args.length;
    args.forEach((a, i) => (t[FUSED.args + i] = a));
    t[F.q0] = lo;
    t[F.q1] = Math.min(extent, lo + step);
    slices.push(t);
  }
  return slices.length > 1 ? slices : null;
}

/** Runs a fused-loop slice with the export table of the fused module. */
export function runFusedTask(
  fns: Record<string, unknown>,
  t: Int32Array,
  o: number,
): void {
  const fn = fns[`g${t[o + FUSED.fn]}`] as (...a: number[]) => void;
  const args: number[] = [];
  for (let i = 0; i < t[o + FUSED.nargs]; i++) args.push(t[o + FUSED.args + i] >>> 0);
  args.push(t[o + F.q0], t[o + F.q1]);
  fn(...args);
}
