/**
 * Composites built from primitives: the neural-network building blocks of the ViT and its loss.
 * Each follows the flax/optax definition it replaces (named in the comment).
 */
import * as ops from "./ops.ts";
import { bernoulli } from "./random.ts";
import { Tensor } from "./tensor.ts";

/** flax.linen.softmax over `axis`. */
export function softmax(x: Tensor, axis = -1): Tensor {
  const e = ops.exp(ops.sub(x, ops.stopGradient(ops.max(x, axis, true))));
  return ops.div(e, ops.sum(e, axis, true));
}

/** jax.nn.log_softmax over `axis`. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const shifted = ops.sub(x, ops.stopGradient(ops.max(x, axis, true)));
  return ops.sub(shifted, ops.log(ops.sum(ops.exp(shifted), axis, true)));
}

/**
 * flax.linen.LayerNorm over the last axis (fast variance: E[x^2] - E[x]^2, clipped at 0).
 */
export function layerNorm(
  x: Tensor,
  scale: Tensor | null,
  bias: Tensor | null,
  eps = 1e-6,
): Tensor {
  // The backward recomputes the statistics and the normalized input from x (kept anyway)
  // rather than keeping x - mean and its normalized form (lib/autodiff/checkpoint.ts recompute).
  return Tensor.inSegment(() => layerNormOf(x, scale, bias, eps), false);
}

function layerNormOf(x: Tensor, scale: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const mean = ops.mean(x, -1, true);
  const mean2 = ops.mean(ops.mul(x, x), -1, true);
  const variance = ops.maximum(ops.sub(mean2, ops.mul(mean, mean)), 0);
  let y = ops.mul(ops.sub(x, mean), ops.rsqrt(ops.add(variance, eps)));
  if (scale) y = ops.mul(y, scale);
  if (bias) y = ops.add(y, bias);
  return y;
}

/**
 * GELU: tanh approximation (flax nn.gelu default) or exact erf form (timm). The backward
 * recomputes its intermediates from x (the pre-activation, kept anyway), so only x and the
 * output outlive the forward pass (lib/autodiff/checkpoint.ts recompute).
 */
export function gelu(x: Tensor, approximate = true): Tensor {
  return Tensor.inSegment(() => geluOf(x, approximate), false);
}

function geluOf(x: Tensor, approximate: boolean): Tensor {
  if (approximate) {
    const inner = ops.mul(
      ops.add(x, ops.mul(ops.mul(ops.mul(x, x), x), 0.044715)),
      Math.sqrt(2 / Math.PI),
    );
    return ops.mul(ops.mul(x, 0.5), ops.add(ops.tanh(inner), 1));
  }
  return ops.mul(ops.mul(x, 0.5), ops.add(ops.erf(ops.mul(x, Math.SQRT1_2)), 1));
}

/** One-hot f32 [..., n] from integer labels (out-of-range labels, e.g. -1 padding, give zeros). */
export function oneHot(labels: Tensor, n: number): Tensor {
  const shape = [...labels.shape, n];
  const classes = ops.iota(shape, shape.length - 1, labels.dtype);
  return ops.convert(
    ops.eq(ops.broadcastInDim(labels, shape, labels.shape.map((_, i) => i)), classes),
    "f32",
  );
}

/**
 * Whether any class in `labelSet` (bool [B, C]) is among the top-k logits of each row, as the
 * original's `take_along_axis(labels, top_k(logits, k)) > 0`. The k-th largest value is found
 * by k rounds of masked max (ties at the threshold count as inside). Returns f32 [B] of 0/1.
 */
export function topkMembership(logits: Tensor, labelSet: Tensor, k: number): Tensor {
  const x = ops.stopGradient(logits);
  let threshold = ops.max(x, -1, true);
  for (let i = 1; i < k; i++) {
    const below = ops.where(ops.lt(x, threshold), x, -Infinity);
    const next = ops.max(below, -1, true);
    // Fewer than k distinct values: keep the lowest threshold found.
    threshold = ops.where(ops.eq(next, -Infinity), threshold, next);
  }
  const hit = ops.and(ops.ge(x, threshold), labelSet);
  return ops.max(ops.convert(hit, "f32"), -1);
}

/**
 * flax.linen.Dropout: zero with probability `rate`, scale the rest by 1/(1-rate). `broadcastDims`
 * share one draw along those axes (droppath uses all but the batch axis).
 */
export function dropout(
  x: Tensor,
  rate: number,
  key: Tensor,
  broadcastDims: number[] = [],
): Tensor {
  if (rate === 0) return x;
  if (rate >= 1) return ops.zeros(x.shape, x.dtype);
  const maskShape = x.shape.map((d, i) => (broadcastDims.includes(i) ? 1 : d));
  const keep = ops.broadcastTo(bernoulli(key, 1 - rate, maskShape), x.shape);
  return ops.where(keep, ops.div(x, 1 - rate), 0);
}
