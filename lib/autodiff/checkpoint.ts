/**
 * Rematerialization (the original's `--grad-ckpt`, jax.checkpoint). Nodes created while a
 * `checkpoint`-wrapped function runs carry its segment (`Tensor.segment`). In the reverse sweep,
 * VJP rules of segment nodes see clones of the forward nodes instead of the originals, so the
 * backward pass recomputes the segment from its inputs and the originals can be freed right
 * after the forward pass. Each clone names the node it recomputes (`Tensor.rematOf`), which is
 * how the StableHLO emitter finds them (lib/backend/stablehlo/remat.ts).
 */
import { type RematSegment, Tensor } from "../ir/tensor.ts";

/** Wraps `fn` so that its activations are recomputed in the backward pass. */
export function checkpoint<F extends (...args: any[]) => any>(fn: F): F {
  return ((...args: unknown[]) => Tensor.inSegment(() => fn(...args))) as F;
}

/**
 * Wraps `fn`, cheap elementwise work over tensors the backward keeps anyway, so that the
 * backward recomputes its intermediates instead of keeping them (GELU from its pre-activation,
 * layer norm's statistics from its input). Unlike `checkpoint` the StableHLO program gets no
 * barrier: XLA's own fusion decides there.
 */
export function recompute<F extends (...args: any[]) => any>(fn: F): F {
  return ((...args: unknown[]) => Tensor.inSegment(() => fn(...args), false)) as F;
}

/**
 * The clone of `n` whose inputs inside its segment are clones too. `cache` maps segment ->
 * (original id -> clone) and is shared across one reverse sweep.
 */
export function cloneForRemat(
  n: Tensor,
  seg: RematSegment,
  cache: Map<RematSegment, Map<number, Tensor>>,
): Tensor {
  let map = cache.get(seg);
  if (!map) cache.set(seg, map = new Map());
  const m = map;
  const go = (t: Tensor): Tensor => {
    if (t.segment !== seg || t.inputs.length === 0) return t;
    let c = m.get(t.id);
    if (!c) {
      c = t.remat(t.inputs.map(go));
      m.set(t.id, c);
    }
    return c;
  };
  return go(n);
}
