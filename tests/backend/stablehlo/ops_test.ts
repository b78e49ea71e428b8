/**
 * The StableHLO emitter, one primitive at a time: the exact generic-form text of each op, with
 * attribute syntax as the StableHLO spec (openxla/stablehlo docs/spec.md) writes it.
 */
import { emitStableHlo } from "../../../lib/backend/stablehlo/emit.ts";
import type { EmitOptions } from "../../../lib/backend/stablehlo/emit.ts";
import type { DType } from "../../../lib/ir/dtype.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import { Primitive } from "../../../lib/ir/primitive.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals } from "../../assert.ts";
import {
  attentionDecomposed,
  attentionGrad,
  attentionGradDecomposed,
  attentionPacked,
} from "../../../lib/ir/attention.ts";

const covered = new Set<Primitive>();

/** The body lines of `@main` (ops only, trimmed), and the signature and return lines. */
function emit(
  fn: (...xs: Tensor[]) => Tensor | Tensor[],
  inputs: [number[], DType][],
  options?: EmitOptions,
): { body: string[]; signature: string; ret: string; text: string } {
  const { graph } = trace(fn, ...inputs.map(([shape, dtype]) => ({ shape, dtype })));
  for (const n of graph.nodes) covered.add(n.prim);
  const text = emitStableHlo(graph, options);
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l);
  const start = lines.findIndex((l) => l.startsWith("func.func"));
  const end = lines.findIndex((l) => l.startsWith('"func.return"'));
  return { body: lines.slice(start + 1, end), signature: lines[start], ret: lines[end], text };
}

const F23: [number[], DType] = [[2, 3], "f32"];

function unaryCase(name: string, op: (x: Tensor) => Tensor, mlirName: string) {
  Deno.test(`stablehlo op: ${name}`, () => {
    const { body, ret } = emit(op, [F23]);
    assertEquals(body, [
      `%0 = "${mlirName}"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>`,
    ]);
    assertEquals(ret, '"func.return"(%0) : (tensor<2x3xf32>) -> ()');
  });
}

unaryCase("neg", ops.neg, "stablehlo.negate");
unaryCase("exp", ops.exp, "stablehlo.exponential");
unaryCase("log", ops.log, "stablehlo.log");
unaryCase("sqrt", ops.sqrt, "stablehlo.sqrt");
unaryCase("rsqrt", ops.rsqrt, "stablehlo.rsqrt");
unaryCase("tanh", ops.tanh, "stablehlo.tanh");
unaryCase("erf", ops.erf, "chlo.erf");

function binaryCase(
  name: string,
  op: (a: Tensor, b: Tensor) => Tensor,
  mlirName: string,
  dtype: DType = "f32",
) {
  Deno.test(`stablehlo op: ${name} (${dtype})`, () => {
    const t = `tensor<4x${dtype === "u32" ? "ui32" : dtype}>`;
    const { body } = emit(op, [[[4], dtype], [[4], dtype]]);
    assertEquals(body, [`%0 = "${mlirName}"(%arg0, %arg1) : (${t}, ${t}) -> ${t}`]);
  });
}

binaryCase("add", ops.add, "stablehlo.add");
binaryCase("sub", ops.sub, "stablehlo.subtract");
binaryCase("mul", ops.mul, "stablehlo.multiply");
binaryCase("div", ops.div, "stablehlo.divide");
binaryCase("max", ops.maximum, "stablehlo.maximum");
binaryCase("min", ops.minimum, "stablehlo.minimum");
binaryCase("and", ops.and, "stablehlo.and", "u32");
binaryCase("or", ops.or, "stablehlo.or", "u32");
binaryCase("xor", ops.xor, "stablehlo.xor", "u32");
binaryCase("shift_left", ops.shiftLeft, "stablehlo.shift_left", "u32");
binaryCase("shift_right_logical", ops.shiftRightLogical, "stablehlo.shift_right_logical", "u32");
binaryCase("add wraps", ops.add, "stablehlo.add", "i32");

Deno.test("stablehlo op: not (bool and integer)", () => {
  assertEquals(emit(ops.not, [[[2], "bool"]]).body, [
    '%0 = "stablehlo.not"(%arg0) : (tensor<2xi1>) -> tensor<2xi1>',
  ]);
  assertEquals(emit(ops.not, [[[2], "u32"]]).body, [
    '%0 = "stablehlo.not"(%arg0) : (tensor<2xui32>) -> tensor<2xui32>',
  ]);
});

