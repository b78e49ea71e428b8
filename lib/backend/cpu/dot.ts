/**
 * dot_general on the CPU backend: maps the batch / free / contracting dims of two strided
 * operand views onto batched calls of the wasm GEMM. An operand whose free or contracting
 * dims cannot be walked with one stride each (or that lives outside wasm memory) is first
 * gathered into a contiguous staging buffer.
 */
import type { TypedArray } from "../../ir/dtype.ts";
import { dense, stridedCopy } from "../../ir/strided.ts";
import { Primitive } from "../../ir/primitive.ts";
import { paramsOf, type Tensor } from "../../ir/tensor.ts";
import {
  F,
  type GemmFn,
  MAX_CHUNKS,
  MAX_TASK_BATCH_DIMS,
  runGemmTask,
  TASK_INTS,
} from "./task_records.ts";
import { DEFAULT_GEMM, gemmModuleBytes } from "./gemm_wasm.ts";
import { loadNativeBlas, wasmChosen } from "./gemm_native.ts";
import { contiguousView, mergeDims, type View } from "./index_map.ts";
import { applyView, type GraphPlan } from "./plan.ts";
import { SplitSite, type WorkerPool } from "./threads.ts";

/** Matmuls below this many flops run on one thread (a hand-off costs tens of microseconds). */
export const DOT_SPLIT_MIN_FLOPS = 4e6;

export interface DotContext {
  memory: WebAssembly.Memory;
  gemm: GemmFn;
  /**
   * Whether `gemm` is the native BLAS. Its results for a row or column range can differ in
   * the last bit from the whole call's (small-matrix kernels), so a split matmul always runs
   * as the same chunks, on one thread or many: results depend on the thread count only.
   */
  native: boolean;
  /** Byte address of the GEMM packing scratch of thread 0 (thread i: + i * scratchStride). */
  scratch: number;
  threading: { pool: WorkerPool | null; id: () => number | null; scratchStride: number };
  /** Byte address of the output buffer. */
  out: number;
  /** Byte address of a node's buffer. */
  address: (p: number) => number;
  /** Byte addresses of the lhs and rhs staging buffers (used when gathered). */
  staging: number[];
  source: (p: number) => TypedArray;
}

/**
 * The step computing dot_general `t`: gathers operands that need it, then runs the GEMM per
 * batch item, split across the pool's threads when large enough.
 */
export function dotStep(
  t: Tensor,
  operands: { base: number; view: View }[],
  layout: DotLayout,
  ctx: DotContext,
): { run: () => void; slices: number } {
  const { m, k, n } = layout;
  const { memory, gemm } = ctx;
  const L = layout.lhs, R = layout.rhs;
  const prep = (gather: number[] | null, operand: { base: number; view: View }, stage: number) => {
    if (!gather) return null;
    const { view } = operand;
    const shape = gather.map((d) => view.shape[d]);
    const from = {
      data: ctx.source(operand.base),
      offset: view.offset,
      strides: gather.map((d) => view.strides[d]),
    };
    const to = dense(new Float32Array(memory.buffer), shape, stage / 4);
    return () => stridedCopy(shape, from, to);
  };
  const gatherL = prep(L.gather, operands[0], ctx.staging[0]);
  const gatherR = prep(R.gather, operands[1], ctx.staging[1]);
  const a0 = L.gather ? ctx.staging[0] : ctx.address(operands[0].base) + 4 * L.offset;
  const b0 = R.gather ? ctx.staging[1] : ctx.address(operands[1].base) + 4 * R.offset;
  if (k === 0) {
    const zeros = new Float32Array(memory.buffer, ctx.out, t.size);
    return { run: () => zeros.fill(0), slices: 1 };
  }
  if (m === 0 || n === 0) return { run: () => {}, slices: 1 };
  const { pool, scratchStride } = ctx.threading;
  const whole = taskRecord(layout, a0, b0, ctx.out, ctx.scratch, scratchStride);
  const slices = pool && whole ? sliceTask(whole, layout, pool.threads, ctx.native) : null;
  const chunked = slices && ctx.native
    ? () => {
      for (const t of slices) runGemmTask(gemm, t, 0, 0);
    }
    : null;
  const single = chunked ??
    (whole ? () => runGemmTask(gemm, whole, 0, 0) : () => batchLoop(layout, a0, b0, ctx));
  const site = new SplitSite();
  const local = (t: Int32Array) => runGemmTask(gemm, t, 0, 0);
  const run = () => {
    if (gatherL) gatherL();
    if (gatherR) gatherR();
    const id = ctx.threading.id();
    if (slices && id !== null) pool!.job(id, site, slices, local, single);
    else single();
  };
  return { run, slices: slices?.length ?? 1 };
}

