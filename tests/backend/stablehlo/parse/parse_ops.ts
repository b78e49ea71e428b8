/**
 * The IR meaning of each StableHLO op the parser reads (parse.ts), and the
 * attribute readers (`dense<...>`, `array<i64: ...>`, `#stablehlo.dot<...>`, enums).
 */
import { type DType, f32ToBf16 } from "../../../../lib/ir/dtype.ts";
import { type HostTensor, hostTensor, numel } from "../../../../lib/ir/host_tensor.ts";
import * as ops from "../../../../lib/ir/ops.ts";
import {
  type CompareDirection,
  type Precision,
  Primitive,
  type PrimitiveParams,
} from "../../../../lib/ir/primitive.ts";
import { isPrim, type Tensor } from "../../../../lib/ir/tensor.ts";

/** A parsed tensor type. */
export interface TypeSpec {
  shape: number[];
  dtype: DType;
}

/** One parsed op (regions carry their block arguments in `args`). */
export interface Op {
  line: number;
  results: string[];
  name: string;
  operands: string[];
  regions: Op[][];
  attrs: Map<string, string>;
  operandTypes: TypeSpec[];
  resultTypes: TypeSpec[];
}

const UNARY: Record<string, (x: Tensor) => Tensor> = {
  "stablehlo.negate": ops.neg,
  "stablehlo.exponential": ops.exp,
  "stablehlo.log": ops.log,
  "stablehlo.sqrt": ops.sqrt,
  "stablehlo.rsqrt": ops.rsqrt,
  "stablehlo.tanh": ops.tanh,
  "chlo.erf": ops.erf,
  "stablehlo.not": ops.not,
};

const BINARY: Record<string, (a: Tensor, b: Tensor) => Tensor> = {
  "stablehlo.add": ops.add,
  "stablehlo.subtract": ops.sub,
  "stablehlo.multiply": ops.mul,
  "stablehlo.divide": ops.div,
  "stablehlo.maximum": ops.maximum,
  "stablehlo.minimum": ops.minimum,
  "stablehlo.and": ops.and,
  "stablehlo.or": ops.or,
  "stablehlo.xor": ops.xor,
  "stablehlo.shift_left": ops.shiftLeft,
  "stablehlo.shift_right_logical": ops.shiftRightLogical,
};