Deno.test("stablehlo op: compare sets direction and compare_type per dtype", () => {
  const cases: [DType, "lt" | "ge" | "eq" | "ne", string, string, string][] = [
    ["f32", "lt", "LT", "FLOAT", "f32"],
    ["bf16", "le", "LE", "FLOAT", "bf16"] as never,
    ["u32", "ge", "GE", "UNSIGNED", "ui32"],
    ["u8", "gt", "GT", "UNSIGNED", "ui8"] as never,
    ["i32", "eq", "EQ", "SIGNED", "i32"],
    ["bool", "ne", "NE", "UNSIGNED", "i1"],
  ];
  for (const [dtype, dir, DIR, kind, et] of cases) {
    const { body } = emit((a, b) => ops.compare(a, b, dir), [[[3], dtype], [[3], dtype]]);
    assertEquals(body, [
      `%0 = "stablehlo.compare"(%arg0, %arg1) {comparison_direction = ` +
      `#stablehlo<comparison_direction ${DIR}>, compare_type = #stablehlo<comparison_type ${kind}>}` +
      ` : (tensor<3x${et}>, tensor<3x${et}>) -> tensor<3xi1>`,
    ]);
  }
});

Deno.test("stablehlo op: select", () => {
  const { body } = emit((p, a, b) => ops.where(p, a, b), [[[3], "bool"], [[3], "f32"], [
    [3],
    "f32",
  ]]);
  assertEquals(body, [
    '%0 = "stablehlo.select"(%arg0, %arg1, %arg2) : (tensor<3xi1>, tensor<3xf32>, ' +
    "tensor<3xf32>) -> tensor<3xf32>",
  ]);
});

Deno.test("stablehlo op: convert between every pair of dtypes used", () => {
  const pairs: [DType, DType, string, string][] = [
    ["f32", "i32", "f32", "i32"],
    ["u32", "f32", "ui32", "f32"],
    ["u8", "f32", "ui8", "f32"],
    ["bool", "f32", "i1", "f32"],
    ["f32", "bf16", "f32", "bf16"],
  ];
  for (const [from, to, a, b] of pairs) {
    assertEquals(emit((x) => ops.convert(x, to), [[[2], from]]).body, [
      `%0 = "stablehlo.convert"(%arg0) : (tensor<2x${a}>) -> tensor<2x${b}>`,
    ]);
  }
});

Deno.test("stablehlo op: stop_gradient emits nothing and passes its operand", () => {
  const { body, ret } = emit((x) => ops.stopGradient(x), [F23]);
  assertEquals(body, []);
  assertEquals(ret, '"func.return"(%arg0) : (tensor<2x3xf32>) -> ()');
});

