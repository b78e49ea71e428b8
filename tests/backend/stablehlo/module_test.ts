/**
 * The StableHLO module around the ops: signature, donation attributes, replica counts,
 * determinism, rematerialization barriers, and errors naming the bad input.
 */
import { checkpoint } from "../../../lib/autodiff/checkpoint.ts";
import { valueAndGrad } from "../../../lib/autodiff/grad.ts";
import {
  autoAliases,
  checkAliases,
  emitStableHlo,
  pathAliases,
  planRematBarriers,
} from "../../../lib/backend/stablehlo/mod.ts";
import { buildGraph, trace } from "../../../lib/ir/graph.ts";
import * as ops from "../../../lib/ir/ops.ts";
import { Primitive } from "../../../lib/ir/primitive.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals, assertThrows } from "../../assert.ts";
import { mlpSpecs, mlpTrainStep } from "./mlp.ts";

const spec = (...shape: number[]) => ({ shape, dtype: "f32" as const });

Deno.test("stablehlo module: header, signature and return", () => {
  const { graph } = trace((x: Tensor, y: Tensor) => [ops.add(x, y), x], spec(2), spec(2));
  assertEquals(
    emitStableHlo(graph, { moduleName: "jit step-1" }),
    [
      "module @jit_step_1 attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {",
      "  func.func public @main(%arg0: tensor<2xf32>, %arg1: tensor<2xf32>) -> (tensor<2xf32>, " +
      "tensor<2xf32>) {",
      '    %0 = "stablehlo.add"(%arg0, %arg1) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>',
      '    "func.return"(%0, %arg0) : (tensor<2xf32>, tensor<2xf32>) -> ()',
      "  }",
      "}",
      "",
    ].join("\n"),
  );
});

Deno.test("stablehlo module: the same program gives the same text, whatever the tensor ids", () => {
  const a = trace(mlpTrainStep(1), ...mlpSpecs()).graph;
  ops.zeros([7]); // moves the global tensor id counter
  const b = trace(mlpTrainStep(1), ...mlpSpecs()).graph;
  assert(a.nodes[0].id !== b.nodes[0].id);
  assertEquals(emitStableHlo(a), emitStableHlo(b));
});

Deno.test("stablehlo module: donated inputs carry tf.aliasing_output", () => {
  const { graph } = trace(
    (p: Tensor, m: Tensor, x: Tensor) => [ops.sum(x), ops.add(m, x), ops.mul(p, 2)],
    spec(3),
    spec(3),
    spec(3),
  );
  // Input 0 (p) and 1 (m) pair with the first unclaimed f32[3] outputs: 1 and 2.
  const aliases = autoAliases(graph, (i) => i < 2);
  assertEquals(aliases, [{ input: 0, output: 1 }, { input: 1, output: 2 }]);
  const text = emitStableHlo(graph, {
    aliases: [{ input: 0, output: 2 }, { input: 1, output: 1 }],
  });
  assert(
    text.includes(
      "@main(%arg0: tensor<3xf32> {tf.aliasing_output = 2 : i32}, %arg1: tensor<3xf32> " +
        "{tf.aliasing_output = 1 : i32}, %arg2: tensor<3xf32>) -> (tensor<f32>, tensor<3xf32>, " +
        "tensor<3xf32>)",
    ),
    text,
  );
});

Deno.test("stablehlo module: bad aliases are refused naming the pair", () => {
  const { graph } = trace((x: Tensor, y: Tensor) => [ops.sum(x), y], spec(3), spec(3));
  assertThrows(
    () => checkAliases(graph, [{ input: 0, output: 0 }]),
    "alias input 0 -> output 0: input is f32[3] but output is f32[]",
  );
  assertThrows(
    () => checkAliases(graph, [{ input: 2, output: 1 }]),
    "alias input 2 -> output 1: the program has 2 inputs",
  );
  assertThrows(() => checkAliases(graph, [{ input: 0, output: 5 }]), "the program has 2 outputs");
  assertThrows(
    () => checkAliases(graph, [{ input: 0, output: 1 }, { input: 1, output: 1 }]),
    "output 1 is aliased twice",
  );
  assertThrows(() => emitStableHlo(graph, { aliases: [{ input: 0, output: 0 }] }), "alias input 0");
});

Deno.test("stablehlo module: aliases by pytree path", () => {
  const inputs = ["params.a", "params.b.c", "opt.mu.a", "batch.x"];
  const outputs = ["metrics.loss", "opt.mu.a", "params.a", "params.b.c"];
  assertEquals(pathAliases(inputs, outputs, [["params", "params"], ["opt", "opt"]]), [
    { input: 0, output: 2 },
    { input: 1, output: 3 },
    { input: 2, output: 1 },
  ]);
  assertThrows(
    () => pathAliases(inputs, ["params.a"], [["params", "params"]]),
    "no output params.b.c for input params.b.c",
  );
  assertThrows(() => pathAliases(inputs, outputs, [["state", "state"]]), "no input under state");
});

