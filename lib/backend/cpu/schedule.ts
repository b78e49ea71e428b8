/**
 * The order the CPU executable runs a graph's nodes in, for memory. A traced step's node list is
 * a depth-first post-order from its outputs; with the updated parameters as outputs (in their
 * tree's sorted order, layer_0 first) that order reaches each parameter's gradient reduction or
 * weight-gradient matmul only when it reaches that parameter, long after the backward pass made
 * its operands, which stay live until then (activations, cotangents, recomputed intermediates).
 *
 * Here nodes run in creation order (the forward pass, then the backward as autodiff's reverse
 * sweep made it), and a node whose result is at most half its largest operand (reductions,
 * weight gradients, slices) runs as soon as its operands exist, with the one node feeding it
 * that is then ready, so those operands can die. Any topological order computes the same values.
 */
import type { Tensor } from "../../ir/tensor.ts";

export function scheduleForMemory(nodes: readonly Tensor[]): Tensor[] {
  const inGraph = new Set(nodes.map((t) => t.id));
  const users = new Map<number, Tensor[]>();
  const waiting = new Map<number, number>();
  for (const t of nodes) {
    const ins = new Set(t.inputs);
    waiting.set(t.id, ins.size);
    for (const x of ins) {
      let u = users.get(x.id);
      if (!u) users.set(x.id, u = []);
      u.push(t);
    }
  }
  const shrinks = (t: Tensor) =>
    t.inputs.length > 0 && 2 * t.size <= Math.max(...t.inputs.map((x) => x.size));
  // one step of lookahead: the elementwise product inside `sum(g * h)`, or `sum(p * p)` over a
  // donated parameter, which must run before the update that overwrites p
  const feedsShrinking = (c: Tensor) =>
    (users.get(c.id) ?? []).some((d) => shrinks(d) && waiting.get(d.id) === 1);
  const placed = new Set<number>();
  const order: Tensor[] = [];
  const stack: Tensor[] = [];
  // creation order: the forward pass, then the backward as autodiff's reverse sweep made it
  for (const t of [...nodes].sort((a, b) => a.id - b.id)) {
    if (placed.has(t.id)) continue;
    stack.push(t);
    while (stack.length) {
      const u = stack.pop()!;
      if (placed.has(u.id)) continue;
      placed.add(u.id);
      order.push(u);
      for (const c of users.get(u.id) ?? []) {
        const left = waiting.get(c.id)! - 1;
        waiting.set(c.id, left);
        if (left === 0 && inGraph.has(c.id) && (shrinks(c) || feedsShrinking(c))) stack.push(c);
      }
    }
  }
  return order;
}
