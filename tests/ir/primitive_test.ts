import { trace } from "../../lib/ir/graph.ts";
import * as ops from "../../lib/ir/ops.ts";
import { Primitive, PRIMITIVE_KIND } from "../../lib/ir/primitive.ts";
import { hasKind, isPrim, paramsOf, type Tensor } from "../../lib/ir/tensor.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { OP_CASES } from "../backend/op_table.ts";

/** What each kind promises about a node's operands (the planners rely on these). */
function checkKind(t: Tensor): void {
  const same = (x: Tensor) => x.shape.join(",") === t.shape.join(",");
  switch (PRIMITIVE_KIND[t.prim]) {
    case "source":
      assertEquals(t.inputs.length, 0, `${t}`);
      break;
    case "elementwise":
    case "collective":
      assert(t.inputs.length > 0 && t.inputs.every(same), `${t}: operands of another shape`);
      break;
    case "reduce": {
      assertEquals(t.inputs.length, 1, `${t}`);
      if (!hasKind(t, "reduce")) throw new Error("hasKind disagrees with PRIMITIVE_KIND");
      const kept = t.inputs[0].shape.filter((_, d) => !t.params.axes.includes(d));
      assertEquals([...t.shape], kept, `${t}`);
      break;
    }
    case "movement":
      assert(t.inputs.length > 0, `${t}`);
      break;
    case "contract":
      assertEquals(t.inputs.length, 2, `${t}`);
      break;
    case "attention":
      // q, k, v (and for the gradient the forward node and its cotangent), of one batch shape
      assert(t.inputs.length === 3 || t.inputs.length === 5, `${t}`);
      assert(t.inputs.every((x) => x.ndim === 4 && x.shape[0] === t.shape[0]), `${t}`);
  }
}

Deno.test("PRIMITIVE_KIND: every node of the op table keeps its kind's promise", () => {
  const seen = new Set<Primitive>();
  for (const c of OP_CASES) {
    const { graph } = trace(c.fn, ...c.inputs.map((x) => ({ shape: x.shape, dtype: x.dtype })));
    for (const t of graph.nodes) {
      checkKind(t);
      seen.add(t.prim);
    }
  }
  const x = ops.zeros([2, 3], "f32");
  for (const t of [ops.not(ops.zeros([4], "u32")), ops.stopGradient(x), ops.allReduceSum(x, 2)]) {
    checkKind(t);
    seen.add(t.prim);
  }
  assertEquals(Object.values(Primitive).filter((p) => !seen.has(p)), []);
});

Deno.test("isPrim / paramsOf / hasKind: typed params of the right primitive only", () => {
  const t = ops.transpose(ops.zeros([2, 3], "f32"), [1, 0]);
  assert(isPrim(t, Primitive.Transpose) && t.params.perm.join() === "1,0");
  assertEquals(paramsOf(t, Primitive.Transpose).perm, [1, 0]);
  assertThrows(() => paramsOf(t, Primitive.Reshape), /transpose.*is not a reshape node/);
  assert(hasKind(t, "movement") && !hasKind(t, "elementwise"));
});
