/**
 * Rematerialization (the original's `--grad-ckpt`, jax.checkpoint). Nodes created while a
 * `checkpoint`-wrapped function runs form a segment (an id range: ids only grow). In the reverse
 * sweep, VJP rules of segment nodes see clones of the forward nodes instead of the originals,
 * so the backward pass recomputes the segment from its inputs and the originals can be freed
 * right after the forward pass.
 */
import { Tensor } from "../ir/tensor.ts";

export interface Segment {
  id: number;
  start: number;
  end: number;
}

const segments: Segment[] = [];

/** Wraps `fn` so that its activations are recomputed in the backward pass. */
export function checkpoint<F extends (...args: any[]) => any>(fn: F): F {
  return ((...args: unknown[]) => {
    const start = Tensor.peekNextId();
    const out = fn(...args);
    segments.push({ id: segments.length, start, end: Tensor.peekNextId() });
    return out;
  }) as F;
}

export function segmentOf(t: Tensor): Segment | undefined {
  // Segments are few (one per layer); a linear scan from the newest is enough.
  for (let i = segments.length - 1; i >= 0; i--) {
    const s = segments[i];
    if (t.id >= s.start && t.id < s.end) return s;
  }
  return undefined;
}

/**
 * The clone of `n` whose inputs inside the segment are clones too. `cache` maps segment id ->
 * (original id -> clone) and is shared across one reverse sweep.
 */
export function cloneForRemat(
  n: Tensor,
  seg: Segment,
  cache: Map<number, Map<number, Tensor>>,
): Tensor {
  let map = cache.get(seg.id);
  if (!map) cache.set(seg.id, map = new Map());
  const m = map;
  const go = (t: Tensor): Tensor => {
    if (t.id < seg.start || t.id >= seg.end || t.inputs.length === 0) return t;
    let c = m.get(t.id);
    if (!c) {
      c = new Tensor(t.prim, t.inputs.map(go), t.params, t.shape, t.dtype);
      m.set(t.id, c);
    }
    return c;
  };
  return go(n);
}
