/**
 * One StableHLO emission rule per primitive. Each rule appends the op(s) for one graph node and
 * returns the SSA name of its value. Semantics match the CPU backend (the reference): shifts of
 * 32 or more give 0 and f32 -> int conversion truncates, as StableHLO/XLA define them.
 */
import { type DType, f32ToBf16, isFloat, isUnsigned } from "../../ir/dtype.ts";
import { hostTensor } from "../../ir/host_tensor.ts";
import { type CompareDirection, Primitive, type PrimitiveParams } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import type { Emitter } from "./emitter.ts";
import { denseAttr, i64Array, tensorType } from "./types.ts";
import { attentionDecomposed, attentionGradDecomposed } from "../../ir/attention.ts";
import { emitDecomposed } from "./attention.ts";

export type EmitRule<P extends Primitive> = (
  e: Emitter,
  node: Tensor,
  args: readonly string[],
  params: PrimitiveParams[P],
) => string;

export const RULES: { [P in Primitive]: EmitRule<P> } = {
  [Primitive.Input]: (_e, _n, _a, p) => `%arg${p.index}`,
  [Primitive.Constant]: (e, n, _a, p) =>
    e.op("stablehlo.constant", { results: typeOf(n), attrs: [`value = ${denseAttr(p.value)}`] }),
  [Primitive.Iota]: (e, n, _a, p) =>
    e.op("stablehlo.iota", { results: typeOf(n), attrs: [`iota_dimension = ${p.axis} : i64`] }),
  [Primitive.Neg]: elementwise("stablehlo.negate"),
  [Primitive.Exp]: elementwise("stablehlo.exponential"),
  [Primitive.Log]: elementwise("stablehlo.log"),
  [Primitive.Sqrt]: elementwise("stablehlo.sqrt"),
  [Primitive.Rsqrt]: elementwise("stablehlo.rsqrt"),
  [Primitive.Tanh]: elementwise("stablehlo.tanh"),
  [Primitive.Erf]: elementwise("chlo.erf"),
  [Primitive.Not]: elementwise("stablehlo.not"),
  [Primitive.Add]: elementwise("stablehlo.add"),
  [Primitive.Sub]: elementwise("stablehlo.subtract"),
  [Primitive.Mul]: elementwise("stablehlo.multiply"),
  [Primitive.Div]: elementwise("stablehlo.divide"),
  [Primitive.Max]: elementwise("stablehlo.maximum"),
  [Primitive.Min]: elementwise("stablehlo.minimum"),
  [Primitive.And]: elementwise("stablehlo.and"),
  [Primitive.Or]: elementwise("stablehlo.or"),
  [Primitive.Xor]: elementwise("stablehlo.xor"),
  [Primitive.ShiftLeft]: elementwise("stablehlo.shift_left"),
  [Primitive.ShiftRightLogical]: elementwise("stablehlo.shift_right_logical"),
  [Primitive.Select]: elementwise("stablehlo.select"),
  [Primitive.Convert]: elementwise("stablehlo.convert"),
  // Gradients are cut by autodiff; at run time the value passes through unchanged.
  [Primitive.StopGradient]: (_e, _n, args) => args[0],
  [Primitive.Compare]: (e, n, args, p) =>
    e.op("stablehlo.compare", {
      operands: args,
      operandTypes: n.inputs.map(typeOf),
      results: typeOf(n),
      attrs: [
        `comparison_direction = #stablehlo<comparison_direction ${DIRECTIONS[p.direction]}>`,
        `compare_type = #stablehlo<comparison_type ${compareType(n.inputs[0].dtype)}>`,
      ],
    }),
  [Primitive.ReduceSum]: (e, n, args, p) => reduce(e, n, args[0], p.axes, "stablehlo.add", 0),
  [Primitive.ReduceMax]: (e, n, args, p) =>
    reduce(e, n, args[0], p.axes, "stablehlo.maximum", lowest(n.dtype)),
  [Primitive.Reshape]: elementwise("stablehlo.reshape"),
  [Primitive.BroadcastInDim]: (e, n, args, p) =>
    e.op("stablehlo.broadcast_in_dim", {
      operands: args,
      operandTypes: n.inputs.map(typeOf),
      results: typeOf(n),
      attrs: [`broadcast_dimensions = ${i64Array(p.dims)}`],
    }),
  [Primitive.Transpose]: (e, n, args, p) =>
    e.op("stablehlo.transpose", {
      operands: args,
      operandTypes: n.inputs.map(typeOf),
      results: typeOf(n),
      attrs: [`permutation = ${i64Array(p.perm)}`],
    }),
  [Primitive.Slice]: (e, n, args, p) =>
    e.op("stablehlo.slice", {
      operands: args,
      operandTypes: n.inputs.map(typeOf),
      results: typeOf(n),
      attrs: [
        `start_indices = ${i64Array(p.start)}`,
        `limit_indices = ${i64Array(p.limit)}`,
        `strides = ${i64Array(p.strides)}`,
      ],
    }),
  [Primitive.Pad]: (e, n, args, p) => {
    const value = scalarConstant(e, n.dtype, p.value);
    return e.op("stablehlo.pad", {
      operands: [args[0], value],
      operandTypes: [typeOf(n.inputs[0]), tensorType([], n.dtype)],
      results: typeOf(n),
      attrs: [
        `edge_padding_low = ${i64Array(p.low)}`,
        `edge_padding_high = ${i64Array(p.high)}`,
        `interior_padding = ${i64Array(p.low.map(() => 0))}`,
      ],
    });
  },
  [Primitive.Concatenate]: (e, n, args, p) =>
    e.op("stablehlo.concatenate", {
      operands: args,
      operandTypes: n.inputs.map(typeOf),
      results: typeOf(n),
      attrs: [`dimension = ${p.axis} : i64`],
    }),
  [Primitive.DotGeneral]: (e, n, args, p) => {
    const [a, b] = n.inputs;
    const precision = (e.options.precision ?? p.precision).toUpperCase();
    const dims = [
      ["lhs_batching_dimensions", p.lhsBatch],
      ["rhs_batching_dimensions", p.rhsBatch],
      ["lhs_contracting_dimensions", p.lhsContract],
      ["rhs_contracting_dimensions", p.rhsContract],
    ].filter(([, d]) => (d as number[]).length > 0)
      .map(([name, d]) => `${name} = [${(d as number[]).join(", ")}]`);
    const attrs = [
      `dot_dimension_numbers = #stablehlo.dot<${dims.join(", ")}>`,
      `precision_config = [#stablehlo<precision ${precision}>, #stablehlo<precision ${precision}>]`,
    ];
    if (e.options.compute === "bf16" && a.dtype === "f32" && b.dtype === "f32") {
      // Mixed precision: bf16 operands, f32 accumulation and result (timm's AMP matmuls).
      return e.op("stablehlo.dot_general", {
        operands: [e.asBf16(args[0], a.shape), e.asBf16(args[1], b.shape)],
        operandTypes: [tensorType(a.shape, "bf16"), tensorType(b.shape, "bf16")],
        results: typeOf(n),
        attrs,
      });
    }
    return e.op("stablehlo.dot_general", {
      operands: args,
      operandTypes: n.inputs.map(typeOf),
      results: typeOf(n),
      attrs,
    });
  },
  [Primitive.AllReduceSum]: (e, n, args, p) => {
    const group = Array.from({ length: p.replicas }, (_, i) => i);
    return e.op("stablehlo.all_reduce", {
      operands: args,
      operandTypes: n.inputs.map(typeOf),
      results: typeOf(n),
      regions: [e.binaryRegion(n.dtype === "bool" ? "stablehlo.or" : "stablehlo.add", n.dtype)],
      attrs: [`replica_groups = dense<[[${group.join(", ")}]]> : tensor<1x${p.replicas}xi64>`],
    });
  },
  // decomposed into primitive ops, which XLA fuses (stablehlo/attention.ts)
  [Primitive.Attention]: (e, n, args, p) =>
    emitDecomposed(n, args, ([q, k, v]) => attentionDecomposed(q, k, v, p.scale), emitter(e)),
  [Primitive.AttentionGrad]: (e, n, args, p) =>
    emitDecomposed(
      n,
      args,
      ([q, k, v, o, g]) => attentionGradDecomposed(q, k, v, o, g, p.scale),
      emitter(e),
    ),
};