/** How one operand is read by the GEMM: element offset and strides within its buffer. */
export interface OperandLayout {
  /** Gather into staging first, in this dim order (batch, then the GEMM's row/col order). */
  gather: number[] | null;
  offset: number;
  /** Stride of the GEMM rows and columns of this operand (A: m, k; B: k, n), in elements. */
  rowStride: number;
  colStride: number;
  /** Stride of each batch dim (merged), in elements. */
  batchStrides: number[];
  /** Elements of the staging buffer when gathered. */
  stagedSize: number;
}

export interface DotLayout {
  batch: number[];
  m: number;
  k: number;
  n: number;
  lhs: OperandLayout;
  rhs: OperandLayout;
}

/**
 * Lays out `node` (a dot_general) over operand views. `inPlace[i]` says whether operand i may
 * be read where it is (it lives in wasm memory); otherwise it is always gathered.
 */
export function dotLayout(
  node: Tensor,
  views: [View, View],
  inPlace: [boolean, boolean],
): DotLayout {
  const p = paramsOf(node, Primitive.DotGeneral);
  const [lv, rv] = views;
  const lhsFree = lv.shape.map((_, i) => i).filter((i) =>
    !p.lhsBatch.includes(i) && !p.lhsContract.includes(i)
  );
  const rhsFree = rv.shape.map((_, i) => i).filter((i) =>
    !p.rhsBatch.includes(i) && !p.rhsContract.includes(i)
  );
  const size = (v: View, dims: number[]) => dims.reduce((s, d) => s * v.shape[d], 1);
  const m = size(lv, lhsFree), k = size(lv, p.lhsContract), n = size(rv, rhsFree);

  // Batch dims: merge pairs that both operands walk contiguously.
  const batch: number[] = [], lb: number[] = [], rb: number[] = [];
  p.lhsBatch.forEach((ld, i) => {
    const rd = p.rhsBatch[i], sz = lv.shape[ld];
    if (sz === 1) return;
    const last = batch.length - 1;
    if (last >= 0 && lb[last] === sz * lv.strides[ld] && rb[last] === sz * rv.strides[rd]) {
      batch[last] *= sz;
      lb[last] = lv.strides[ld];
      rb[last] = rv.strides[rd];
    } else {
      batch.push(sz);
      lb.push(lv.strides[ld]);
      rb.push(rv.strides[rd]);
    }
  });

  // Contracting dims are paired: merge only where both sides allow it.
  const kDims = jointMerge(p.lhsContract, p.rhsContract, lv, rv);
  const lhsRows = single(mergeDims(lhsFree.map((d) => [lv.shape[d], lv.strides[d]])));
  const rhsCols = single(mergeDims(rhsFree.map((d) => [rv.shape[d], rv.strides[d]])));

  const gatherL = !inPlace[0] || lhsRows === null || kDims === null;
  const gatherR = !inPlace[1] || rhsCols === null || kDims === null;
  const batchSize = batch.reduce((a, b) => a * b, 1);
  const lhs: OperandLayout = gatherL
    ? {
      gather: [...p.lhsBatch, ...lhsFree, ...p.lhsContract],
      offset: 0,
      rowStride: k,
      colStride: 1,
      batchStrides: contiguousBatch(batch, m * k),
      stagedSize: batchSize * m * k,
    }
    : {
      gather: null,
      offset: lv.offset,
      rowStride: lhsRows![1],
      colStride: kDims![0],
      batchStrides: lb,
      stagedSize: 0,
    };
  const rhs: OperandLayout = gatherR
    ? {
      gather: [...p.rhsBatch, ...p.rhsContract, ...rhsFree],
      offset: 0,
      rowStride: n,
      colStride: 1,
      batchStrides: contiguousBatch(batch, k * n),
      stagedSize: batchSize * k * n,
    }
    : {
      gather: null,
      offset: rv.offset,
      rowStride: kDims![1],
      colStride: rhsCols![1],
      batchStrides: rb,
      stagedSize: 0,
    };
  return { batch, m, k, n, lhs, rhs };
}

