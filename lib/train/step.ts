/**
 * The training step as one traced function: normalization, label smoothing, Mixup/CutMix,
 * forward, loss, gradients, (replica averaging), optimizer update and metrics. Backends compile
 * it once; every step reuses it with new inputs.
 */
import { valueAndGrad } from "../autodiff/grad.ts";
import { type HostTensor, hostTensor } from "../ir/host_tensor.ts";
import * as ops from "../ir/ops.ts";
import { treeMap } from "../ir/pytree.ts";
import type { Tensor } from "../ir/tensor.ts";
import { type ViTConfig, vitForward } from "../model/vit.ts";
import { applyUpdate, type OptimizerConfig, type StepScalars } from "../optim/optimizer.ts";
import { accuracy, criterion, normalizeImages, oneHot, smoothLabels } from "./loss.ts";

export interface TrainStepConfig {
  vit: ViTConfig;
  criterion: "ce" | "bce";
  labelSmoothing: number;
  optimizer: OptimizerConfig;
  /** Deterministic forward (no dropout/droppath/mixup): the reference fixtures use it. */
  deterministic?: boolean;
  /** Data-parallel replicas; gradients and metrics are averaged across them. */
  replicas?: number;
}

/**
 * Mixup/CutMix drawn on the host (see lib/augment/mixup.ts), applied inside the step:
 * `x = w * x + (1 - w) * x[perm]` with w = 0 inside `box` (CutMix) and `imageLam` elsewhere
 * (Mixup); labels mix with `labelLam`. No mixing: identity perm, imageLam = labelLam = 1.
 */
export interface MixInputs<T> {
  perm: T; // i32 [B]
  imageLam: T; // f32 []
  labelLam: T; // f32 []
  box: T; // i32 [4]: y0, y1, x0, x1 (pixels, half-open)
}

export interface Batch<T> {
  images: T; // u8 [B, 3, H, W]
  labels: T; // i32 [B]
}

export function noMix(batchSize: number): MixInputs<HostTensor> {
  return {
    perm: hostTensor([batchSize], "i32", Array.from({ length: batchSize }, (_, i) => i)),
    imageLam: hostTensor([], "f32", [1]),
    labelLam: hostTensor([], "f32", [1]),
    box: hostTensor([4], "i32", [0, 0, 0, 0]),
  };
}

/** Loss (mean over the batch) and per-example metrics. */
export function lossAndMetrics(
  cfg: TrainStepConfig,
  params: unknown,
  batch: Batch<Tensor>,
  mix: MixInputs<Tensor> | null,
  key: Tensor | undefined,
): [Tensor, Record<string, Tensor>] {
  const labelCount = cfg.vit.labels;
  if (labelCount === null) throw new Error("training needs a classification head (labels)");
  let images = normalizeImages(batch.images);
  let labels = oneHot(batch.labels, labelCount);
  if (cfg.criterion === "ce") labels = smoothLabels(labels, cfg.labelSmoothing);
  if (mix) [images, labels] = applyMix(images, labels, mix);
  const logits = vitForward(cfg.vit, params, images, { det: !!cfg.deterministic, key });
  const loss = ops.mean(criterion(cfg.criterion, logits, labels));
  // Accuracy against the dominant class of the smoothed, mixed labels, as the original counts.
  const { acc1, acc5 } = accuracy(logits, labels);
  return [loss, { loss, acc1: ops.mean(acc1), acc5: ops.mean(acc5) }];
}

/**
 * `(params, opt, batch, mix, scalars, key) -> { params, opt, metrics }`. `mix` may be null when
 * the recipe has no Mixup/CutMix.
 */
export function buildTrainStep(cfg: TrainStepConfig) {
  return (
    params: unknown,
    opt: { mu: unknown; nu: unknown },
    batch: Batch<Tensor>,
    mix: MixInputs<Tensor> | null,
    scalars: StepScalars<Tensor>,
    key: Tensor,
  ) => {
    const [[, metrics], grads] = valueAndGrad(
      (p: unknown) => lossAndMetrics(cfg, p, batch, mix, key),
      { hasAux: true },
    )(params) as [[Tensor, Record<string, Tensor>], unknown];
    const next = applyGradients(cfg, params, opt, grads, scalars);
    return { ...next, metrics: treeMap(metrics, (t: Tensor) => replicaMean(cfg, t)) };
  };
}

