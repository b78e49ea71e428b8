import { vjp } from "../../lib/autodiff/grad.ts";
import { layerNorm } from "../../lib/ir/nn.ts";
import * as ops from "../../lib/ir/ops.ts";
import { Primitive } from "../../lib/ir/primitive.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { assert, assertEquals } from "../assert.ts";

const spread = (t: Tensor) => t.prim === Primitive.BroadcastInDim || t.prim === Primitive.Constant;

Deno.test("vjp: a residual stream's cotangent ends with an add of two full tensors", () => {
  // x + f(LayerNorm(x)): LayerNorm's mean term reaches x as a broadcast. Summed last, it made
  // the final add "effectively unary" for XLA, which then recomputed the whole chain of later
  // layers' cotangents inside every consumer.
  const x = ops.input(0, "x", [2, 3, 8], "f32");
  const w = ops.input(1, "w", [2, 3, 8], "f32");
  let h = x;
  for (let i = 0; i < 3; i++) h = ops.add(h, ops.mul(layerNorm(h, null, null), w));
  const [g] = vjp(ops.sum(ops.mul(h, h)), [x]);
  assertEquals(g.prim, Primitive.Add);
  assert(!g.inputs.some(spread), `the last add takes ${g.inputs.map((t) => t.prim)}`);
});

Deno.test("vjp: contributions sum broadcasts first, then full tensors", () => {
  const x = ops.input(0, "x", [4, 5], "f32");
  // x reaches the output four ways: directly (a broadcast of the seed), through exp and tanh
  // (full tensors), and through a row sum (a broadcast).
  const rows = ops.broadcastTo(ops.sum(x, -1, true), [4, 5]);
  const y = ops.add(ops.add(ops.add(x, ops.exp(x)), rows), ops.tanh(x));
  const [g] = vjp(ops.sum(y), [x]);
  const terms: Tensor[] = [];
  let t = g;
  for (; t.prim === Primitive.Add && terms.length < 3; t = t.inputs[0]) terms.unshift(t.inputs[1]);
  terms.unshift(t);
  assertEquals(terms.map(spread), [true, true, false, false]);
});
