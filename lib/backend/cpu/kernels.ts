/**
 * The CPU backend's kernel table: one entry per primitive, over HostTensors. These are the
 * reference semantics of the IR. f32 math runs in f64 and rounds on store.
 */
import { allocArray, bf16ToF32, f32ToBf16, type TypedArray } from "../../ir/dtype.ts";
import { type HostTensor, numel, stridesOf } from "../../ir/host_tensor.ts";
import { dense, stridedCopy } from "../../ir/strided.ts";
import { type CompareDirection, Primitive } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import { erf } from "./math.ts";
import { matmulF32 } from "./matmul.ts";
import { attentionGradKernel, attentionKernel } from "./attention_ref.ts";

/** The reference kernel of a node of primitive P (its params typed by P). */
export type Kernel<P extends Primitive = Primitive> = (
  node: Tensor<P>,
  ins: HostTensor[],
) => HostTensor;

export const KERNELS: { [P in Primitive]: Kernel<P> } = {
  [Primitive.Input]: () => {
    throw new Error("cpu: input nodes are bound by the executor");
  },
  [Primitive.Constant]: (n) => {
    const v = n.params.value;
    return { shape: v.shape, dtype: v.dtype, data: v.data };
  },
  [Primitive.Iota]: (n) => {
    const { axis } = n.params;
    const out = alloc(n);
    const stride = stridesOf(n.shape)[axis], dim = n.shape[axis];
    for (let i = 0; i < out.data.length; i++) out.data[i] = Math.floor(i / stride) % dim;
    return out;
  },
  [Primitive.Neg]: (n, [x]) => map1(n, x, (a) => -a),
  [Primitive.Exp]: (n, [x]) => map1(n, x, Math.exp),
  [Primitive.Log]: (n, [x]) => map1(n, x, Math.log),
  [Primitive.Sqrt]: (n, [x]) => map1(n, x, Math.sqrt),
  [Primitive.Rsqrt]: (n, [x]) => map1(n, x, (a) => 1 / Math.sqrt(a)),
  [Primitive.Tanh]: (n, [x]) => map1(n, x, Math.tanh),
  [Primitive.Erf]: (n, [x]) => map1(n, x, erf),
  [Primitive.Not]: (n, [x]) => map1(n, x, x.dtype === "bool" ? (a) => (a ? 0 : 1) : (a) => ~a),
  [Primitive.StopGradient]: (_n, [x]) => x,
  [Primitive.Convert]: (n, [x]) => convertKernel(n, x),
  [Primitive.Add]: (n, [x, y]) => map2(n, x, y, (a, b) => a + b),
  [Primitive.Sub]: (n, [x, y]) => map2(n, x, y, (a, b) => a - b),
  [Primitive.Mul]: (n, [x, y]) =>
    map2(n, x, y, x.dtype === "i32" || x.dtype === "u32" ? Math.imul : (a, b) => a * b),
  [Primitive.Div]: (n, [x, y]) =>
    map2(
      n,
      x,
      y,
      x.dtype === "f32" ? (a, b) => a / b : (a, b) => (b === 0 ? -1 : Math.trunc(a / b)),
    ),
  [Primitive.Max]: (n, [x, y]) => map2(n, x, y, (a, b) => (Number.isNaN(a) || a > b ? a : b)),
  [Primitive.Min]: (n, [x, y]) => map2(n, x, y, (a, b) => (Number.isNaN(a) || a < b ? a : b)),
  [Primitive.Compare]: (n, [x, y]) => map2(n, x, y, COMPARE[n.params.direction]),
  [Primitive.And]: (n, [x, y]) => map2(n, x, y, (a, b) => a & b),
  [Primitive.Or]: (n, [x, y]) => map2(n, x, y, (a, b) => a | b),
  [Primitive.Xor]: (n, [x, y]) => map2(n, x, y, (a, b) => a ^ b),
  [Primitive.ShiftLeft]: (n, [x, y]) => map2(n, x, y, (a, b) => (b >>> 0 >= 32 ? 0 : a << b)),
  [Primitive.ShiftRightLogical]: (n, [x, y]) =>
    map2(n, x, y, (a, b) => (b >>> 0 >= 32 ? 0 : x.dtype === "i32" ? a >>> b | 0 : a >>> b)),
  [Primitive.Select]: (n, [p, x, y]) => {
    const out = alloc(n);
    const pd = p.data, xd = x.data, yd = y.data, od = out.data;
    for (let i = 0; i < od.length; i++) od[i] = pd[i] ? xd[i] : yd[i];
    return out;
  },
  [Primitive.ReduceSum]: (n, [x]) => reduceKernel(n, x, 0, (acc, v) => acc + v),
  [Primitive.ReduceMax]: (n, [x]) =>
    reduceKernel(n, x, -Infinity, (acc, v) => (Number.isNaN(acc) || acc > v ? acc : v)),
  [Primitive.Reshape]: (n, [x]) => ({ shape: [...n.shape], dtype: x.dtype, data: x.data }),
  [Primitive.BroadcastInDim]: (n, [x]) => {
    const { dims } = n.params;
    const inStrides = stridesOf(x.shape);
    const strides = n.shape.map(() => 0);
    dims.forEach((d, i) => (strides[d] = x.shape[i] === 1 ? 0 : inStrides[i]));
    return gather(n, x, strides, 0);
  },
  [Primitive.Transpose]: (n, [x]) => {
    const { perm } = n.params;
    const inStrides = stridesOf(x.shape);
    return gather(n, x, perm.map((p) => inStrides[p]), 0);
  },
  [Primitive.Slice]: (n, [x]) => {
    const { start, strides } = n.params;
    const inStrides = stridesOf(x.shape);
    const offset = start.reduce((s, v, i) => s + v * inStrides[i], 0);
    return gather(n, x, strides.map((s, i) => s * inStrides[i]), offset);
  },
  [Primitive.Pad]: (n, [x]) => {
    const { low, value } = n.params;
    const out = alloc(n);
    out.data.fill(value);
    const outStrides = stridesOf(n.shape);
    const base = low.reduce((s, v, i) => s + v * outStrides[i], 0);
    stridedCopy(x.shape, dense(x.data, x.shape), {
      data: out.data,
      offset: base,
      strides: outStrides,
    });
    return out;
  },
  [Primitive.Concatenate]: (n, ins) => {
    const { axis } = n.params;
    const out = alloc(n);
    const outStrides = stridesOf(n.shape);
    let offset = 0;
    for (const x of ins) {
      const to = { data: out.data, offset: offset * outStrides[axis], strides: outStrides };
      stridedCopy(x.shape, dense(x.data, x.shape), to);
      offset += x.shape[axis];
    }
    return out;
  },
  [Primitive.DotGeneral]: (n, [a, b]) => dotGeneralKernel(n, a, b),
  // The cross-replica sum needs the other replicas: replicas.ts runs it.
  [Primitive.AllReduceSum]: (n) => {
    const { replicas } = n.params;
    throw new Error(
      `cpu: all_reduce_sum over ${replicas} replicas needs a CpuBackend with ${replicas} devices`,
    );
  },
  [Primitive.Attention]: attentionKernel,
  [Primitive.AttentionGrad]: attentionGradKernel,
};

