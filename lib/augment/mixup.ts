/**
 * Host-side Mixup / CutMix parameter sampling with deit3-jax's semantics (`utils.Mixup`); the
 * mixing itself runs in the compiled train step, with these values passed in as step inputs so
 * every backend mixes identically:
 *
 * - mixup:  `x = lam * x + (1 - lam) * x[perm]`, same for (smoothed) labels;
 * - cutmix: rows y0..y1-1 and columns x0..x1-1 (half-open) of every image are replaced by those
 *   of `x[perm]`; labels mix with `lam` = the fraction of the image left unreplaced.
 *
 * With both enabled, one of the two is picked with probability 1/2 per batch (the original
 * computes both and selects). The draws come from the host `Rng`, not JAX's key stream.
 */
import type { Rng } from "../ir/rng.ts";

export type MixupOptions = {
  /** Beta(alpha, alpha) for mixup; 0 disables. deit3-jax default 0.8. */
  mixup: number;
  /** Beta(alpha, alpha) for cutmix; 0 disables. deit3-jax default 1.0. */
  cutmix: number;
  batchSize: number;
  /** Images are imageSize x imageSize. */
  imageSize: number;
};

export type MixupParams = {
  kind: "none" | "mixup" | "cutmix";
  /** Weight of each sample's own label (and, for mixup, its own pixels). */
  lam: number;
  /** Partner of each row: mixed with `x[perm[i]]`. */
  perm: Int32Array;
  /** CutMix only: `[y0, y1, x0, x1]`, the half-open pasted region. */
  box?: [number, number, number, number];
};

export function sampleMixup(rng: Rng, opts: MixupOptions): MixupParams {
  const { mixup, cutmix, batchSize, imageSize } = opts;
  for (const [name, v] of [["mixup", mixup], ["cutmix", cutmix]] as const) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new RangeError(`sampleMixup: ${name} alpha must be a number >= 0, got ${v}`);
    }
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`sampleMixup: batchSize must be a positive integer, got ${batchSize}`);
  }
  if (!Number.isInteger(imageSize) || imageSize < 1) {
    throw new RangeError(`sampleMixup: imageSize must be a positive integer, got ${imageSize}`);
  }
  if (mixup === 0 && cutmix === 0) {
    return { kind: "none", lam: 1, perm: Int32Array.from({ length: batchSize }, (_, i) => i) };
  }
  const useMixup = cutmix === 0 || (mixup > 0 && rng.uniform() > 0.5);
  if (useMixup) {
    const lam = rng.beta(mixup, mixup);
    return { kind: "mixup", lam, perm: Int32Array.from(rng.permutation(batchSize)) };
  }
  const ratio = rng.beta(cutmix, cutmix);
  const size = Math.sqrt(1 - ratio);
  const xstart = rng.uniform(), ystart = rng.uniform();
  const [x0, x1] = maskRange(xstart, size, imageSize);
  const [y0, y1] = maskRange(ystart, size, imageSize);
  const lam = 1 - ((x1 - x0) * (y1 - y0)) / (imageSize * imageSize);
  return {
    kind: "cutmix",
    lam,
    perm: Int32Array.from(rng.permutation(batchSize)),
    box: [y0, y1, x0, x1],
  };
}

/**
 * Indices i of `linspace(0, 1, n)` with `start - size/2 <= t_i < start + size/2`, as a half-open
 * range (the set is contiguous).
 */
function maskRange(start: number, size: number, n: number): [number, number] {
  let lo = -1, hi = -1;
  for (let i = 0; i < n; i++) {
    const t = n === 1 ? 0 : i / (n - 1);
    if (start - 0.5 * size <= t && t < start + 0.5 * size) {
      if (lo < 0) lo = i;
      hi = i + 1;
    }
  }
  return lo < 0 ? [0, 0] : [lo, hi];
}

/**
 * Host reference of the mixing the train step performs with `params` (for testing traced
 * versions, and for host-side pipelines): `images` is [B, H, W, C] float32 and `labels` [B, K]
 * float32 (one-hot, already smoothed), both row-major; returns new arrays.
 */
export function mixBatchHost(
  images: Float32Array,
  labels: Float32Array,
  params: MixupParams,
  shape: { batch: number; height: number; width: number; channels: number; classes: number },
): { images: Float32Array; labels: Float32Array } {
  const { batch: B, height: H, width: W, channels: C, classes: K } = shape;
  if (images.length !== B * H * W * C || labels.length !== B * K || params.perm.length !== B) {
    throw new RangeError(
      `mixBatchHost: images ${images.length}, labels ${labels.length} and perm ` +
        `${params.perm.length} do not match batch ${B} of ${H}x${W}x${C}, ${K} classes`,
    );
  }
  const lam = params.lam, perm = params.perm;
  const outLabels = new Float32Array(labels.length);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) {
      outLabels[b * K + k] = lam * labels[b * K + k] + (1 - lam) * labels[perm[b] * K + k];
    }
  }
  const outImages = new Float32Array(images.length);
  const per = H * W * C;
  for (let b = 0; b < B; b++) {
    const own = b * per, other = perm[b] * per;
    if (params.kind === "mixup") {
      for (let i = 0; i < per; i++) {
        outImages[own + i] = lam * images[own + i] + (1 - lam) * images[other + i];
      }
      continue;
    }
    outImages.set(images.subarray(own, own + per), own);
    if (params.kind === "cutmix") {
      const [y0, y1, x0, x1] = params.box!;
      for (let y = y0; y < y1; y++) {
        const s = other + (y * W + x0) * C, d = own + (y * W + x0) * C;
        outImages.set(images.subarray(s, s + (x1 - x0) * C), d);
      }
    }
  }
  return { images: outImages, labels: outLabels };
}