/** Replica-averages `grads` and applies one optimizer update. */
export function applyGradients(
  cfg: TrainStepConfig,
  params: unknown,
  opt: unknown,
  grads: unknown,
  scalars: StepScalars<Tensor>,
): { params: unknown; opt: unknown } {
  const g = treeMap(grads, (t: Tensor) => replicaMean(cfg, t));
  const next = applyUpdate(cfg.optimizer, params, g, opt as { mu: unknown; nu: unknown }, scalars);
  return { params: next.params, opt: next.state };
}

function replicaMean(cfg: TrainStepConfig, t: Tensor): Tensor {
  const r = cfg.replicas ?? 1;
  return r === 1 ? t : ops.div(ops.allReduceSum(t, r), r);
}

/** Gradients only (for gradient accumulation micro-steps and the doctor); metrics averaged. */
export function buildGradStep(cfg: TrainStepConfig) {
  return (
    params: unknown,
    batch: Batch<Tensor>,
    mix: MixInputs<Tensor> | null,
    key: Tensor | undefined,
  ) => {
    const [[, metrics], grads] = valueAndGrad(
      (p: unknown) => lossAndMetrics(cfg, p, batch, mix, key),
      { hasAux: true },
    )(params) as [[Tensor, Record<string, Tensor>], unknown];
    return { grads, metrics: treeMap(metrics, (t: Tensor) => replicaMean(cfg, t)) };
  };
}

/**
 * Evaluation: logits-based metrics with a validity mask for padded rows (label -1), summed over
 * the rows of every replica (each validation sample counts once, wherever it ran). As the
 * original's `validation_step` (`det=True`), the loss is taken against the one-hot labels: no
 * label smoothing, no mixing.
 */
export function buildEvalStep(cfg: TrainStepConfig) {
  return (params: unknown, batch: Batch<Tensor>) => {
    const labelCount = cfg.vit.labels!;
    const hard = oneHot(batch.labels, labelCount);
    const logits = vitForward(cfg.vit, params, normalizeImages(batch.images), { det: true });
    const valid = ops.convert(ops.ge(batch.labels, 0), "f32");
    const loss = ops.mul(criterion(cfg.criterion, logits, hard), valid);
    const { acc1, acc5 } = accuracy(logits, hard);
    // Sums over valid rows; the host divides by the number of real samples.
    const total = (t: Tensor) => ops.allReduceSum(ops.sum(t), cfg.replicas ?? 1);
    return {
      loss: total(loss),
      acc1: total(ops.mul(acc1, valid)),
      acc5: total(ops.mul(acc5, valid)),
      count: total(valid),
    };
  };
}

export function applyMix(
  images: Tensor,
  labels: Tensor,
  mix: MixInputs<Tensor>,
): [Tensor, Tensor] {
  const [b, h, w] = images.shape;
  // x[perm] as a one-hot matmul: exact in f32 and cheap next to the model.
  const permMatrix = ops.convert(
    ops.eq(ops.broadcastInDim(mix.perm, [b, b], [0]), ops.iota([b, b], 1, "i32")),
    "f32",
  );
  const gather = (t: Tensor) =>
    ops.reshape(ops.matmul(permMatrix, ops.reshape(t, [b, -1])), t.shape);
  const rows = ops.iota([h, w], 0, "i32"), cols = ops.iota([h, w], 1, "i32");
  const part = (i: number) =>
    ops.broadcastTo(ops.reshape(ops.sliceAxis(mix.box, 0, i, i + 1), []), [h, w]);
  const inside = ops.and(
    ops.and(ops.ge(rows, part(0)), ops.lt(rows, part(1))),
    ops.and(ops.ge(cols, part(2)), ops.lt(cols, part(3))),
  );
  const weight = ops.where(inside, 0, ops.broadcastTo(mix.imageLam, [h, w]));
  const wImg = ops.broadcastInDim(weight, images.shape, [1, 2]);
  const mixedImages = ops.add(ops.mul(wImg, images), ops.mul(ops.sub(1, wImg), gather(images)));
  const lam = ops.broadcastTo(mix.labelLam, labels.shape);
  const mixedLabels = ops.add(ops.mul(lam, labels), ops.mul(ops.sub(1, lam), gather(labels)));
  return [mixedImages, mixedLabels];
}
