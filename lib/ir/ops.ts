/**
 * The tracing API: functions that build graph nodes with shape inference and checks.
 * Primitives take equal shapes; these wrappers add numpy-style broadcasting (as explicit
 * `broadcast_in_dim` nodes) and turn numbers into constants of the other operand's dtype.
 * Shape errors are thrown here, at trace time, naming the op.
 */
import { type DType, isFloat } from "./dtype.ts";
import { type HostTensor, hostTensor } from "./host_tensor.ts";
import {
  type CompareDirection,
  type DotDims,
  type Precision,
  Primitive,
  type PrimitiveParams,
} from "./primitive.ts";
import { Tensor } from "./tensor.ts";

export type Operand = Tensor | number;

// ---------------------------------------------------------------- creation

/** A constant: a number (scalar of `dtype`, broadcast to `shape`) or a host array. */
export function constant(
  value: number | HostTensor,
  dtype: DType = "f32",
  shape: readonly number[] = [],
): Tensor {
  if (typeof value === "number") {
    const scalar = node(
      Primitive.Constant,
      [],
      { value: hostTensor([], dtype, [value]) },
      [],
      dtype,
    );
    return shape.length === 0 ? scalar : broadcastInDim(scalar, shape, []);
  }
  return node(Primitive.Constant, [], { value }, value.shape, value.dtype);
}

export function full(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  return constant(value, dtype, shape);
}

export function zeros(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return constant(0, dtype, shape);
}

export function ones(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return constant(1, dtype, shape);
}

/** Values 0..shape[axis]-1 along `axis`. */
export function iota(shape: readonly number[], axis = 0, dtype: DType = "i32"): Tensor {
  checkAxis("iota", axis, shape.length);
  return node(Primitive.Iota, [], { axis }, shape, dtype);
}

/** A graph input (used by `trace`). */
export function input(index: number, name: string, shape: readonly number[], dtype: DType): Tensor {
  return node(Primitive.Input, [], { index, name }, shape, dtype);
}

// ---------------------------------------------------------------- elementwise

export function neg(x: Tensor): Tensor {
  return unary(Primitive.Neg, x);
}
export function exp(x: Tensor): Tensor {
  return unary(Primitive.Exp, x, true);
}
export function log(x: Tensor): Tensor {
  return unary(Primitive.Log, x, true);
}
export function sqrt(x: Tensor): Tensor {
  return unary(Primitive.Sqrt, x, true);
}
export function rsqrt(x: Tensor): Tensor {
  return unary(Primitive.Rsqrt, x, true);
}
export function tanh(x: Tensor): Tensor {
  return unary(Primitive.Tanh, x, true);
}
export function erf(x: Tensor): Tensor {
  return unary(Primitive.Erf, x, true);
}
/** Logical not of a bool tensor, bitwise not of an integer one. */
export function not(x: Tensor): Tensor {
  if (isFloat(x.dtype)) throw new Error(`not: needs bool or integer input, got ${x.dtype}`);
  return unary(Primitive.Not, x);
}
export function stopGradient(x: Tensor): Tensor {
  return unary(Primitive.StopGradient, x);
}
export function convert(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return node(Primitive.Convert, [x], { dtype }, x.shape, dtype);
}

export function add(a: Operand, b: Operand): Tensor {
  return binary(Primitive.Add, a, b);
}
export function sub(a: Operand, b: Operand): Tensor {
  return binary(Primitive.Sub, a, b);
}
export function mul(a: Operand, b: Operand): Tensor {
  return binary(Primitive.Mul, a, b);
}
export function div(a: Operand, b: Operand): Tensor {
  return binary(Primitive.Div, a, b);
}
export function maximum(a: Operand, b: Operand): Tensor {
  return binary(Primitive.Max, a, b);
}
export function minimum(a: Operand, b: Operand): Tensor {
  return binary(Primitive.Min, a, b);
}
export function and(a: Operand, b: Operand): Tensor {
  return binary(Primitive.And, a, b, "int");
}
export function or(a: Operand, b: Operand): Tensor {
  return binary(Primitive.Or, a, b, "int");
}
export function xor(a: Operand, b: Operand): Tensor {
  return binary(Primitive.Xor, a, b, "int");
}
export function shiftLeft(a: Operand, b: Operand): Tensor {
  return binary(Primitive.ShiftLeft, a, b, "int");
}
export function shiftRightLogical(a: Operand, b: Operand): Tensor {
  return binary(Primitive.ShiftRightLogical, a, b, "int");
}