Deno.test("stablehlo module: num_replicas follows the all-reduces and must agree", () => {
  const two = trace((x: Tensor) => ops.allReduceSum(x, 2), spec(2)).graph;
  assert(emitStableHlo(two).includes("mhlo.num_replicas = 2 : i32"));
  assert(
    emitStableHlo(trace((x: Tensor) => ops.neg(x), spec(2)).graph, { numReplicas: 8 }).includes(
      "mhlo.num_replicas = 8 : i32",
    ),
  );
  assertThrows(
    () => emitStableHlo(two, { numReplicas: 4 }),
    "the program is for 4 replicas but the graph all-reduces over 2 replicas",
  );
  const mixed =
    trace((x: Tensor) => [ops.allReduceSum(x, 2), ops.allReduceSum(x, 3)], spec(2)).graph;
  assertThrows(() => emitStableHlo(mixed), "disagree on replicas (2 and 3)");
  assertThrows(
    () => emitStableHlo(two, { numReplicas: 0 }),
    "replicas must be a positive integer",
  );
});

Deno.test("stablehlo module: graph inputs out of order are refused", () => {
  const a = ops.input(1, "a", [2], "f32"), b = ops.input(0, "b", [2], "f32");
  assertThrows(
    () => emitStableHlo(buildGraph([a, b], [ops.add(a, b)])),
    "graph input 0 is Tensor(input, f32[2]",
  );
});

Deno.test("stablehlo module: rematerialized layers read their inputs through a barrier", () => {
  const layer = (w: Tensor, h: Tensor) => ops.tanh(ops.matmul(h, w));
  const loss = (ckpt: boolean) => (p: { w1: Tensor; w2: Tensor }, x: Tensor) => {
    const f = ckpt ? checkpoint(layer) : layer;
    return ops.sum(f(p.w2, f(p.w1, x)));
  };
  const build = (ckpt: boolean) =>
    trace(
      // The loss is returned too, so the forward originals are part of the program.
      (p: { w1: Tensor; w2: Tensor }, x: Tensor) => valueAndGrad(loss(ckpt))(p, x),
      { w1: spec(3, 3), w2: spec(3, 3) },
      spec(2, 3),
    ).graph;

  const plain = build(false);
  assertEquals(planRematBarriers(plain.nodes).barrierInputs, []);
  assert(!emitStableHlo(plain).includes("optimization_barrier"));

  const ckpt = build(true);
  const plan = planRematBarriers(ckpt.nodes);
  // One group per layer; each reads its weight and its input activation from outside.
  assertEquals(plan.barrierInputs.length, 2);
  for (const inputs of plan.barrierInputs) assertEquals(inputs.length, 2);
  const [w1, w2] = ckpt.inputs; // sorted keys: w1, w2
  assert(plan.barrierInputs.some((g) => g.includes(w1)));
  assert(plan.barrierInputs.some((g) => g.includes(w2)));
  // Every clone recomputes an earlier forward node of the program, of the same primitive.
  for (const clone of plan.groupOf.keys()) {
    const o = clone.rematOf!;
    assert(ckpt.nodes.includes(o) && o.id < clone.id && o.prim === clone.prim, `${clone}`);
  }

  const text = emitStableHlo(ckpt);
  const barriers = text.split("\n").filter((l) => l.includes("optimization_barrier"));
  assertEquals(barriers.length, 2);
  for (const line of barriers) {
    assert(
      /^ {4}%(\d+):2 = "stablehlo.optimization_barrier"\(%\S+, %\S+\) : \(tensor<\S+>, tensor<\S+>\) -> \(tensor<\S+>, tensor<\S+>\)$/
        .test(line),
      line,
    );
    const name = /^ {4}(%\d+):2/.exec(line)![1];
    // The recomputation uses the barrier's results.
    assert(text.includes(`${name}#0`) || text.includes(`${name}#1`), `${name} unused`);
  }
  assert(!emitStableHlo(ckpt, { rematBarriers: false }).includes("optimization_barrier"));
});

Deno.test("stablehlo module: the MLP train step all-reduces every gradient once", () => {
  const { graph } = trace(mlpTrainStep(4), ...mlpSpecs());
  const allReduces = graph.nodes.filter((n) => n.prim === Primitive.AllReduceSum);
  assertEquals(allReduces.map((n) => n.shape.join("x")).sort(), ["3", "4x8", "8", "8x3"]);
  assertEquals(allReduces.length, 4);
  const text = emitStableHlo(graph);
  assertEquals(text.split('"stablehlo.all_reduce"').length - 1, 4);
  assert(text.includes("replica_groups = dense<[[0, 1, 2, 3]]> : tensor<1x4xi64>"));
});