Deno.test("stablehlo op: constants (splat, list, hex blob, special floats, integers)", () => {
  const c = (value: ReturnType<typeof hostTensor>) => emit(() => ops.constant(value), []).body;
  assertEquals(c(hostTensor([], "f32", [1.5])), [
    '%0 = "stablehlo.constant"() {value = dense<1.5> : tensor<f32>} : () -> tensor<f32>',
  ]);
  assertEquals(c(hostTensor([2, 2], "f32", [1, 2, 3, 1e-8])), [
    '%0 = "stablehlo.constant"() {value = dense<[[1.0, 2.0], [3.0, 9.99999993922529e-9]]> : ' +
    "tensor<2x2xf32>} : () -> tensor<2x2xf32>",
  ]);
  assertEquals(c(hostTensor([3], "f32", [NaN, Infinity, -Infinity])), [
    '%0 = "stablehlo.constant"() {value = dense<[0x7FC00000, 0x7F800000, 0xFF800000]> : ' +
    "tensor<3xf32>} : () -> tensor<3xf32>",
  ]);
  assertEquals(c(hostTensor([2], "f32", [-0, 0])), [
    '%0 = "stablehlo.constant"() {value = dense<[-0.0, 0.0]> : tensor<2xf32>} : () -> ' +
    "tensor<2xf32>",
  ]);
  assertEquals(c(hostTensor([2, 3], "f32", new Array(6).fill(0.25))), [
    '%0 = "stablehlo.constant"() {value = dense<0.25> : tensor<2x3xf32>} : () -> tensor<2x3xf32>',
  ]);
  assertEquals(c(hostTensor([3], "u32", [0, 0x1bd11bda, 0xffffffff])), [
    '%0 = "stablehlo.constant"() {value = dense<[0, 466688986, 4294967295]> : tensor<3xui32>}' +
    " : () -> tensor<3xui32>",
  ]);
  assertEquals(c(hostTensor([2], "i32", [-2147483648, 7])), [
    '%0 = "stablehlo.constant"() {value = dense<[-2147483648, 7]> : tensor<2xi32>} : () -> ' +
    "tensor<2xi32>",
  ]);
  assertEquals(c(hostTensor([2], "bool", [1, 0])), [
    '%0 = "stablehlo.constant"() {value = dense<[true, false]> : tensor<2xi1>} : () -> ' +
    "tensor<2xi1>",
  ]);
  // bf16 stores bits: 0x3FC0 is 1.5, 0x7F80 is +inf.
  assertEquals(c(hostTensor([2], "bf16", [0x3fc0, 0x7f80])), [
    '%0 = "stablehlo.constant"() {value = dense<[1.5, 0x7F80]> : tensor<2xbf16>} : () -> ' +
    "tensor<2xbf16>",
  ]);
  // Above 64 elements: raw little-endian bytes. 1.0f = 0x3F800000 -> 0000803F.
  const big = hostTensor([65], "f32", Array.from({ length: 65 }, (_, i) => (i === 0 ? 1 : 0)));
  const [line] = c(big);
  assert(line.startsWith('%0 = "stablehlo.constant"() {value = dense<"0x0000803F00000000'));
  assert(line.endsWith(`${"00".repeat(4)}"> : tensor<65xf32>} : () -> tensor<65xf32>`));
  assertEquals(line.length, line.replace(/"0x[0-9A-F]*"/, '"0x"').length + 65 * 8);
});

Deno.test("stablehlo op: iota", () => {
  const { body } = emit(() => ops.iota([2, 3], 1, "u32"), []);
  assertEquals(body, [
    '%0 = "stablehlo.iota"() {iota_dimension = 1 : i64} : () -> tensor<2x3xui32>',
  ]);
});

Deno.test("stablehlo op: reduce_sum with an add region and a zero init", () => {
  const { body } = emit((x) => ops.sum(x, 1), [F23]);
  assertEquals(body, [
    '%0 = "stablehlo.constant"() {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>',
    '%4 = "stablehlo.reduce"(%arg0, %0) ({',
    "^bb0(%1: tensor<f32>, %2: tensor<f32>):",
    '%3 = "stablehlo.add"(%1, %2) : (tensor<f32>, tensor<f32>) -> tensor<f32>',
    '"stablehlo.return"(%3) : (tensor<f32>) -> ()',
    "}) {dimensions = array<i64: 1>} : (tensor<2x3xf32>, tensor<f32>) -> tensor<2xf32>",
  ]);
});

Deno.test("stablehlo op: reduce_max inits with -inf (f32) and INT_MIN (i32)", () => {
  const f = emit((x) => ops.max(x, [0, 1]), [F23]).body;
  assertEquals(
    f[0],
    '%0 = "stablehlo.constant"() {value = dense<0xFF800000> : tensor<f32>} : () -> tensor<f32>',
  );
  assertEquals(
    f[3],
    '%3 = "stablehlo.maximum"(%1, %2) : (tensor<f32>, tensor<f32>) -> tensor<f32>',
  );
  assertEquals(
    f[5],
    "}) {dimensions = array<i64: 0, 1>} : (tensor<2x3xf32>, tensor<f32>) -> tensor<f32>",
  );
  const i = emit((x) => ops.max(x, 0), [[[4], "i32"]]).body;
  assertEquals(
    i[0],
    '%0 = "stablehlo.constant"() {value = dense<-2147483648> : tensor<i32>} : () -> tensor<i32>',
  );
});

Deno.test("stablehlo op: reshape", () => {
  assertEquals(emit((x) => ops.reshape(x, [3, 2]), [F23]).body, [
    '%0 = "stablehlo.reshape"(%arg0) : (tensor<2x3xf32>) -> tensor<3x2xf32>',
  ]);
});

