/**
 * The random op application of timm's `AugmentOp`, `RandAugment`, `AutoAugment` and
 * `AugMixAugment` for a parsed policy, drawing every choice from a seeded `Rng`.
 */
import type { Rng } from "../ir/rng.ts";
import { blend } from "./enhance.ts";
import type { RGBImage } from "./image.ts";
import { type AugmentHparams, LEVEL_DENOM, LEVEL_TO_ARG } from "./levels.ts";
import { applyOp, isGeometricOp } from "./ops.ts";
import {
  type AugMixSpec,
  parsePolicy,
  type PolicyOp,
  type RandAugmentSpec,
} from "./policy_strings.ts";

/** An auto-augment transform for `policy` with timm hyperparameters `hp`. */
export function createAutoAugment(
  policy: string,
  hp: AugmentHparams,
): (img: RGBImage, rng: Rng) => RGBImage {
  const spec = parsePolicy(policy);
  switch (spec.kind) {
    case "none":
      return (img) => img;
    case "rand": {
      const h = { ...hp, magnitudeStd: spec.magnitudeStd, magnitudeMax: spec.magnitudeMax };
      return (img, rng) => {
        for (const op of chooseRandOps(spec, rng)) img = runOp(op, img, rng, h);
        return img;
      };
    }
    case "auto": {
      const h = { ...hp, magnitudeStd: spec.magnitudeStd };
      return (img, rng) => {
        for (const op of rng.choice(spec.subPolicies)) img = runOp(op, img, rng, h);
        return img;
      };
    }
    case "augmix": {
      const h = { ...hp, magnitudeStd: spec.magnitudeStd, translatePct: hp.translatePct ?? 0.3 };
      return (img, rng) => augMix(spec, img, rng, h);
    }
  }
}

/** What one application of a policy op drew: null when skipped (probability 1 - prob). */
export type OpDraw = { magnitude: number; args: number[]; resample?: "bilinear" | "bicubic" };

/**
 * The random part of timm's `AugmentOp.__call__`: skip with probability 1 - prob, draw the
 * magnitude (normal noise, or uniform for an infinite std), clip it to [0, mmax or 10], map it to
 * arguments (a random sign for signed ops), and pick bilinear or bicubic for geometric ops.
 */
export function sampleOp(op: PolicyOp, rng: Rng, hp: AugmentHparams): OpDraw | null {
  if (op.prob < 1 && rng.uniform() > op.prob) return null;
  let magnitude = op.magnitude;
  const std = hp.magnitudeStd ?? 0;
  if (std > 0) {
    magnitude = std === Infinity ? rng.uniformRange(0, magnitude) : magnitude + std * rng.normal();
  }
  const upper = hp.magnitudeMax || LEVEL_DENOM;
  magnitude = Math.max(0, Math.min(magnitude, upper));
  const levelFn = LEVEL_TO_ARG[op.name];
  const args = levelFn ? levelFn(magnitude, hp, rng) : [];
  const resample = isGeometricOp(op.name)
    ? hp.interpolation ?? (rng.uniform() < 0.5 ? "bilinear" : "bicubic")
    : undefined;
  return { magnitude, args, resample };
}

/** timm's `AugmentOp.__call__`: `sampleOp`, then the op with those arguments. */
export function runOp(op: PolicyOp, img: RGBImage, rng: Rng, hp: AugmentHparams): RGBImage {
  const draw = sampleOp(op, rng, hp);
  if (draw === null) return img;
  return applyOp(op.name, img, draw.args, { resample: draw.resample, fill: hp.imgMean, rng });
}

/** `np.random.choice(ops, n, replace=weights is None, p=weights)` for a RandAugment spec. */
export function chooseRandOps(spec: RandAugmentSpec, rng: Rng): PolicyOp[] {
  const { ops, numOps, weights } = spec;
  const chosen: PolicyOp[] = [];
  if (!weights) {
    for (let i = 0; i < numOps; i++) chosen.push(ops[Math.floor(rng.uniform() * ops.length)]);
    return chosen;
  }
  // Successive weighted sampling without replacement: the same distribution numpy draws from.
  const w = weights.slice();
  for (let i = 0; i < numOps; i++) {
    let total = 0;
    for (const v of w) total += v;
    let r = rng.uniform() * total, k = -1;
    for (let j = 0; j < w.length; j++) {
      if (w[j] <= 0) continue;
      k = j; // the last positive weight also catches rounding at the top end
      r -= w[j];
      if (r < 0) break;
    }
    chosen.push(ops[k]);
    w[k] = 0;
  }
  return chosen;
}

// ---------------------------------------------------------------------------------------------

/** timm's AugMixAugment (basic or blended mixing). */
function augMix(spec: AugMixSpec, img: RGBImage, rng: Rng, hp: AugmentHparams): RGBImage {
  const fr = Math.fround;
  const g = Array.from({ length: spec.width }, () => rng.gamma(spec.alpha));
  const gsum = g.reduce((s, v) => s + v, 0);
  const mixingWeights = g.map((v) => fr(v / gsum));
  const m = fr(rng.beta(spec.alpha, spec.alpha));
  const chain = (start: RGBImage) => {
    const depth = spec.depth > 0 ? spec.depth : rng.randint(1, 3);
    let out = start;
    for (let i = 0; i < depth; i++) {
      out = runOp(spec.ops[Math.floor(rng.uniform() * spec.ops.length)], out, rng, hp);
    }
    return out;
  };
  if (spec.blended) {
    // Per-chain blend weights so that blending chain by chain gives the mixture.
    const ws = mixingWeights.map((w) => fr(w * m));
    const rws: number[] = [];
    let cump = 1;
    for (let i = ws.length - 1; i >= 0; i--) {
      const a = ws[i] / cump;
      cump *= 1 - a;
      rws.push(a);
    }
    let out = img;
    for (const w of rws.reverse().map(fr)) out = blend(out.data, chain(img), w);
    return out;
  }
  const mixed = new Float32Array(img.data.length);
  for (const mw of mixingWeights) {
    const aug = chain(img).data;
    for (let i = 0; i < mixed.length; i++) mixed[i] = fr(mixed[i] + fr(mw * aug[i]));
  }
  const mixed8 = new Uint8Array(mixed.length);
  for (let i = 0; i < mixed.length; i++) {
    const v = mixed[i];
    mixed8[i] = v <= 0 ? 0 : v >= 255 ? 255 : v;
  }
  return blend(img.data, { width: img.width, height: img.height, data: mixed8 }, m);
}
