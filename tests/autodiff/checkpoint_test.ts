import { checkpoint } from "../../lib/autodiff/checkpoint.ts";
import { vjp } from "../../lib/autodiff/grad.ts";
import { topoSort } from "../../lib/ir/graph.ts";
import * as ops from "../../lib/ir/ops.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { assert, assertEquals } from "../assert.ts";

const block = (x: Tensor) => ops.tanh(ops.mul(ops.exp(x), x));

Deno.test("checkpoint: nodes of the wrapped call share one segment; nested calls join it", () => {
  const x = ops.zeros([3], "f32");
  const before = ops.neg(x);
  let inner: Tensor | undefined;
  const out = checkpoint((a: Tensor) => {
    inner = checkpoint(block)(a);
    return ops.sqrt(inner);
  })(before);
  const after = ops.neg(out);
  assert(out.segment !== undefined && inner!.segment === out.segment);
  assertEquals([before.segment, after.segment], [undefined, undefined]);
  // every call opens its own segment
  assert(checkpoint(block)(x).segment !== out.segment);
});

/** The segment's forward nodes that the gradients read (directly or through other nodes). */
function forwardReadByGrads(y: Tensor, x: Tensor): Tensor[] {
  const [g] = vjp(ops.sum(y), [x]);
  const forward = new Set(topoSort([y]).filter((t) => t.inputs.length > 0 && t.segment));
  return topoSort([g]).filter((t) => forward.has(t));
}

Deno.test("checkpoint: gradients read clones tagged with their forward node, never the originals", () => {
  const x = ops.input(0, "x", [3], "f32");
  const y = checkpoint(block)(x);
  assertEquals(forwardReadByGrads(y, x), []);
  const [g] = vjp(ops.sum(y), [x]);
  const clones = topoSort([g]).filter((t) => t.rematOf);
  // tanh, mul and exp are recomputed; each clone has its original's primitive and shape
  assertEquals(clones.map((c) => c.prim).sort(), ["exp", "mul", "tanh"]);
  for (const c of clones) {
    assert(
      c.rematOf!.segment === y.segment && c.rematOf!.prim === c.prim && c.segment === undefined,
    );
  }
  // negative control: without checkpoint the gradients read the forward activations
  const plain = block(x);
  assertEquals(plain.segment, undefined);
  assert(topoSort(vjp(ops.sum(plain), [x])).some((t) => t === plain || t === plain.inputs[0]));
});
