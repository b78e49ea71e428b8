/**
 * The fused attention primitives in StableHLO: their decomposition into primitive ops
 * (lib/ir/attention.ts), emitted inline, which XLA fuses itself. The decomposition is traced
 * over placeholder inputs standing for the node's operands, so the text depends only on shapes.
 */
import { topoSort } from "../../ir/graph.ts";
import * as ops from "../../ir/ops.ts";
import { Primitive } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";

/**
 * Emits `build` over placeholders for `node`'s operands (named `args`), each node of it through
 * `emit` (the rule table's, rules.ts); the name of its value.
 */
export function emitDecomposed(
  node: Tensor,
  args: readonly string[],
  build: (inputs: Tensor[]) => Tensor,
  emit: (t: Tensor, args: string[]) => string,
): string {
  const inputs = node.inputs.map((x, i) => ops.input(i, `operand${i}`, x.shape, x.dtype));
  const names = new Map<Tensor, string>(inputs.map((t, i) => [t, args[i]]));
  const result = build(inputs);
  for (const t of topoSort([result])) {
    if (names.has(t)) continue;
    if (t.prim === Primitive.Input) throw new Error(`stablehlo: ${t} is not an operand of ${node}`);
    names.set(t, emit(t, t.inputs.map((x) => names.get(x)!)));
  }
  return names.get(result)!;
}
