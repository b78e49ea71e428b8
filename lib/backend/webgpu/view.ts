/**
 * Strided views: when a chain of movement ops over a stored array only re-indexes it, the
 * element at index i sits at `offset + sum(i_d * strides_d)` of the stored array. Kernels
 * that loop over an operand (dot_general) use this to turn per-element index arithmetic into
 * one multiply-add per loop step.
 */
import { stridesOf } from "../../ir/host_tensor.ts";
import { Primitive } from "../../ir/primitive.ts";
import { paramsOf, type Tensor } from "../../ir/tensor.ts";

export interface StridedView {
  /** The stored node the view reads. */
  source: Tensor;
  offset: number;
  /** Element strides per dim of the viewed node (0 for broadcast dims). */
  strides: number[];
}

/** A size and stride pair: one loop dimension over memory. */
export interface Extent {
  size: number;
  stride: number;
}

/** The strided view of `n` over a stored node, or undefined when `n` is not a pure view. */
export function stridedView(n: Tensor, isStored: (t: Tensor) => boolean): StridedView | undefined {
  if (isStored(n)) return { source: n, offset: 0, strides: stridesOf(n.shape) };
  const x = n.inputs[0];
  switch (n.prim) {
    case Primitive.Transpose: {
      const v = stridedView(x, isStored);
      if (!v) return undefined;
      const { perm } = paramsOf(n, Primitive.Transpose);
      return { ...v, strides: perm.map((p) => v.strides[p]) };
    }
    case Primitive.BroadcastInDim: {
      const v = stridedView(x, isStored);
      if (!v) return undefined;
      const { dims } = paramsOf(n, Primitive.BroadcastInDim);
      const strides = n.shape.map(() => 0);
      dims.forEach((d, i) => (strides[d] = x.shape[i] === 1 ? 0 : v.strides[i]));
      return { ...v, strides };
    }
    case Primitive.Slice: {
      const v = stridedView(x, isStored);
      if (!v) return undefined;
      const { start, strides: step } = paramsOf(n, Primitive.Slice);
      return {
        source: v.source,
        offset: v.offset + start.reduce((s, st, i) => s + st * v.strides[i], 0),
        strides: v.strides.map((s, i) => s * step[i]),
      };
    }
    case Primitive.Reshape: {
      const v = stridedView(x, isStored);
      if (!v) return undefined;
      const strides = reshapeStrides(x.shape, v.strides, n.shape);
      return strides ? { ...v, strides } : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Merges consecutive dims (in the given order) whose strides nest, dropping size-1 dims:
 * [(4, 12), (3, 4), (4, 1)] becomes [(48, 1)]. The result indexes the same elements.
 */
export function mergeExtents(extents: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    if (e.size === 1) continue;
    const last = out[out.length - 1];
    if (last && last.stride === e.stride * e.size) {
      out[out.length - 1] = { size: last.size * e.size, stride: e.stride };
    } else out.push({ ...e });
  }
  return out;
}

/** Strides of a reshape of a strided array without copying, or undefined when impossible. */
function reshapeStrides(
  inShape: readonly number[],
  inStrides: readonly number[],
  outShape: readonly number[],
): number[] | undefined {
  const ins = inShape.map((d, i) => ({ d, s: inStrides[i] })).filter((e) => e.d !== 1);
  const out = outShape.map(() => 0);
  const outIdx = outShape.map((_, i) => i).filter((i) => outShape[i] !== 1);
  let i = 0, o = 0;
  while (i < ins.length && o < outIdx.length) {
    const i0 = i, o0 = o;
    let pi = ins[i++].d, po = outShape[outIdx[o++]];
    while (pi !== po) {
      if (pi < po) pi *= ins[i++].d;
      else po *= outShape[outIdx[o++]];
    }
    // The input dims of the group must nest to act as one dim.
    for (let k = i0; k < i - 1; k++) if (ins[k].s !== ins[k + 1].s * ins[k + 1].d) return undefined;
    let stride = ins[i - 1].s;
    for (let k = o - 1; k >= o0; k--) {
      out[outIdx[k]] = stride;
      stride *= outShape[outIdx[k]];
    }
  }
  return out;
}