Deno.test("stablehlo op: broadcast_in_dim", () => {
  assertEquals(emit((x) => ops.broadcastInDim(x, [2, 4, 3], [0, 2]), [F23]).body, [
    '%0 = "stablehlo.broadcast_in_dim"(%arg0) {broadcast_dimensions = array<i64: 0, 2>} : ' +
    "(tensor<2x3xf32>) -> tensor<2x4x3xf32>",
  ]);
  assertEquals(emit((x) => ops.broadcastInDim(x, [5], []), [[[], "f32"]]).body, [
    '%0 = "stablehlo.broadcast_in_dim"(%arg0) {broadcast_dimensions = array<i64>} : ' +
    "(tensor<f32>) -> tensor<5xf32>",
  ]);
});

Deno.test("stablehlo op: transpose", () => {
  assertEquals(emit((x) => ops.transpose(x, [2, 0, 1]), [[[2, 3, 4], "f32"]]).body, [
    '%0 = "stablehlo.transpose"(%arg0) {permutation = array<i64: 2, 0, 1>} : ' +
    "(tensor<2x3x4xf32>) -> tensor<4x2x3xf32>",
  ]);
});

Deno.test("stablehlo op: slice with strides", () => {
  assertEquals(emit((x) => ops.slice(x, [0, 1], [2, 3], [1, 2]), [F23]).body, [
    '%0 = "stablehlo.slice"(%arg0) {start_indices = array<i64: 0, 1>, limit_indices = ' +
    "array<i64: 2, 3>, strides = array<i64: 1, 2>} : (tensor<2x3xf32>) -> tensor<2x1xf32>",
  ]);
});

Deno.test("stablehlo op: pad with a scalar padding value and no interior padding", () => {
  assertEquals(emit((x) => ops.pad(x, [1, 0], [0, 2], -1), [F23]).body, [
    '%0 = "stablehlo.constant"() {value = dense<-1.0> : tensor<f32>} : () -> tensor<f32>',
    '%1 = "stablehlo.pad"(%arg0, %0) {edge_padding_low = array<i64: 1, 0>, edge_padding_high = ' +
    "array<i64: 0, 2>, interior_padding = array<i64: 0, 0>} : (tensor<2x3xf32>, tensor<f32>) -> " +
    "tensor<3x5xf32>",
  ]);
});

Deno.test("stablehlo op: concatenate", () => {
  assertEquals(emit((a, b) => ops.concatenate([a, b, a], 1), [F23, [[2, 1], "f32"]]).body, [
    '%0 = "stablehlo.concatenate"(%arg0, %arg1, %arg0) {dimension = 1 : i64} : ' +
    "(tensor<2x3xf32>, tensor<2x1xf32>, tensor<2x3xf32>) -> tensor<2x7xf32>",
  ]);
});

Deno.test("stablehlo op: dot_general with batch and contracting dims, DEFAULT precision (jax's)", () => {
  const { body } = emit(
    (a, b) =>
      ops.dotGeneral(a, b, { lhsBatch: [0], rhsBatch: [0], lhsContract: [2], rhsContract: [1] }),
    [[[2, 3, 4], "f32"], [[2, 4, 5], "f32"]],
  );
  assertEquals(body, [
    '%0 = "stablehlo.dot_general"(%arg0, %arg1) {dot_dimension_numbers = #stablehlo.dot<' +
    "lhs_batching_dimensions = [0], rhs_batching_dimensions = [0], lhs_contracting_dimensions = " +
    "[2], rhs_contracting_dimensions = [1]>, precision_config = [#stablehlo<precision DEFAULT>, " +
    "#stablehlo<precision DEFAULT>]} : (tensor<2x3x4xf32>, tensor<2x4x5xf32>) -> tensor<2x3x5xf32>",
  ]);
});

