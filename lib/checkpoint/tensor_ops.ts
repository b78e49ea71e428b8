/** The few layout operations checkpoint conversion needs, for any DType (pure copies). */
import { allocArray } from "../ir/dtype.ts";
import { type HostTensor, numel, stridesOf } from "../ir/host_tensor.ts";

/** Same data, new shape (sizes must agree; one -1 is inferred). */
export function reshape(t: HostTensor, shape: number[]): HostTensor {
  const n = numel(t.shape);
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const out = shape.map((d) => (d === -1 ? n / known : d));
  if (numel(out) !== n || !out.every(Number.isInteger)) {
    throw new Error(`cannot reshape [${t.shape}] to [${shape}]`);
  }
  return { shape: out, dtype: t.dtype, data: t.data };
}

/** Axes permuted: output axis i is input axis perm[i] (numpy.transpose). */
export function transpose(t: HostTensor, perm: number[]): HostTensor {
  const rank = t.shape.length;
  if (perm.length !== rank) throw new Error(`transpose: perm [${perm}] for rank ${rank}`);
  const outShape = perm.map((p) => t.shape[p]);
  const inStrides = stridesOf(t.shape);
  const strides = perm.map((p) => inStrides[p]);
  const n = numel(outShape);
  const out = allocArray(t.dtype, n);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let i = 0; i < n; i++) {
    out[i] = t.data[src];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      src += strides[d];
      if (idx[d] < outShape[d]) break;
      src -= strides[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return { shape: outShape, dtype: t.dtype, data: out };
}

/** Joins tensors along `axis` (all other sizes and the dtype must agree). */
export function concatenate(ts: HostTensor[], axis: number): HostTensor {
  const first = ts[0];
  for (const t of ts) {
    if (
      t.dtype !== first.dtype || t.shape.length !== first.shape.length ||
      t.shape.some((d, i) => i !== axis && d !== first.shape[i])
    ) {
      throw new Error(
        `concatenate: [${t.shape}] ${t.dtype} does not fit [${first.shape}] ${first.dtype}`,
      );
    }
  }
  const outer = numel(first.shape.slice(0, axis));
  const inner = numel(first.shape.slice(axis + 1));
  const shape = [...first.shape];
  shape[axis] = ts.reduce((a, t) => a + t.shape[axis], 0);
  const out = allocArray(first.dtype, numel(shape));
  let o = 0;
  for (let i = 0; i < outer; i++) {
    for (const t of ts) {
      const block = t.shape[axis] * inner;
      out.set(t.data.subarray(i * block, (i + 1) * block) as never, o);
      o += block;
    }
  }
  return { shape, dtype: first.dtype, data: out };
}

/** A slice `start..end` of axis `axis`. */
export function sliceAxis(t: HostTensor, axis: number, start: number, end: number): HostTensor {
  const outer = numel(t.shape.slice(0, axis));
  const inner = numel(t.shape.slice(axis + 1));
  const shape = [...t.shape];
  shape[axis] = end - start;
  const out = allocArray(t.dtype, numel(shape));
  const block = shape[axis] * inner;
  for (let i = 0; i < outer; i++) {
    const from = (i * t.shape[axis] + start) * inner;
    out.set(t.data.subarray(from, from + block) as never, i * block);
  }
  return { shape, dtype: t.dtype, data: out };
}

/** Zero-filled tensor. */
export function zeros(shape: number[], dtype: HostTensor["dtype"]): HostTensor {
  return { shape, dtype, data: allocArray(dtype, numel(shape)) };
}
