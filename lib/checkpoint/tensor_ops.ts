/** The few layout operations checkpoint conversion needs, for any DType (pure copies). */
import { allocArray, type DType } from "../ir/dtype.ts";
import { type HostTensor, numel, stridesOf } from "../ir/host_tensor.ts";
import { dense, type Strided, stridedCopy } from "../ir/strided.ts";

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
  if (perm.length !== rank || [...perm].sort().some((p, i) => p !== i)) {
    throw new Error(`transpose: perm [${perm}] for rank ${rank}`);
  }
  const shape = perm.map((p) => t.shape[p]);
  const inStrides = stridesOf(t.shape);
  const from = { data: t.data, offset: 0, strides: perm.map((p) => inStrides[p]) };
  return copied(shape, t.dtype, from);
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
  const shape = [...first.shape];
  shape[axis] = ts.reduce((a, t) => a + t.shape[axis], 0);
  const out = zeros(shape, first.dtype);
  const strides = stridesOf(shape);
  let offset = 0;
  for (const t of ts) {
    stridedCopy(t.shape, dense(t.data, t.shape), { data: out.data, offset, strides });
    offset += t.shape[axis] * strides[axis];
  }
  return out;
}

/** A slice `start..end` of axis `axis`. */
export function sliceAxis(t: HostTensor, axis: number, start: number, end: number): HostTensor {
  const shape = [...t.shape];
  shape[axis] = end - start;
  const from = dense(t.data, t.shape);
  return copied(shape, t.dtype, { ...from, offset: start * from.strides[axis] });
}

/** Zero-filled tensor. */
export function zeros(shape: number[], dtype: HostTensor["dtype"]): HostTensor {
  return { shape, dtype, data: allocArray(dtype, numel(shape)) };
}

/** A new dense tensor of `shape` holding `from`'s elements. */
function copied(shape: number[], dtype: DType, from: Strided): HostTensor {
  const out = zeros(shape, dtype);
  stridedCopy(shape, from, dense(out.data, shape));
  return out;
}