/** The whole dot as one task record, or null with more batch dims than a record holds. */
function taskRecord(
  l: DotLayout,
  a: number,
  b: number,
  c: number,
  scratch: number,
  scratchStride: number,
): Int32Array | null {
  if (l.batch.length > MAX_TASK_BATCH_DIMS) return null;
  const t = new Int32Array(TASK_INTS);
  const outBatch = contiguousBatch(l.batch, l.m * l.n);
  t[F.q0] = 0;
  t[F.q1] = l.batch.reduce((x, y) => x * y, 1);
  t[F.a] = a;
  t[F.b] = b;
  t[F.c] = c;
  t[F.sam] = 4 * l.lhs.rowStride;
  t[F.sak] = 4 * l.lhs.colStride;
  t[F.sbk] = 4 * l.rhs.rowStride;
  t[F.sbn] = 4 * l.rhs.colStride;
  t[F.ldc] = 4 * l.n;
  t[F.m] = l.m;
  t[F.n] = l.n;
  t[F.k] = l.k;
  t[F.scratch] = scratch;
  t[F.scratchStride] = scratchStride;
  t[F.batchDims] = l.batch.length;
  l.batch.forEach((size, d) => {
    t.set(
      [size, 4 * l.lhs.batchStrides[d], 4 * l.rhs.batchStrides[d], 4 * outBatch[d]],
      F.dims + 4 * d,
    );
  });
  return t;
}

/**
 * Cuts a task into chunks for `threads` threads: by batch items when there are enough, else
 * by rows of A (whole register tiles) or columns of B (whole panels), each chunk large enough
 * that packing the other operand again costs little. Null when too small to split.
 */
function sliceTask(
  whole: Int32Array,
  l: DotLayout,
  threads: number,
  native: boolean,
): Int32Array[] | null {
  const items = whole[F.q1];
  if (2 * l.m * l.n * l.k * items < DOT_SPLIT_MIN_FLOPS) return null;
  const slices: Int32Array[] = [];
  const add = (edit: (t: Int32Array) => void) => {
    const t = whole.slice();
    edit(t);
    slices.push(t);
  };
  const perThread = native ? NATIVE_CHUNKS_PER_THREAD : CHUNKS_PER_THREAD;
  const want = Math.min(MAX_CHUNKS, perThread * threads);
  if (items >= threads) {
    // whole batch items: more chunks cost no repacking, and even out a late thread
    const n = Math.min(MAX_CHUNKS, CHUNKS_PER_THREAD * threads, items);
    for (let i = 0; i < n; i++) {
      const q0 = Math.floor((i * items) / n), q1 = Math.floor(((i + 1) * items) / n);
      add((t) => {
        t[F.q0] = q0;
        t[F.q1] = q1;
      });
    }
  } else {
    const byRows = l.m >= l.n;
    const total = byRows ? l.m : l.n;
    const unit = byRows ? DEFAULT_GEMM.mr : DEFAULT_GEMM.nr;
    const minRows = native ? NATIVE_MIN_CHUNK_ROWS : MIN_CHUNK_ROWS;
    const n = Math.max(threads, Math.min(want, Math.floor(total / minRows)));
    const step = Math.ceil(total / n / unit) * unit;
    for (let s0 = 0; s0 < total; s0 += step) {
      const len = Math.min(step, total - s0);
      add((t) => {
        if (byRows) {
          t[F.a] = whole[F.a] + s0 * whole[F.sam];
          t[F.c] = whole[F.c] + s0 * whole[F.ldc];
          t[F.m] = len;
        } else {
          t[F.b] = whole[F.b] + s0 * whole[F.sbn];
          t[F.c] = whole[F.c] + 4 * s0;
          t[F.n] = len;
        }
      });
    }
  }
  return slices.length > 1 ? slices : null;
}

/** Chunks per thread: enough that a slow thread's share can be taken over by the others. */
const CHUNKS_PER_THREAD = 4;
/** Rows (or columns) per chunk when splitting one matmul: each chunk packs the other operand. */
const MIN_CHUNK_ROWS = 96;
/**
 * The native BLAS packs faster than it multiplies by less: cutting a 1576x384x1536 matmul into
 * 2 / 4 / 8 row chunks costs +2 / +4 / +15% CPU time (OpenBLAS, one core), so fewer, larger
 * chunks.
 */
const NATIVE_CHUNKS_PER_THREAD = 2;
const NATIVE_MIN_CHUNK_ROWS = 192;

