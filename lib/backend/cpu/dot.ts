/**
 * dot_general on the CPU backend: maps the batch / free / contracting dims of two strided
 * operand views onto batched calls of the wasm GEMM. An operand whose free or contracting
 * dims cannot be walked with one stride each (or that lives outside wasm memory) is first
 * gathered into a contiguous staging buffer.
 */
import { Primitive, type PrimitiveParams } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import { mergeDims, type View } from "./index_map.ts";

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
  const p = node.params as PrimitiveParams[Primitive.DotGeneral];
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

/**
 * Copies `src` seen through `view`, with dims taken in `perm` order, contiguously into
 * `dst` from `dstOffset`.
 */
export function gatherView(
  src: ArrayLike<number>,
  view: View,
  perm: readonly number[],
  dst: Float32Array,
  dstOffset: number,
): void {
  const shape = perm.map((d) => view.shape[d]);
  const strides = perm.map((d) => view.strides[d]);
  const total = shape.reduce((a, b) => a * b, 1);
  if (total === 0) return;
  const rank = shape.length;
  if (rank === 0) {
    dst[dstOffset] = src[view.offset];
    return;
  }
  const idx = new Array<number>(rank).fill(0);
  const last = rank - 1, inner = shape[last], innerStride = strides[last];
  let s = view.offset, o = dstOffset;
  for (let done = 0; done < total; done += inner) {
    let q = s;
    for (let j = 0; j < inner; j++, q += innerStride) dst[o++] = src[q];
    for (let d = last - 1; d >= 0; d--) {
      idx[d]++;
      s += strides[d];
      if (idx[d] < shape[d]) break;
      s -= strides[d] * shape[d];
      idx[d] = 0;
    }
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
