/**
 * The fused attention primitives on WebGPU. For now each is expanded into its decomposition
 * in primitive ops (lib/ir/attention.ts) before planning, so the planner fuses it like any
 * other graph: correct, but the [.., N, N] probabilities are materialized as in the unfused
 * form. Tiled WGSL kernels (FlashAttention's forward and backward passes) are not written yet.
 */
import { attentionDecomposed, attentionGradDecomposed } from "../../ir/attention.ts";
import type { Graph } from "../../ir/graph.ts";
import { Primitive } from "../../ir/primitive.ts";
import { isPrim, Tensor } from "../../ir/tensor.ts";

/** `graph` with every attention node replaced by its decomposition (the same graph if none). */
export function expandAttention(graph: Graph): Graph {
  if (
    !graph.nodes.some((t) => t.prim === Primitive.Attention || t.prim === Primitive.AttentionGrad)
  ) {
    return graph;
  }
  const map = new Map<number, Tensor>();
  const nodes: Tensor[] = [];
  const seen = new Set<number>();
  const add = (t: Tensor) => {
    if (seen.has(t.id)) return;
    seen.add(t.id);
    for (const x of t.inputs) add(x);
    nodes.push(t);
  };
  for (const t of graph.nodes) {
    const ins = t.inputs.map((x) => map.get(x.id) ?? x);
    let r: Tensor;
    if (isPrim(t, Primitive.Attention)) {
      r = attentionDecomposed(ins[0], ins[1], ins[2], t.params.scale);
    } else if (isPrim(t, Primitive.AttentionGrad)) {
      r = attentionGradDecomposed(ins[0], ins[1], ins[2], ins[3], ins[4], t.params.scale);
    } else if (ins.some((x, i) => x !== t.inputs[i])) {
      r = new Tensor(t.prim, ins, t.params, t.shape, t.dtype);
    } else r = t;
    if (r !== t) map.set(t.id, r);
  }
  const outputs = graph.outputs.map((o) => map.get(o.id) ?? o);
  for (const o of outputs) add(o);
  return { inputs: graph.inputs, outputs, nodes };
}