Deno.test("stablehlo op: dot_general omits empty dim lists; precision from node or option", () => {
  const mm = (a: Tensor, b: Tensor) =>
    ops.dotGeneral(
      a,
      b,
      { lhsBatch: [], rhsBatch: [], lhsContract: [1], rhsContract: [0] },
      "default",
    );
  const line = (p: string) =>
    '%0 = "stablehlo.dot_general"(%arg0, %arg1) {dot_dimension_numbers = #stablehlo.dot<' +
    "lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>, precision_config = " +
    `[#stablehlo<precision ${p}>, #stablehlo<precision ${p}>]} : (tensor<2x3xf32>, ` +
    "tensor<3x4xf32>) -> tensor<2x4xf32>";
  const inputs: [number[], DType][] = [F23, [[3, 4], "f32"]];
  assertEquals(emit(mm, inputs).body, [line("DEFAULT")]);
  assertEquals(emit(mm, inputs, { precision: "highest" }).body, [line("HIGHEST")]);
  assertEquals(emit(mm, inputs, { precision: "high" }).body, [line("HIGH")]);
});

Deno.test("stablehlo op: all_reduce over every replica with an add region", () => {
  const { body, text } = emit((x) => ops.allReduceSum(x, 4), [F23]);
  assertEquals(body, [
    '%3 = "stablehlo.all_reduce"(%arg0) ({',
    "^bb0(%0: tensor<f32>, %1: tensor<f32>):",
    '%2 = "stablehlo.add"(%0, %1) : (tensor<f32>, tensor<f32>) -> tensor<f32>',
    '"stablehlo.return"(%2) : (tensor<f32>) -> ()',
    "}) {replica_groups = dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>} : (tensor<2x3xf32>) -> " +
    "tensor<2x3xf32>",
  ]);
  assert(text.includes("mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 4 : i32"));
});

Deno.test("stablehlo op: bf16 compute converts matmul operands once, accumulates in f32", () => {
  const { body } = emit(
    (x, w) => [ops.matmul(x, w), ops.matmul(x, ops.transpose(w))],
    [[[2, 3], "f32"], [[3, 3], "f32"]],
    { compute: "bf16" },
  );
  const dot = (a: string, b: string) =>
    `"stablehlo.dot_general"(${a}, ${b}) {dot_dimension_numbers = #stablehlo.dot<` +
    "lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>, precision_config = " +
    "[#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<2x3xbf16>, " +
    "tensor<3x3xbf16>) -> tensor<2x3xf32>";
  assertEquals(body, [
    '%0 = "stablehlo.convert"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xbf16>',
    '%1 = "stablehlo.convert"(%arg1) : (tensor<3x3xf32>) -> tensor<3x3xbf16>',
    `%2 = ${dot("%0", "%1")}`,
    '%3 = "stablehlo.transpose"(%arg1) {permutation = array<i64: 1, 0>} : (tensor<3x3xf32>) -> ' +
    "tensor<3x3xf32>",
    '%4 = "stablehlo.convert"(%3) : (tensor<3x3xf32>) -> tensor<3x3xbf16>',
    `%5 = ${dot("%0", "%4")}`,
  ]);
});

Deno.test("stablehlo op: attention and its gradient emit their decomposition, for XLA to fuse", () => {
  const qkv: [number[], DType][] = [[[2, 3, 5, 4], "f32"], [[2, 3, 6, 4], "f32"], [
    [2, 3, 6, 4],
    "f32",
  ]];
  const g: [number[], DType] = [[2, 3, 5, 5], "f32"];
  const fused = emit(
    (q, k, v, gg) => {
      const o = attentionPacked(q, k, v, 0.5);
      return [o, attentionGrad(q, k, v, o, gg, 0.5)];
    },
    [...qkv, g],
  );
  const decomposed = emit(
    (q, k, v, gg) => {
      const o = attentionDecomposed(q, k, v, 0.5);
      return [o, attentionGradDecomposed(q, k, v, o, gg, 0.5)];
    },
    [...qkv, g],
  );
  // the same ops (their order follows each graph's traversal)
  const opNames = (body: string[]) => body.map((l) => /"([\w.]+)"\(/.exec(l)?.[1] ?? l).sort();
  assertEquals(opNames(fused.body), opNames(decomposed.body));
  assertEquals(fused.signature, decomposed.signature);
  // the forward's two products, the backward's five (scores recomputed, dv, dp, dq, dk)
  assertEquals(fused.body.filter((l) => l.includes("stablehlo.dot_general")).length, 7);
  assert(fused.body.every((l) => !l.includes("custom_call")));
});

Deno.test("stablehlo: every primitive has been emitted by the tests above", () => {
  const missing = Object.values(Primitive).filter((p) => !covered.has(p));
  assertEquals(missing, []);
});