/** One node through its rule (the decomposed attention's nodes). */
const emitter = (e: Emitter) => (t: Tensor, args: string[]): string =>
  (RULES[t.prim] as EmitRule<Primitive>)(e, t, args, t.params);

export function typeOf(t: { shape: readonly number[]; dtype: DType }): string {
  return tensorType(t.shape, t.dtype);
}

const DIRECTIONS: Record<CompareDirection, string> = {
  eq: "EQ",
  ne: "NE",
  lt: "LT",
  le: "LE",
  gt: "GT",
  ge: "GE",
};

function compareType(dtype: DType): string {
  if (isFloat(dtype)) return "FLOAT";
  return isUnsigned(dtype) || dtype === "bool" ? "UNSIGNED" : "SIGNED";
}

/** An op whose operands are the node's inputs and whose attributes are none. */
function elementwise(name: string): EmitRule<Primitive> {
  return (e, n, args) =>
    e.op(name, { operands: args, operandTypes: n.inputs.map(typeOf), results: typeOf(n) });
}

function reduce(
  e: Emitter,
  n: Tensor,
  arg: string,
  axes: readonly number[],
  body: string,
  init: number,
): string {
  const x = n.inputs[0];
  const initValue = scalarConstant(e, x.dtype, init);
  return e.op("stablehlo.reduce", {
    operands: [arg, initValue],
    operandTypes: [typeOf(x), tensorType([], x.dtype)],
    results: typeOf(n),
    regions: [e.binaryRegion(body, x.dtype)],
    attrs: [`dimensions = ${i64Array(axes)}`],
  });
}

/** The identity of max: -inf for floats, the minimum for integers. */
function lowest(dtype: DType): number {
  switch (dtype) {
    case "f32":
    case "bf16":
      return -Infinity;
    case "i32":
      return -2147483648;
    default:
      return 0;
  }
}

/** A 0-d constant holding `value` (for bf16, rounded to bf16 bits as HostTensors store them). */
function scalarConstant(e: Emitter, dtype: DType, value: number): string {
  const stored = dtype === "bf16" ? f32ToBf16(value) : value;
  return e.op("stablehlo.constant", {
    results: tensorType([], dtype),
    attrs: [`value = ${denseAttr(hostTensor([], dtype, [stored]))}`],
  });
}