/** The kernel of `node`'s primitive (the table, widened to any primitive at this one place). */
export function kernelOf(node: Tensor): Kernel {
  return KERNELS[node.prim] as Kernel;
}

const COMPARE: Record<CompareDirection, (a: number, b: number) => number> = {
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

function alloc(n: Tensor): HostTensor {
  return { shape: [...n.shape], dtype: n.dtype, data: allocArray(n.dtype, numel(n.shape)) };
}

function map1(n: Tensor, x: HostTensor, f: (a: number) => number): HostTensor {
  checkNotBf16(x);
  const out = alloc(n);
  const xd = x.data, od = out.data;
  for (let i = 0; i < od.length; i++) od[i] = f(xd[i]);
  return out;
}

function map2(
  n: Tensor,
  x: HostTensor,
  y: HostTensor,
  f: (a: number, b: number) => number,
): HostTensor {
  checkNotBf16(x);
  const out = alloc(n);
  const xd = x.data, yd = y.data, od = out.data;
  for (let i = 0; i < od.length; i++) od[i] = f(xd[i], yd[i]);
  return out;
}

function checkNotBf16(x: HostTensor): void {
  if (x.dtype === "bf16") {
    throw new Error("cpu backend: bf16 arithmetic is not supported (convert to f32 first)");
  }
}

function convertKernel(n: Tensor, x: HostTensor): HostTensor {
  const out = alloc(n);
  const xd = x.data, od = out.data, to = n.dtype;
  const load = x.dtype === "bf16" ? bf16ToF32 : (v: number) => v;
  for (let i = 0; i < od.length; i++) {
    const v = load(xd[i]);
    if (to === "f32") od[i] = v;
    else if (to === "bf16") od[i] = f32ToBf16(v);
    else if (to === "bool") od[i] = v !== 0 ? 1 : 0;
    else if (to === "u8") od[i] = Number.isNaN(v) ? 0 : Math.min(255, Math.max(0, Math.trunc(v)));
    else if (to === "i32") {
      od[i] = Number.isNaN(v) ? 0 : Math.min(2147483647, Math.max(-2147483648, Math.trunc(v)));
    } else od[i] = Number.isNaN(v) ? 0 : Math.min(4294967295, Math.max(0, Math.trunc(v)));
  }
  return out;
}

/** out[idx] = x[offset + sum(idx_i * strides_i)]: broadcast, transpose and slice. */
function gather(n: Tensor, x: HostTensor, strides: number[], offset: number): HostTensor {
  const out = alloc(n);
  stridedCopy(n.shape, { data: x.data, offset, strides }, dense(out.data, n.shape));
  return out;
}

function reduceKernel(
  n: Tensor<Primitive.ReduceSum | Primitive.ReduceMax>,
  x: HostTensor,
  init: number,
  f: (acc: number, v: number) => number,
): HostTensor {
  checkNotBf16(x);
  const { axes } = n.params;
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  // Move reduced axes last, so each output is a contiguous run of the permuted input.
  const perm = [...kept, ...axes];
  const src = permuted(x, perm);
  const outSize = numel(n.shape);
  const inner = outSize === 0 ? 0 : src.length / outSize;
  const acc = new Float64Array(outSize).fill(init);
  for (let o = 0; o < outSize; o++) {
    let a = init;
    const base = o * inner;
    for (let j = 0; j < inner; j++) a = f(a, src[base + j]);
    acc[o] = a;
  }
  const out = alloc(n);
  out.data.set(acc);
  return out;
}

function dotGeneralKernel(
  n: Tensor<Primitive.DotGeneral>,
  a: HostTensor,
  b: HostTensor,
): HostTensor {
  if (a.dtype !== "f32") {
    throw new Error(`cpu backend: dot_general supports f32 only, got ${a.dtype}`);
  }
  const { lhsBatch, rhsBatch, lhsContract, rhsContract } = n.params;
  const lhsFree = a.shape.map((_, i) => i).filter((i) =>
    !lhsBatch.includes(i) && !lhsContract.includes(i)
  );
  const rhsFree = b.shape.map((_, i) => i).filter((i) =>
    !rhsBatch.includes(i) && !rhsContract.includes(i)
  );
  const size = (t: HostTensor, dims: number[]) => dims.reduce((p, d) => p * t.shape[d], 1);
  const B = size(a, lhsBatch), M = size(a, lhsFree), K = size(a, lhsContract), N = size(b, rhsFree);
  const A = permuted(a, [...lhsBatch, ...lhsFree, ...lhsContract]);
  const Bm = permuted(b, [...rhsBatch, ...rhsContract, ...rhsFree]);
  const data = matmulF32(A as Float32Array, Bm as Float32Array, B, M, K, N);
  return { shape: [...n.shape], dtype: "f32", data };
}

/** `x`'s data with its axes in `perm` order (`x.data` itself when `perm` keeps the order). */
function permuted(x: HostTensor, perm: number[]): TypedArray {
  if (perm.every((p, i) => p === i)) return x.data;
  const inStrides = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]);
  const out = allocArray(x.dtype, x.data.length);
  stridedCopy(
    shape,
    { data: x.data, offset: 0, strides: perm.map((p) => inStrides[p]) },
    dense(out, shape),
  );
  return out;
}
