/**
 * The original's TrainModule pieces: input normalization on device, label smoothing, criteria
 * and accuracy metrics.
 */
import * as ops from "../ir/ops.ts";
import { logSoftmax, oneHot, topkMembership } from "../ir/nn.ts";
import type { Tensor } from "../ir/tensor.ts";

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

/** uint8 NCHW -> f32 NHWC / 255 -> (x - mean) / std, as the original does inside the step. */
export function normalizeImages(images: Tensor): Tensor {
  if (images.dtype !== "u8" || images.ndim !== 4 || images.shape[1] !== 3) {
    throw new Error(`images must be u8 [B, 3, H, W], got ${images.dtype}[${images.shape}]`);
  }
  const x = ops.div(ops.convert(ops.transpose(images, [0, 2, 3, 1]), "f32"), 255);
  const mean = ops.constant({ shape: [3], dtype: "f32", data: new Float32Array(IMAGENET_MEAN) });
  const std = ops.constant({ shape: [3], dtype: "f32", data: new Float32Array(IMAGENET_STD) });
  return ops.div(ops.sub(x, mean), std);
}

/** optax.smooth_labels. */
export function smoothLabels(labels: Tensor, alpha: number): Tensor {
  if (alpha === 0) return labels;
  const n = labels.shape[labels.ndim - 1];
  return ops.add(ops.mul(labels, 1 - alpha), alpha / n);
}

/**
 * Per-example loss [B]: `ce` is optax.softmax_cross_entropy; `bce` is
 * optax.sigmoid_binary_cross_entropy against `labels > 0`, averaged over classes.
 */
export function criterion(kind: "ce" | "bce", logits: Tensor, labels: Tensor): Tensor {
  if (kind === "ce") return ops.neg(ops.sum(ops.mul(labels, logSoftmax(logits, -1)), -1));
  const targets = ops.convert(ops.gt(labels, 0), "f32");
  // log(sigmoid(x)) = -softplus(-x); stable form: max(x,0) - x*t + log(1 + exp(-|x|)).
  const l = ops.add(
    ops.sub(ops.maximum(logits, 0), ops.mul(logits, targets)),
    ops.log(ops.add(ops.exp(ops.neg(ops.abs(logits))), 1)),
  );
  return ops.mean(l, -1);
}

/**
 * acc1 / acc5 per example as the original's TrainModule counts them: is a top-k prediction a
 * class of maximal weight in `labels` (`labels == labels.max(-1)`). For one-hot or smoothed
 * labels that is the true class; under Mixup/CutMix it is the dominant class of the pair (both
 * only when the weights tie), not every class with a positive weight.
 */
export function accuracy(logits: Tensor, labels: Tensor): { acc1: Tensor; acc5: Tensor } {
  const set = ops.eq(labels, ops.max(labels, -1, true));
  const k5 = Math.min(5, logits.shape[logits.ndim - 1]);
  return { acc1: topkMembership(logits, set, 1), acc5: topkMembership(logits, set, k5) };
}

export { oneHot };