export function compare(a: Operand, b: Operand, direction: CompareDirection): Tensor {
  const [x, y] = promote("compare", a, b);
  const shape = broadcastShapes("compare", x.shape, y.shape);
  return node(
    Primitive.Compare,
    [broadcastTo(x, shape), broadcastTo(y, shape)],
    { direction },
    shape,
    "bool",
  );
}
export const eq = (a: Operand, b: Operand) => compare(a, b, "eq");
export const ne = (a: Operand, b: Operand) => compare(a, b, "ne");
export const lt = (a: Operand, b: Operand) => compare(a, b, "lt");
export const le = (a: Operand, b: Operand) => compare(a, b, "le");
export const gt = (a: Operand, b: Operand) => compare(a, b, "gt");
export const ge = (a: Operand, b: Operand) => compare(a, b, "ge");

/** `pred ? a : b` elementwise, with broadcasting. */
export function where(pred: Tensor, a: Operand, b: Operand): Tensor {
  if (pred.dtype !== "bool") throw new Error(`where: predicate must be bool, got ${pred.dtype}`);
  const [x, y] = promote("where", a, b);
  const shape = broadcastShapes("where", broadcastShapes("where", pred.shape, x.shape), y.shape);
  return node(
    Primitive.Select,
    [broadcastTo(pred, shape), broadcastTo(x, shape), broadcastTo(y, shape)],
    {},
    shape,
    x.dtype,
  );
}

export function abs(x: Tensor): Tensor {
  return maximum(x, neg(x));
}
export function square(x: Tensor): Tensor {
  return mul(x, x);
}
export function sigmoid(x: Tensor): Tensor {
  return div(1, add(exp(neg(x)), 1));
}

// ---------------------------------------------------------------- reductions

export function sum(x: Tensor, axes?: number | number[], keepdims = false): Tensor {
  return reduce(Primitive.ReduceSum, x, axes, keepdims);
}

export function max(x: Tensor, axes?: number | number[], keepdims = false): Tensor {
  return reduce(Primitive.ReduceMax, x, axes, keepdims);
}

export function mean(x: Tensor, axes?: number | number[], keepdims = false): Tensor {
  const ax = normAxes("mean", x.ndim, axes);
  let count = 1;
  for (const a of ax) count *= x.shape[a];
  return div(sum(x, ax, keepdims), count);
}

/** Sum over replicas (data parallel); identity on a single replica. */
export function allReduceSum(x: Tensor, replicas: number): Tensor {
  if (replicas === 1) return x;
  return node(Primitive.AllReduceSum, [x], { replicas }, x.shape, x.dtype);
}

// ---------------------------------------------------------------- movement

/** Reshape; one dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const out = [...shape];
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    const known = out.reduce((p, d, i) => (i === unknown ? p : p * d), 1);
    out[unknown] = known === 0 ? 0 : x.size / known;
  }
  if (out.some((d) => !Number.isInteger(d) || d < 0) || out.reduce((p, d) => p * d, 1) !== x.size) {
    throw new Error(`reshape: cannot reshape [${x.shape}] to [${shape}]`);
  }
  if (sameShape(out, x.shape)) return x;
  return node(Primitive.Reshape, [x], { shape: out }, out, x.dtype);
}

/** StableHLO broadcast_in_dim: operand dim i becomes output dim dims[i] (size equal or 1). */
export function broadcastInDim(
  x: Tensor,
  shape: readonly number[],
  dims: readonly number[],
): Tensor {
  if (dims.length !== x.ndim) {
    throw new Error(`broadcast_in_dim: ${dims.length} dims given for a rank-${x.ndim} operand`);
  }
  dims.forEach((d, i) => {
    if (d < 0 || d >= shape.length || (i > 0 && d <= dims[i - 1])) {
      throw new Error(
        `broadcast_in_dim: dims [${dims}] must be increasing and < rank ${shape.length}`,
      );
    }
    if (x.shape[i] !== 1 && x.shape[i] !== shape[d]) {
      throw new Error(
        `broadcast_in_dim: operand [${x.shape}] does not fit [${shape}] at dims [${dims}]`,
      );
    }
  });
  if (sameShape(shape, x.shape)) return x;
  return node(
    Primitive.BroadcastInDim,
    [x],
    { shape: [...shape], dims: [...dims] },
    shape,
    x.dtype,
  );
}

