import type { DType } from "./dtype.ts";
import type { HostTensor } from "./host_tensor.ts";

/**
 * The primitive set of the traced IR. Every rule table (VJP, CPU kernels, WGSL, StableHLO) is
 * typed `{ [P in Primitive]: ... }`, so the compiler refuses a primitive without a rule.
 */
export enum Primitive {
  Input = "input",
  Constant = "constant",
  Iota = "iota",
  // unary
  Neg = "neg",
  Exp = "exp",
  Log = "log",
  Sqrt = "sqrt",
  Rsqrt = "rsqrt",
  Tanh = "tanh",
  Erf = "erf",
  Not = "not",
  // binary (equal shapes and dtypes)
  Add = "add",
  Sub = "sub",
  Mul = "mul",
  Div = "div",
  Max = "max",
  Min = "min",
  Compare = "compare",
  And = "and",
  Or = "or",
  Xor = "xor",
  ShiftLeft = "shift_left",
  ShiftRightLogical = "shift_right_logical",
  // ternary
  Select = "select",
  // type
  Convert = "convert",
  StopGradient = "stop_gradient",
  // reductions
  ReduceSum = "reduce_sum",
  ReduceMax = "reduce_max",
  // movement
  Reshape = "reshape",
  BroadcastInDim = "broadcast_in_dim",
  Transpose = "transpose",
  Slice = "slice",
  Pad = "pad",
  Concatenate = "concatenate",
  // contraction
  DotGeneral = "dot_general",
  // replicas
  AllReduceSum = "all_reduce_sum",
}

export type CompareDirection = "eq" | "ne" | "lt" | "le" | "gt" | "ge";
export type Precision = "default" | "highest";

export interface DotDims {
  lhsBatch: number[];
  rhsBatch: number[];
  lhsContract: number[];
  rhsContract: number[];
}

/** Per-primitive parameters. */
export interface PrimitiveParams {
  [Primitive.Input]: { index: number; name: string };
  [Primitive.Constant]: { value: HostTensor };
  [Primitive.Iota]: { axis: number };
  [Primitive.Neg]: Record<never, never>;
  [Primitive.Exp]: Record<never, never>;
  [Primitive.Log]: Record<never, never>;
  [Primitive.Sqrt]: Record<never, never>;
  [Primitive.Rsqrt]: Record<never, never>;
  [Primitive.Tanh]: Record<never, never>;
  [Primitive.Erf]: Record<never, never>;
  [Primitive.Not]: Record<never, never>;
  [Primitive.Add]: Record<never, never>;
  [Primitive.Sub]: Record<never, never>;
  [Primitive.Mul]: Record<never, never>;
  [Primitive.Div]: Record<never, never>;
  [Primitive.Max]: Record<never, never>;
  [Primitive.Min]: Record<never, never>;
  [Primitive.Compare]: { direction: CompareDirection };
  [Primitive.And]: Record<never, never>;
  [Primitive.Or]: Record<never, never>;
  [Primitive.Xor]: Record<never, never>;
  [Primitive.ShiftLeft]: Record<never, never>;
  [Primitive.ShiftRightLogical]: Record<never, never>;
  [Primitive.Select]: Record<never, never>;
  [Primitive.Convert]: { dtype: DType };
  [Primitive.StopGradient]: Record<never, never>;
  [Primitive.ReduceSum]: { axes: number[] };
  [Primitive.ReduceMax]: { axes: number[] };
  [Primitive.Reshape]: { shape: number[] };
  [Primitive.BroadcastInDim]: { shape: number[]; dims: number[] };
  [Primitive.Transpose]: { perm: number[] };
  [Primitive.Slice]: { start: number[]; limit: number[]; strides: number[] };
  [Primitive.Pad]: { low: number[]; high: number[]; value: number };
  [Primitive.Concatenate]: { axis: number };
  [Primitive.DotGeneral]: DotDims & { precision: Precision };
  [Primitive.AllReduceSum]: { replicas: number };
}

export const UNARY_ELEMENTWISE = new Set<Primitive>([
  Primitive.Neg,
  Primitive.Exp,
  Primitive.Log,
  Primitive.Sqrt,
  Primitive.Rsqrt,
  Primitive.Tanh,
  Primitive.Erf,
  Primitive.Not,
  Primitive.Convert,
  Primitive.StopGradient,
]);

export const BINARY_ELEMENTWISE = new Set<Primitive>([
  Primitive.Add,
  Primitive.Sub,
  Primitive.Mul,
  Primitive.Div,
  Primitive.Max,
  Primitive.Min,
  Primitive.Compare,
  Primitive.And,
  Primitive.Or,
  Primitive.Xor,
  Primitive.ShiftLeft,
  Primitive.ShiftRightLogical,
]);
