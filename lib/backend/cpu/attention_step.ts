/**
 * The executable's step for a fused attention node (attention.ts): its scratch, and the run
 * over (batch, head) items, split across the worker pool as ranges of items (task records of
 * kind KIND_ATTENTION). Each item runs the same GEMM calls on whichever thread takes it, so
 * results never depend on the thread count.
 */
import { Primitive } from "../../ir/primitive.ts";
import { isPrim, type Tensor } from "../../ir/tensor.ts";
import { DEFAULT_GEMM, gemmScratchBytes } from "./gemm_wasm.ts";
import {
  type AttentionContext,
  attentionContext,
  type AttentionJob,
  attentionModule,
  attentionScratchBytes,
  runAttention,
} from "./attention.ts";
import { F, type GemmFn, KIND_ATTENTION, MAX_CHUNKS, TASK_INTS } from "./task_records.ts";
import { SplitSite, threadCount, type WorkerPool } from "./threads.ts";

/** Attention task record fields (task_records.ts: q0 / q1 are the item range, kind is word 31). */
const A = {
  backward: 6,
  ins: 7, // 5 addresses
  out: 12,
  n: 13,
  m: 14,
  d: 15,
  scale: 16, // f64 as two words
  scratch: 18,
  scratchStride: 19,
  gemmScratch: 20,
  gemmStride: 21,
  gd: 22,
} as const;

function sizes(
  t: Tensor,
): { items: number; n: number; m: number; d: number; gd: number; scale: number } {
  if (!isPrim(t, Primitive.Attention) && !isPrim(t, Primitive.AttentionGrad)) {
    throw new Error(`cpu: ${t} is not an attention node`);
  }
  const [b, h, n, d] = t.inputs[0].shape;
  const gd = t.inputs.length === 5 ? t.inputs[4].shape[3] : d + 1;
  return { items: b * h, n, m: t.inputs[1].shape[2], d, gd, scale: t.params.scale };
}

/** Staging bytes (a scratch per thread) and the GEMM packing scratch the node needs. */
export function attentionStaging(t: Tensor): { bytes: number; gemmScratch: number } {
  const { n, m, d } = sizes(t);
  return {
    bytes: threadCount() * attentionScratchBytes(n, m),
    gemmScratch: gemmScratchBytes(DEFAULT_GEMM, Math.max(m, d)),
  };
}

export interface AttentionStepContext {
  memory: WebAssembly.Memory;
  gemm: GemmFn;
  ins: number[];
  out: number;
  /** Thread 0's attention scratch (thread i: + i * attentionScratchBytes). */
  scratch: number;
  /** Thread 0's GEMM scratch (thread i: + i * threading.scratchStride). */
  gemmScratch: number;
  threading: { pool: WorkerPool | null; id: () => number | null; scratchStride: number };
}

export function attentionStep(
  t: Tensor,
  c: AttentionStepContext,
): { run: () => void; split: boolean } {
  const { items, n, m, d, gd, scale } = sizes(t);
  const job: AttentionJob = {
    backward: t.prim === Primitive.AttentionGrad,
    ins: c.ins,
    out: c.out,
    n,
    m,
    d,
    gd,
    scale,
    scratch: c.scratch,
    gemmScratch: c.gemmScratch,
  };
  const ctx = attentionContext(
    c.memory,
    attentionModule(c.memory.buffer instanceof SharedArrayBuffer),
    c.gemm,
  );
  const whole = () => runAttention(ctx, job, 0, items);
  const { pool } = c.threading;
  if (!pool || items < 2) return { run: whole, split: false };
  const chunks = Math.min(MAX_CHUNKS, items, 4 * pool.threads);
  const step = Math.ceil(items / chunks);
  const records: Int32Array[] = [];
  for (let lo = 0; lo < items; lo += step) {
    const r = new Int32Array(TASK_INTS);
    r[F.kind] = KIND_ATTENTION;
    r[F.q0] = lo;
    r[F.q1] = Math.min(items, lo + step);
    r[A.backward] = job.backward ? 1 : 0;
    job.ins.forEach((a, i) => (r[A.ins + i] = a));
    r[A.out] = job.out;
    r[A.n] = n;
    r[A.m] = m;
    r[A.d] = d;
    r[A.gd] = gd;
    new Float64Array(r.buffer, 4 * A.scale, 1)[0] = scale;
    r[A.scratch] = c.scratch;
    r[A.scratchStride] = attentionScratchBytes(n, m);
    r[A.gemmScratch] = c.gemmScratch;
    r[A.gemmStride] = c.threading.scratchStride;
    records.push(r);
  }
  const site = new SplitSite();
  const local = (r: Int32Array) => runAttentionTask(ctx, r, 0, 0);
  const run = () => {
    const id = c.threading.id();
    if (id !== null) pool.job(id, site, records, local, whole);
    else whole();
  };
  return { run, split: true };
}

/** Runs the attention task record at `t[o..]` on thread `thread` (0: the caller). */
export function runAttentionTask(
  ctx: AttentionContext,
  t: Int32Array,
  o: number,
  thread: number,
): void {
  const scale = new Float64Array(Int32Array.of(t[o + A.scale], t[o + A.scale + 1]).buffer)[0];
  const job: AttentionJob = {
    backward: t[o + A.backward] === 1,
    ins: Array.from({ length: 5 }, (_, i) => t[o + A.ins + i] >>> 0),
    out: t[o + A.out] >>> 0,
    n: t[o + A.n],
    m: t[o + A.m],
    d: t[o + A.d],
    gd: t[o + A.gd],
    scale,
    scratch: (t[o + A.scratch] >>> 0) + thread * (t[o + A.scratchStride] >>> 0),
    gemmScratch: (t[o + A.gemmScratch] >>> 0) + thread * (t[o + A.gemmStride] >>> 0),
  };
  runAttention(ctx, job, t[o + F.q0], t[o + F.q1]);
}