/** Numpy-style broadcast (right-aligned). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const offset = shape.length - x.ndim;
  if (offset < 0) throw new Error(`broadcast: cannot broadcast [${x.shape}] to [${shape}]`);
  return broadcastInDim(x, shape, x.shape.map((_, i) => i + offset));
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ? [...perm] : x.shape.map((_, i) => x.ndim - 1 - i);
  if (p.length !== x.ndim || [...p].sort((a, b) => a - b).some((v, i) => v !== i)) {
    throw new Error(`transpose: [${p}] is not a permutation of rank ${x.ndim}`);
  }
  if (p.every((v, i) => v === i)) return x;
  return node(Primitive.Transpose, [x], { perm: p }, p.map((i) => x.shape[i]), x.dtype);
}

export function slice(
  x: Tensor,
  start: readonly number[],
  limit: readonly number[],
  strides?: readonly number[],
): Tensor {
  const st = strides ? [...strides] : start.map(() => 1);
  if (start.length !== x.ndim || limit.length !== x.ndim || st.length !== x.ndim) {
    throw new Error(`slice: start/limit/strides must have rank ${x.ndim}`);
  }
  const shape = x.shape.map((d, i) => {
    if (start[i] < 0 || limit[i] > d || start[i] > limit[i] || st[i] < 1) {
      throw new Error(`slice: [${start}]..[${limit}] step [${st}] out of range for [${x.shape}]`);
    }
    return Math.ceil((limit[i] - start[i]) / st[i]);
  });
  if (sameShape(shape, x.shape)) return x;
  return node(
    Primitive.Slice,
    [x],
    { start: [...start], limit: [...limit], strides: st },
    shape,
    x.dtype,
  );
}

/** Slice along one axis. */
export function sliceAxis(
  x: Tensor,
  axis: number,
  start: number,
  limit: number,
  stride = 1,
): Tensor {
  checkAxis("slice", axis, x.ndim);
  const s = x.shape.map(() => 0), l = [...x.shape], st = x.shape.map(() => 1);
  s[axis] = start;
  l[axis] = limit;
  st[axis] = stride;
  return slice(x, s, l, st);
}

export function pad(x: Tensor, low: readonly number[], high: readonly number[], value = 0): Tensor {
  if (low.length !== x.ndim || high.length !== x.ndim || [...low, ...high].some((v) => v < 0)) {
    throw new Error(`pad: low/high must be non-negative with rank ${x.ndim}`);
  }
  const shape = x.shape.map((d, i) => d + low[i] + high[i]);
  if (sameShape(shape, x.shape)) return x;
  return node(Primitive.Pad, [x], { low: [...low], high: [...high], value }, shape, x.dtype);
}

export function concatenate(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error("concatenate: no operands");
  if (xs.length === 1) return xs[0];
  const first = xs[0];
  checkAxis("concatenate", axis, first.ndim);
  let total = 0;
  for (const x of xs) {
    if (
      x.dtype !== first.dtype || x.ndim !== first.ndim ||
      x.shape.some((d, i) => i !== axis && d !== first.shape[i])
    ) {
      throw new Error(
        `concatenate: operands [${first.shape}] ${first.dtype} and [${x.shape}] ${x.dtype} differ off axis ${axis}`,
      );
    }
    total += x.shape[axis];
  }
  const shape = [...first.shape];
  shape[axis] = total;
  return node(Primitive.Concatenate, xs, { axis }, shape, first.dtype);
}