/** The IR value(s) of one op. */
export function build(op: Op, args: Tensor[]): Tensor[] {
  const fail = (why: string): never => {
    throw new Error(`stablehlo parse: line ${op.line}: ${op.name}: ${why}`);
  };
  const attr = (name: string): string => op.attrs.get(name) ?? fail(`missing attribute ${name}`);
  const out = op.resultTypes[0];
  args.forEach((a, i) => {
    const t = op.operandTypes[i];
    if (!t || !sameType(a, t)) fail(`operand ${i} is ${a.dtype}[${a.shape}], declared ${show(t)}`);
  });
  if (op.name in UNARY) return [UNARY[op.name](args[0])];
  if (op.name in BINARY) return [BINARY[op.name](args[0], args[1])];
  switch (op.name) {
    case "stablehlo.constant":
      return [ops.constant(denseValue(attr("value"), out, fail))];
    case "stablehlo.iota":
      return [ops.iota(out.shape, intAttr(attr("iota_dimension")), out.dtype)];
    case "stablehlo.convert":
      return [ops.convert(args[0], out.dtype)];
    case "stablehlo.select":
      return [ops.where(args[0], args[1], args[2])];
    case "stablehlo.compare": {
      const dir = enumAttr(attr("comparison_direction"), "comparison_direction", fail);
      const kind = enumAttr(attr("compare_type"), "comparison_type", fail);
      const dtype = args[0].dtype;
      const expected = dtype === "f32" || dtype === "bf16"
        ? "FLOAT"
        : dtype === "i32"
        ? "SIGNED"
        : "UNSIGNED";
      if (kind !== expected) {
        fail(`compare_type ${kind} on ${dtype} (only ${expected} is supported)`);
      }
      return [ops.compare(args[0], args[1], dir.toLowerCase() as CompareDirection)];
    }
    case "stablehlo.reshape":
      return [ops.reshape(args[0], out.shape)];
    case "stablehlo.broadcast_in_dim":
      return [ops.broadcastInDim(args[0], out.shape, i64s(attr("broadcast_dimensions")))];
    case "stablehlo.transpose":
      return [ops.transpose(args[0], i64s(attr("permutation")))];
    case "stablehlo.slice":
      return [
        ops.slice(
          args[0],
          i64s(attr("start_indices")),
          i64s(attr("limit_indices")),
          i64s(attr("strides")),
        ),
      ];
    case "stablehlo.pad": {
      if (i64s(attr("interior_padding")).some((v) => v !== 0)) fail("interior padding");
      const value = constantScalar(args[1]) ?? fail("the padding value must be a constant");
      return [
        ops.pad(args[0], i64s(attr("edge_padding_low")), i64s(attr("edge_padding_high")), value),
      ];
    }
    case "stablehlo.concatenate":
      return [ops.concatenate(args, intAttr(attr("dimension")))];
    case "stablehlo.dot_general": {
      const dims = dotDims(attr("dot_dimension_numbers"));
      const precisions = [...attr("precision_config").matchAll(/#stablehlo<precision (\w+)>/g)]
        .map((m) => m[1]);
      if (precisions.length !== 2 || precisions[0] !== precisions[1]) fail("precision_config");
      const precision = precisions[0].toLowerCase() as Precision;
      let [a, b] = args;
      if (a.dtype === "bf16" && b.dtype === "bf16" && out.dtype === "f32") {
        // bf16 x bf16 products are exact in f32: f32 accumulation of the widened operands.
        a = ops.convert(a, "f32");
        b = ops.convert(b, "f32");
      }
      return [ops.dotGeneral(a, b, dims, precision)];
    }
    case "stablehlo.reduce": {
      const body = regionBody(op, fail);
      const axes = i64s(attr("dimensions"));
      const [x, init] = args;
      // The IR reductions start from the identity; any other init value is folded in after.
      const v = constantScalar(init);
      const fold = (r: Tensor, identity: number, f: (a: Tensor, b: Tensor) => Tensor) =>
        v !== undefined && Object.is(v, identity) ? r : f(r, ops.broadcastTo(init, r.shape));
      if (body === "stablehlo.add") return [fold(ops.sum(x, axes), 0, ops.add)];
      if (body === "stablehlo.maximum") {
        return [
          fold(
            ops.max(x, axes),
            x.dtype === "f32" || x.dtype === "bf16" ? -Infinity : NaN,
            ops.maximum,
          ),
        ];
      }
      return fail(`reduction body ${body}`);
    }
    case "stablehlo.all_reduce": {
      if (regionBody(op, fail) !== "stablehlo.add") fail("only sums are supported");
      const groups =
        /^dense<\[\[([\d, ]*)\]\]> : tensor<1x(\d+)xi64>$/.exec(attr("replica_groups")) ??
          fail("replica_groups must be one group");
      const ids = groups[1].split(",").map((s) => Number(s.trim()));
      if (ids.some((v, i) => v !== i)) fail("replica_groups must list 0..N-1");
      return [ops.allReduceSum(args[0], ids.length)];
    }
    case "stablehlo.optimization_barrier":
      return args;
    default:
      return fail("unsupported op");
  }
}

function regionBody(op: Op, fail: (why: string) => never): string {
  const region = op.regions[0] as (Op[] & { args?: string[] }) | undefined;
  if (!region || region.length !== 2 || region[1].name !== "stablehlo.return") {
    return fail("expected a region with one binary op and a return");
  }
  const [body, ret] = region;
  const args = region.args ?? [];
  if (body.operands.join() !== args.join() || ret.operands[0] !== body.results[0]) {
    fail("the region must apply its op to the block arguments and return the result");
  }
  return body.name;
}

export function checkType(t: Tensor, spec: TypeSpec, op: Op): void {
  if (!sameType(t, spec)) {
    throw new Error(
      `stablehlo parse: line ${op.line}: ${op.name} computes ${t.dtype}[${t.shape}], declared ` +
        show(spec),
    );
  }
}

function sameType(t: { shape: readonly number[]; dtype: DType }, s: TypeSpec): boolean {
  return t.dtype === s.dtype && t.shape.length === s.shape.length &&
    t.shape.every((d, i) => d === s.shape[i]);
}

function show(t: TypeSpec | undefined): string {
  return t ? `${t.dtype}[${t.shape}]` : "nothing";
}

export function intAttr(text: string): number {
  const m = /^(-?\d+)(?: : i\d+)?$/.exec(text.trim());
  if (!m) throw new Error(`stablehlo parse: expected an integer attribute, got "${text}"`);
  return Number(m[1]);
}

function i64s(text: string): number[] {
  const m = /^array<i64(?::([\d, -]*))?>$/.exec(text.trim());
  if (!m) throw new Error(`stablehlo parse: expected array<i64: ...>, got "${text}"`);
  return m[1] ? m[1].split(",").map((s) => Number(s.trim())) : [];
}

function enumAttr(text: string, kind: string, fail: (why: string) => never): string {
  const m = new RegExp(`^#stablehlo<${kind} (\\w+)>$`).exec(text.trim());
  return m ? m[1] : fail(`expected #stablehlo<${kind} ...>, got "${text}"`);
}

function dotDims(text: string): PrimitiveParams[Primitive.DotGeneral] {
  const field = (name: string) => {
    const m = new RegExp(`${name} = \\[([\\d, ]*)\\]`).exec(text);
    return m && m[1].trim() ? m[1].split(",").map((s) => Number(s.trim())) : [];
  };
  return {
    lhsBatch: field("lhs_batching_dimensions"),
    rhsBatch: field("rhs_batching_dimensions"),
    lhsContract: field("lhs_contracting_dimensions"),
    rhsContract: field("rhs_contracting_dimensions"),
    precision: "default",
  };
}

function constantScalar(t: Tensor): number | undefined {
  let n = t;
  while (n.prim === Primitive.BroadcastInDim) n = n.inputs[0];
  if (!isPrim(n, Primitive.Constant)) return undefined;
  const v = n.params.value;
  if (v.data.length !== 1) return undefined;
  return v.dtype === "bf16" ? bf16Value(v.data[0]) : v.data[0];
}

/** `dense<...> : tensor<...>` as a host tensor of the declared type. */
function denseValue(text: string, type: TypeSpec, fail: (why: string) => never): HostTensor {
  const m = /^dense<([\s\S]*)> : (tensor<[^>]*>)$/.exec(text.trim()) ??
    fail(`bad dense value "${text.slice(0, 60)}"`);
  const body = m[1].trim();
  const n = numel(type.shape);
  const t = hostTensor(type.shape, type.dtype);
  if (body.startsWith('"0x')) {
    const hex = body.slice(3, -1);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (hex.length !== bytes.length * 2) {
      fail(`hex constant has ${hex.length / 2} bytes, ${bytes.length} expected`);
    }
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return t;
  }
  const items = body.replace(/[[\]]/g, " ").split(",").map((s) => s.trim()).filter((s) => s);
  if (items.length !== 1 && items.length !== n) fail(`${items.length} values for ${n} elements`);
  const values = items.map((s) => literal(s, type.dtype, fail));
  for (let i = 0; i < n; i++) t.data[i] = values[items.length === 1 ? 0 : i];
  return t;
}

/** One literal as stored in a HostTensor of `dtype` (bf16 as bits). */
function literal(s: string, dtype: DType, fail: (why: string) => never): number {
  if (dtype === "bool") return s === "true" ? 1 : s === "false" ? 0 : fail(`bad bool ${s}`);
  if (/^0x[0-9A-Fa-f]+$/.test(s)) {
    const bits = parseInt(s, 16);
    if (dtype === "f32") return new Float32Array(new Uint32Array([bits]).buffer)[0];
    if (dtype === "bf16") return bits;
    return fail(`hex literal ${s} for ${dtype}`);
  }
  const v = Number(s);
  if (Number.isNaN(v)) fail(`bad literal ${s}`);
  if ((dtype === "f32" || dtype === "bf16") && !/[.]/.test(s)) {
    fail(`float literal ${s} has no decimal point`);
  }
  return dtype === "bf16" ? f32ToBf16(v) : v;
}

function bf16Value(bits: number): number {
  return new Float32Array(new Uint32Array([(bits & 0xffff) << 16]).buffer)[0];
}
