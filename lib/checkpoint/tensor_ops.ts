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
  if (perm.length !== rank || [...perm].sort().some((p, i) => p !== i)) {
    throw new Error(`transpose: perm [${perm}] for rank ${rank}`);
  }
  const outShape = perm.map((p) => t.shape[p]);
  const out = allocArray(t.dtype, numel(outShape));
  // Trailing axes that stay in place move as contiguous blocks.
  let lead = rank;
  while (lead > 0 && perm[lead - 1] === lead - 1) lead--;
  const block = numel(t.shape.slice(lead));
  if (lead === 2 && block === 1) {
    transpose2d(t.data, out, t.shape[0], t.shape[1]);
    return { shape: outShape, dtype: t.dtype, data: out };
  }
  const inStrides = stridesOf(t.shape);
  const strides = perm.slice(0, lead).map((p) => inStrides[p]);
  const dims = outShape.slice(0, lead);
  const count = numel(dims);
  const idx = new Array<number>(lead).fill(0);
  let src = 0;
  for (let i = 0; i < count; i++) {
    if (block === 1) out[i] = t.data[src];
    else out.set(t.data.subarray(src, src + block) as never, i * block);
    for (let d = lead - 1; d >= 0; d--) {
      idx[d]++;
      src += strides[d];
      if (idx[d] < dims[d]) break;
      src -= strides[d] * dims[d];
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

/**
 * out[c][r] = x[r][c], in 16x16 tiles. The tile is its own small function: V8 optimises it after
 * a few calls, whereas one big loop nest runs interpreted for its whole first (multi-second) call.
 */
function transpose2d(
  x: ArrayLike<number>,
  out: { [i: number]: number },
  rows: number,
  cols: number,
) {
  const T = 16;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      tile(x, out, rows, cols, r0, r1, c0, Math.min(cols, c0 + T));
    }
  }
}

function tile(
  x: ArrayLike<number>,
  out: { [i: number]: number },
  rows: number,
  cols: number,
  r0: number,
  r1: number,
  c0: number,
  c1: number,
) {
  for (let c = c0; c < c1; c++) {
    const o = c * rows;
    for (let r = r0, s = r0 * cols + c; r < r1; r++, s += cols) out[o + r] = x[s];
  }
}