export function expandDims(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? x.ndim + 1 + axis : axis;
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? x.ndim + axis : axis;
  if (x.shape[a] !== 1) throw new Error(`squeeze: axis ${axis} of [${x.shape}] is not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

// ---------------------------------------------------------------- contraction

/**
 * General dot product (StableHLO semantics). Output dims: batch, lhs free, rhs free.
 */
export function dotGeneral(
  a: Tensor,
  b: Tensor,
  dims: DotDims,
  // jax's default, which deit3-jax ran with; `matmul-precision` overrides it at emission.
  precision: Precision = "default",
): Tensor {
  const { lhsBatch, rhsBatch, lhsContract, rhsContract } = dims;
  if (a.dtype !== b.dtype) throw new Error(`dot_general: dtypes ${a.dtype} and ${b.dtype} differ`);
  if (lhsBatch.length !== rhsBatch.length || lhsContract.length !== rhsContract.length) {
    throw new Error("dot_general: batch/contracting dimension lists differ in length");
  }
  const all = [...lhsBatch, ...lhsContract];
  const allR = [...rhsBatch, ...rhsContract];
  for (const [list, t, name] of [[all, a, "lhs"], [allR, b, "rhs"]] as const) {
    if (new Set(list).size !== list.length || list.some((d) => d < 0 || d >= t.ndim)) {
      throw new Error(`dot_general: bad ${name} dimensions [${list}] for rank ${t.ndim}`);
    }
  }
  lhsBatch.forEach((d, i) => {
    if (a.shape[d] !== b.shape[rhsBatch[i]]) {
      throw new Error(
        `dot_general: batch sizes differ: [${a.shape}] dim ${d} vs [${b.shape}] dim ${rhsBatch[i]}`,
      );
    }
  });
  lhsContract.forEach((d, i) => {
    if (a.shape[d] !== b.shape[rhsContract[i]]) {
      throw new Error(
        `dot_general: contracting sizes differ: [${a.shape}] dim ${d} vs [${b.shape}] dim ${
          rhsContract[i]
        }`,
      );
    }
  });
  const lhsFree = a.shape.map((_, i) => i).filter((i) => !all.includes(i));
  const rhsFree = b.shape.map((_, i) => i).filter((i) => !allR.includes(i));
  const shape = [
    ...lhsBatch.map((d) => a.shape[d]),
    ...lhsFree.map((d) => a.shape[d]),
    ...rhsFree.map((d) => b.shape[d]),
  ];
  return node(
    Primitive.DotGeneral,
    [a, b],
    {
      lhsBatch: [...lhsBatch],
      rhsBatch: [...rhsBatch],
      lhsContract: [...lhsContract],
      rhsContract: [...rhsContract],
      precision,
    },
    shape,
    a.dtype,
  );
}

/** `a[..., k] @ b[k, n]`: contracts the last axis of `a` with the first of `b`. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return dotGeneral(a, b, {
    lhsBatch: [],
    rhsBatch: [],
    lhsContract: [a.ndim - 1],
    rhsContract: [0],
  });
}

// ---------------------------------------------------------------- helpers

/** Low-level node constructor; shapes must already be checked. */
export function node<P extends Primitive>(
  prim: P,
  inputs: readonly Tensor[],
  params: PrimitiveParams[P],
  shape: readonly number[],
  dtype: DType,
): Tensor<P> {
  return new Tensor(prim, inputs, params, [...shape], dtype);
}

export function normAxes(op: string, ndim: number, axes?: number | number[]): number[] {
  const list = axes === undefined
    ? Array.from({ length: ndim }, (_, i) => i)
    : typeof axes === "number"
    ? [axes]
    : axes;
  const out = list.map((a) => (a < 0 ? a + ndim : a));
  for (const a of out) checkAxis(op, a, ndim);
  if (new Set(out).size !== out.length) throw new Error(`${op}: repeated axis in [${list}]`);
  return out.sort((x, y) => x - y);
}

export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1, y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new Error(`${op}: shapes [${a}] and [${b}] cannot broadcast`);
    }
    out[i] = x === 1 ? y : x;
  }
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function unary(prim: Primitive, x: Tensor, floatOnly = false): Tensor {
  if (floatOnly && !isFloat(x.dtype)) {
    throw new Error(`${prim}: needs a float input, got ${x.dtype}`);
  }
  return node(prim, [x], {} as never, x.shape, x.dtype);
}

function binary(prim: Primitive, a: Operand, b: Operand, kind: "any" | "int" = "any"): Tensor {
  const [x, y] = promote(prim, a, b);
  if (kind === "int" && isFloat(x.dtype)) {
    throw new Error(`${prim}: needs integer or bool inputs, got ${x.dtype}`);
  }
  const shape = broadcastShapes(prim, x.shape, y.shape);
  return node(prim, [broadcastTo(x, shape), broadcastTo(y, shape)], {} as never, shape, x.dtype);
}

/** Numbers take the dtype of the tensor operand; two tensors must agree. */
function promote(op: string, a: Operand, b: Operand): [Tensor, Tensor] {
  if (typeof a === "number" && typeof b === "number") return [constant(a), constant(b)];
  if (typeof a === "number") return [constant(a, (b as Tensor).dtype), b as Tensor];
  if (typeof b === "number") return [a, constant(b, a.dtype)];
  if (a.dtype !== b.dtype) {
    throw new Error(`${op}: dtypes ${a.dtype} and ${b.dtype} differ (convert one explicitly)`);
  }
  return [a, b];
}

function reduce(
  prim: Primitive.ReduceSum | Primitive.ReduceMax,
  x: Tensor,
  axes: number | number[] | undefined,
  keepdims: boolean,
): Tensor {
  const ax = normAxes(prim, x.ndim, axes);
  if (ax.length === 0) return x;
  const shape = x.shape.filter((_, i) => !ax.includes(i));
  const r = node(prim, [x], { axes: ax }, shape, x.dtype);
  return keepdims ? reshape(r, x.shape.map((d, i) => (ax.includes(i) ? 1 : d))) : r;
}

function checkAxis(op: string, axis: number, ndim: number): void {
  if (!Number.isInteger(axis) || axis < 0 || axis >= ndim) {
    throw new Error(`${op}: axis ${axis} out of range for rank ${ndim}`);
  }
}
