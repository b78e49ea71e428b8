/**
 * The fused attention primitives in StableHLO: their decomposition into primitive ops
 * (lib/ir/attention.ts), emitted inline, which XLA fuses itself. The decomposition is traced
 * over placeholder inputs standing for the node's operands, so the text depends only on shapes.
 */
import { topoSort } from "../../ir/graph.ts";
import * as ops from "../../ir/ops.ts";
import { Primitive } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import type { Emitter } from "./emitter.ts";
import { type EmitRule, RULES } from "./rules.ts";

/** Emits `build` over placeholders for `node`'s operands (named `args`); its value's name. */
export function emitDecomposed(
  e: Emitter,
  node: Tensor,
  args: readonly string[],
  build: (inputs: Tensor[]) => Tensor,
): string {
  const inputs = node.inputs.map((x, i) => ops.input(i, `operand${i}`, x.shape, x.dtype));
  const names = new Map<Tensor, string>(inputs.map((t, i) => [t, args[i]]));
  const result = build(inputs);
  for (const t of topoSort([result])) {
    if (names.has(t)) continue;
    if (t.prim === Primitive.Input) throw new Error(`stablehlo: ${t} is not an operand of ${node}`);
    const rule = RULES[t.prim] as EmitRule<Primitive>;
    names.set(t, rule(e, t, t.inputs.map((x) => names.get(x)!), t.params));
  }
  return names.get(result)!;
}
