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
  // fused attention (lib/ir/attention.ts)
  Attention = "attention",
  AttentionGrad = "attention_grad",
}

export type CompareDirection = "eq" | "ne" | "lt" | "le" | "gt" | "ge";
/**
 * A dot's `precision_config` (jax.lax.Precision): "default" is jax's default (one bf16 pass on
 * TPU, TF32 on NVIDIA), "high" three bf16 passes on TPU, "highest" full f32. CPU and WebGPU
 * compute f32 for all three.
 */
export type Precision = "default" | "high" | "highest";

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
  [Primitive.Attention]: { scale: number };
  [Primitive.AttentionGrad]: { scale: number };
}

/**
 * What a primitive does to its operands, the one classification every planner and emitter
 * reads (CPU and WebGPU fusion, the wasm emitter):
 * - `source`: no operands (graph inputs, constants, iota);
 * - `elementwise`: output element i depends only on element i of each operand (equal shapes);
 * - `movement`: re-indexes (or pads / joins) its operands, no arithmetic;
 * - `reduce`: sums or maxes over axes;
 * - `contract`: dot_general;
 * - `collective`: combines the values of replicas;
 * - `attention`: fused scaled dot-product attention and its gradient (lib/ir/attention.ts), one
 *   kernel each that never stores a [.., N, N] tensor.
 */
export type PrimitiveKind =
  | "source"
  | "elementwise"
  | "movement"
  | "reduce"
  | "contract"
  | "collective"
  | "attention";

export const PRIMITIVE_KIND = {
  [Primitive.Input]: "source",
  [Primitive.Constant]: "source",
  [Primitive.Iota]: "source",
  [Primitive.Neg]: "elementwise",
  [Primitive.Exp]: "elementwise",
  [Primitive.Log]: "elementwise",
  [Primitive.Sqrt]: "elementwise",
  [Primitive.Rsqrt]: "elementwise",
  [Primitive.Tanh]: "elementwise",
  [Primitive.Erf]: "elementwise",
  [Primitive.Not]: "elementwise",
  [Primitive.Add]: "elementwise",
  [Primitive.Sub]: "elementwise",
  [Primitive.Mul]: "elementwise",
  [Primitive.Div]: "elementwise",
  [Primitive.Max]: "elementwise",
  [Primitive.Min]: "elementwise",
  [Primitive.Compare]: "elementwise",
  [Primitive.And]: "elementwise",
  [Primitive.Or]: "elementwise",
  [Primitive.Xor]: "elementwise",
  [Primitive.ShiftLeft]: "elementwise",
  [Primitive.ShiftRightLogical]: "elementwise",
  [Primitive.Select]: "elementwise",
  [Primitive.Convert]: "elementwise",
  [Primitive.StopGradient]: "elementwise",
  [Primitive.ReduceSum]: "reduce",
  [Primitive.ReduceMax]: "reduce",
  [Primitive.Reshape]: "movement",
  [Primitive.BroadcastInDim]: "movement",
  [Primitive.Transpose]: "movement",
  [Primitive.Slice]: "movement",
  [Primitive.Pad]: "movement",
  [Primitive.Concatenate]: "movement",
  [Primitive.DotGeneral]: "contract",
  [Primitive.AllReduceSum]: "collective",
  [Primitive.Attention]: "attention",
  [Primitive.AttentionGrad]: "attention",
} as const satisfies { readonly [P in Primitive]: PrimitiveKind };

/** The primitives of one kind, as a type: `PrimitiveOfKind<"elementwise">`. */
export type PrimitiveOfKind<K extends PrimitiveKind> = {
  [P in Primitive]: (typeof PRIMITIVE_KIND)[P] extends K ? P : never;
}[Primitive];

export type ElementwisePrimitive = PrimitiveOfKind<"elementwise">;
export type MovementPrimitive = PrimitiveOfKind<"movement">;

/** Whether `prim` is of kind `kind` (narrowing it to that kind's primitives). */
export function isKind<K extends PrimitiveKind>(
  prim: Primitive,
  kind: K,
): prim is PrimitiveOfKind<K> {
  return PRIMITIVE_KIND[prim] === kind;
}