/** The dot on this thread, for any number of batch dims. */
function batchLoop(l: DotLayout, a0: number, b0: number, ctx: DotContext): void {
  const { batch, m, n, k } = l;
  const outBatch = contiguousBatch(batch, m * n);
  const count = batch.reduce((x, y) => x * y, 1);
  for (let q = 0; q < count; q++) {
    let rem = q, ao = a0, bo = b0, co = ctx.out;
    for (let d = batch.length - 1; d >= 0; d--) {
      const i = rem % batch[d];
      rem = (rem - i) / batch[d];
      ao += 4 * i * l.lhs.batchStrides[d];
      bo += 4 * i * l.rhs.batchStrides[d];
      co += 4 * i * outBatch[d];
    }
    const L = l.lhs, R = l.rhs;
    ctx.gemm(
      ao,
      4 * L.rowStride,
      4 * L.colStride,
      bo,
      4 * R.rowStride,
      4 * R.colStride,
      co,
      4 * n,
      m,
      n,
      k,
      ctx.scratch,
      0,
    );
  }
}

/** [stride] of a single merged dim (size 1 for none), or null when dims do not merge. */
function single(dims: [number, number][]): [number, number] | null {
  if (dims.length === 0) return [1, 0];
  return dims.length === 1 ? dims[0] : null;
}

function jointMerge(ld: number[], rd: number[], lv: View, rv: View): [number, number] | null {
  const merged: [number, number, number][] = []; // size, lhs stride, rhs stride
  ld.forEach((l, i) => {
    const r = rd[i], sz = lv.shape[l];
    if (sz === 1) return;
    const last = merged[merged.length - 1];
    if (last && last[1] === sz * lv.strides[l] && last[2] === sz * rv.strides[r]) {
      last[0] *= sz;
      last[1] = lv.strides[l];
      last[2] = rv.strides[r];
    } else merged.push([sz, lv.strides[l], rv.strides[r]]);
  });
  if (merged.length === 0) return [0, 0];
  return merged.length === 1 ? [merged[0][1], merged[0][2]] : null;
}

function contiguousBatch(batch: number[], item: number): number[] {
  const s = new Array<number>(batch.length);
  let acc = item;
  for (let i = batch.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= batch[i];
  }
  return s;
}

/** The strided view through which a matmul reads node p, and the buffer it views. */
export function operandView(plan: GraphPlan, p: number): { base: number; view: View } {
  const { nodes, role } = plan;
  const chain: Tensor[] = [];
  let q = p;
  // Walk down through aliases and inlined transposes to a buffer.
  while (
    role[q] === "alias" || (role[q] === "inline" && nodes[q].prim === Primitive.Transpose)
  ) {
    chain.push(nodes[q]);
    q = plan.position.get(nodes[q].inputs[0].id)!;
  }
  let view: View | null = contiguousView(nodes[q].shape);
  for (let i = chain.length - 1; i >= 0 && view; i--) view = applyView(view, chain[i]);
  if (!view) {
    throw new Error(`cpu: no strided view for matmul operand ${nodes[p]} (planner bug)`);
  }
  return { base: q, view };
}

/**
 * The GEMM on `memory`: the native BLAS (gemm_native.ts) unless `native` is false or none
 * loads, else the wasm SIMD one (`module`, from gemmModule), which also takes the calls whose
 * strides cblas cannot express.
 */
export function gemmOn(
  memory: WebAssembly.Memory,
  module: WebAssembly.Module,
  native: boolean,
): { gemm: GemmFn; native: boolean } {
  const wasm = new WebAssembly.Instance(module, { env: { memory } }).exports.gemm as GemmFn;
  const blas = native ? loadNativeBlas() : undefined;
  return blas ? { gemm: blas.gemmOn(memory, wasm), native: true } : { gemm: wasm, native: false };
}

/** What runs the matmuls, for the backend's description and the start note. */
export function gemmDescription(native = true): string {
  const blas = native ? loadNativeBlas() : undefined;
  if (blas) return `matmuls on ${blas.name}`;
  return native && !wasmChosen()
    ? "matmuls on the wasm SIMD GEMM: no native BLAS found (install libopenblas0-pthread " +
      "for about 4x faster matmuls)"
    : "matmuls on the wasm SIMD GEMM";
}

const gemmModules = new Map<boolean, WebAssembly.Module>();

/** The GEMM module (compiled once per memory kind: shared or not). */
export function gemmModule(shared: boolean): WebAssembly.Module {
  let m = gemmModules.get(shared);
  if (!m) {
    m = new WebAssembly.Module(
      gemmModuleBytes(DEFAULT_GEMM, { minPages: 1, maxPages: 65536, shared }),
    );
    gemmModules.set(shared, m);
  }
  return m;
}
