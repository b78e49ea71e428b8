/**
 * Reverse-mode autodiff over the traced graph: a reverse sweep from a scalar output through the
 * VJP rule table. Because tensors are symbolic, `valueAndGrad` can be called inside any traced
 * function and the gradient nodes join the same graph as the forward pass and optimizer.
 */
import * as ops from "../ir/ops.ts";
import { flatten, unflatten } from "../ir/pytree.ts";
import { topoSort } from "../ir/graph.ts";
import { type RematSegment, Tensor } from "../ir/tensor.ts";
import { Primitive } from "../ir/primitive.ts";
import { vjpRule } from "./vjp_rules.ts";
import { cloneForRemat } from "./checkpoint.ts";

/**
 * Cotangents of `wrt` for the scalar `output` (seeded with 1, or `seed` when given).
 * Inputs that the output does not depend on get zeros.
 */
export function vjp(output: Tensor, wrt: readonly Tensor[], seed?: Tensor): Tensor[] {
  if (!seed && output.size !== 1) {
    throw new Error(`grad: the output must be a scalar, got shape [${output.shape}]`);
  }
  const order = topoSort([output]);
  // Only nodes on a path from some wrt to the output carry gradients.
  const wrtIds = new Set(wrt.map((t) => t.id));
  const live = new Set<number>();
  for (const n of order) {
    if (wrtIds.has(n.id) || n.inputs.some((i) => live.has(i.id))) live.add(n.id);
  }
  // Contributions are kept apart until their node comes up, then summed (`sumCotangents`).
  const cot = new Map<number, Tensor[]>();
  cot.set(output.id, [seed ?? ops.ones(output.shape, output.dtype)]);
  const remat = new Map<RematSegment, Map<number, Tensor>>();
  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    const parts = cot.get(n.id);
    if (!parts || !live.has(n.id) || n.inputs.length === 0) continue;
    cot.delete(n.id);
    const g = sumCotangents(parts);
    const fwd = n.segment ? cloneForRemat(n, n.segment, remat) : n;
    const grads = vjpRule(n)(fwd, g);
    n.inputs.forEach((inp, k) => {
      const gi = grads[k];
      if (!gi || !live.has(inp.id)) return;
      const prev = cot.get(inp.id);
      if (prev) prev.push(gi);
      else cot.set(inp.id, [gi]);
    });
  }
  return wrt.map((t) => {
    const parts = cot.get(t.id);
    return parts ? sumCotangents(parts) : ops.zeros(t.shape, t.dtype);
  });
}

/**
 * The sum of a node's cotangent contributions, broadcasts first (in arrival order), full
 * tensors last. The order is for XLA: its fusion pass duplicates an add freely into every
 * consumer when all but one of its operands are broadcasts ("effectively unary"), and a
 * residual stream's cotangent whose last term is a broadcast (LayerNorm's mean term) was then
 * recomputed inside each consumer from the whole chain of later layers: the ViT-S/16 backward
 * moved 1.5x JAX's bytes. Ending with a full-size add keeps the sum materialized once, as in
 * JAX's programs. Any order is the same sum up to float rounding.
 */
function sumCotangents(parts: readonly Tensor[]): Tensor {
  const spread = (t: Tensor) =>
    t.prim === Primitive.BroadcastInDim || t.prim === Primitive.Constant;
  const ordered = [...parts.filter(spread), ...parts.filter((t) => !spread(t))];
  return ordered.reduce((acc, t) => ops.add(acc, t));
}

/**
 * `valueAndGrad(f)(params, ...rest)` returns `[value, grads]` where grads has the structure of
 * `params`. With `hasAux`, `f` returns `[loss, aux]` and the result is `[[loss, aux], grads]`.
 */
export function valueAndGrad<A extends unknown[]>(
  f: (params: any, ...rest: A) => Tensor | [Tensor, unknown],
  { hasAux = false }: { hasAux?: boolean } = {},
): (params: any, ...rest: A) => [any, any] {
  return (params, ...rest) => {
    const { leaves, def } = flatten<Tensor>(params);
    const out = f(params, ...rest);
    const loss = hasAux ? (out as [Tensor, unknown])[0] : (out as Tensor);
    if (!(loss instanceof Tensor)) {
      throw new Error("valueAndGrad: the function must return a scalar Tensor");
    }
    const grads = vjp(loss, leaves);
    return [out, unflatten(def, grads)];
  };
}

export function grad<A extends unknown[]>(
  f: (params: any, ...rest: A) => Tensor,
): (params: any, ...rest: A) => any {
  const vg = valueAndGrad(f);
  return (params, ...rest) => vg(params, ...rest)[1];
}
