/**
 * Auto-augment policy strings as timm parses them (`rand_augment_transform`,
 * `auto_augment_transform`, `augment_and_mix_transform`) and the random op application of timm's
 * `AugmentOp`, `RandAugment`, `AutoAugment` and `AugMixAugment`, drawing from a seeded `Rng`.
 */
import type { Rng } from "../ir/rng.ts";
import { type AugmentHparams, LEVEL_DENOM, LEVEL_TO_ARG } from "./levels.ts";
import { applyOp, isGeometricOp } from "./ops.ts";
import type { RGBImage } from "./image.ts";
import { blend } from "./enhance.ts";
import { AUTO_AUGMENT_POLICIES, type SubPolicy } from "./policies.ts";

/** One op of a policy: applied with probability `prob` at `magnitude` (0..10). */
export type PolicyOp = { name: string; prob: number; magnitude: number };

export type RandAugmentSpec = {
  kind: "rand";
  ops: PolicyOp[];
  numOps: number;
  /** Weighted choice without replacement when set; otherwise uniform with replacement. */
  weights?: number[];
  magnitudeStd: number;
  magnitudeMax?: number;
};
export type AutoAugmentSpec = {
  kind: "auto";
  name: string;
  subPolicies: PolicyOp[][];
  magnitudeStd: number;
};
export type AugMixSpec = {
  kind: "augmix";
  ops: PolicyOp[];
  width: number;
  depth: number;
  alpha: number;
  blended: boolean;
  magnitudeStd: number;
};
export type PolicySpec = { kind: "none" } | RandAugmentSpec | AutoAugmentSpec | AugMixSpec;

export const POLICY_FORMS = 'valid forms: "none"; RandAugment ' +
  '"rand[-m<int>][-n<int>][-mstd<float>][-mmax<int>][-inc<0|1>][-p<float>][-t<weights|3aw|3a>]' +
  '[-w0]" (e.g. "rand-m9-mstd0.5-inc1"); AutoAugment "v0" | "v0r" | "original" | "originalr" | ' +
  '"3a", optionally "-mstd<float>"; AugMix ' +
  '"augmix[-m<int>][-w<int>][-d<int>][-a<float>][-b<0|1>][-mstd<float>]"';

/** RandAugment op sets of timm. */
export const RAND_TRANSFORMS = [
  "AutoContrast",
  "Equalize",
  "Invert",
  "Rotate",
  "Posterize",
  "Solarize",
  "SolarizeAdd",
  "Color",
  "Contrast",
  "Brightness",
  "Sharpness",
  "ShearX",
  "ShearY",
  "TranslateXRel",
  "TranslateYRel",
] as const;
export const RAND_INCREASING_TRANSFORMS = [
  "AutoContrast",
  "Equalize",
  "Invert",
  "Rotate",
  "PosterizeIncreasing",
  "SolarizeIncreasing",
  "SolarizeAdd",
  "ColorIncreasing",
  "ContrastIncreasing",
  "BrightnessIncreasing",
  "SharpnessIncreasing",
  "ShearX",
  "ShearY",
  "TranslateXRel",
  "TranslateYRel",
] as const;

const RAND_3A = ["SolarizeIncreasing", "Desaturate", "GaussianBlur"];
const RAND_WEIGHTED_3A: Record<string, number> = {
  SolarizeIncreasing: 6,
  Desaturate: 6,
  GaussianBlur: 6,
  Rotate: 3,
  ShearX: 2,
  ShearY: 2,
  PosterizeIncreasing: 1,
  AutoContrast: 1,
  ColorIncreasing: 1,
  SharpnessIncreasing: 1,
  ContrastIncreasing: 1,
  BrightnessIncreasing: 1,
  Equalize: 1,
  Invert: 1,
};
const RAND_WEIGHTED_0: Record<string, number> = {
  Rotate: 3,
  ShearX: 2,
  ShearY: 2,
  TranslateXRel: 1,
  TranslateYRel: 1,
  ColorIncreasing: .25,
  SharpnessIncreasing: 0.25,
  AutoContrast: 0.25,
  SolarizeIncreasing: .05,
  SolarizeAdd: .05,
  ContrastIncreasing: .05,
  BrightnessIncreasing: .05,
  Equalize: .05,
  PosterizeIncreasing: 0.05,
  Invert: 0.05,
};
/** Older timm's `w0` weights, applied by position to the chosen op list. */
const RAND_CHOICE_WEIGHTS_W0 = [
  0.025,
  0.005,
  0,
  0.3,
  0,
  0.005,
  0.005,
  0.025,
  0.005,
  0.005,
  0.025,
  0.2,
  0.2,
  0.1,
  0.1,
];

const AUGMIX_TRANSFORMS = [
  "AutoContrast",
  "ColorIncreasing",
  "ContrastIncreasing",
  "BrightnessIncreasing",
  "SharpnessIncreasing",
  "Equalize",
  "Rotate",
  "PosterizeIncreasing",
  "SolarizeIncreasing",
  "ShearX",
  "ShearY",
  "TranslateXRel",
  "TranslateYRel",
];

/** Parse and validate a policy string; throws listing the valid forms when malformed. */
export function parsePolicy(policy: string): PolicySpec {
  if (typeof policy !== "string" || policy.length === 0) {
    throw new RangeError(`auto-augment policy must be a non-empty string; ${POLICY_FORMS}`);
  }
  if (policy === "none") return { kind: "none" };
  const [head, ...sections] = policy.split("-");
  if (head === "rand") return parseRand(policy, sections);
  if (head === "augmix") return parseAugMix(policy, sections);
  if (head in AUTO_AUGMENT_POLICIES) return parseAuto(policy, head, sections);
  throw new RangeError(`unknown auto-augment policy "${policy}"; ${POLICY_FORMS}`);
}

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

/** Sections split as timm's `re.split(r'(\d.*)', c)`: key before the first digit, value after. */
function splitSection(policy: string, section: string): [string, string] {
  const m = /^(\D*)(\d.*)$/.exec(section);
  if (!m) {
    throw new RangeError(
      `auto-augment policy "${policy}": section "${section}" has no numeric value; ${POLICY_FORMS}`,
    );
  }
  return [m[1], m[2]];
}

function parseIntValue(policy: string, key: string, val: string): number {
  if (!/^\d+$/.test(val)) {
    throw new RangeError(
      `auto-augment policy "${policy}": "${key}" needs an integer, got "${val}"; ${POLICY_FORMS}`,
    );
  }
  return Number(val);
}

function parseFloatValue(policy: string, key: string, val: string): number {
  if (!/^\d+(\.\d*)?([eE][+-]?\d+)?$/.test(val)) {
    throw new RangeError(
      `auto-augment policy "${policy}": "${key}" needs a number, got "${val}"; ${POLICY_FORMS}`,
    );
  }
  return Number(val);
}

function unknownSection(policy: string, section: string): never {
  throw new RangeError(
    `auto-augment policy "${policy}": unknown section "${section}"; ${POLICY_FORMS}`,
  );
}

function parseRand(policy: string, sections: string[]): RandAugmentSpec {
  let magnitude = LEVEL_DENOM, numOps = 2, prob = 0.5, increasing = false;
  let magnitudeStd: number | undefined, magnitudeMax: number | undefined;
  let choice: string | undefined, weightIdx: number | undefined;
  for (const c of sections) {
    if (c.startsWith("t")) {
      // Transform set name; the first one given wins, as timm.
      choice ??= c.slice(1);
      continue;
    }
    const [key, val] = splitSection(policy, c);
    switch (key) {
      case "mstd": {
        // timm keeps the first mstd given (hparams.setdefault); > 100 means uniform sampling.
        const v = parseFloatValue(policy, key, val);
        magnitudeStd ??= v > 100 ? Infinity : v;
        break;
      }
      case "mmax":
        magnitudeMax ??= parseIntValue(policy, key, val);
        break;
      case "inc":
        // timm tests bool(val) on the string, so any value (even "inc0") enables the set.
        increasing = val.length > 0;
        break;
      case "m":
        magnitude = parseIntValue(policy, key, val);
        break;
      case "n":
        numOps = parseIntValue(policy, key, val);
        break;
      case "p":
        prob = parseFloatValue(policy, key, val);
        break;
      case "w":
        weightIdx = parseIntValue(policy, key, val);
        if (weightIdx !== 0) {
          throw new RangeError(
            `auto-augment policy "${policy}": only weight set "w0" exists; ${POLICY_FORMS}`,
          );
        }
        break;
      default:
        unknownSection(policy, c);
    }
  }
  let names: string[];
  let weights: number[] | undefined;
  if (choice === undefined || choice === "") {
    names = [...(increasing ? RAND_INCREASING_TRANSFORMS : RAND_TRANSFORMS)];
  } else if (choice === "weights" || choice === "3aw") {
    const table = choice === "weights" ? RAND_WEIGHTED_0 : RAND_WEIGHTED_3A;
    names = Object.keys(table);
    weights = names.map((n) => table[n]);
  } else if (choice === "3a") {
    names = [...RAND_3A];
  } else {
    throw new RangeError(
      `auto-augment policy "${policy}": unknown transform set "t${choice}" (valid: tweights, ` +
        `t3aw, t3a); ${POLICY_FORMS}`,
    );
  }
  if (weightIdx !== undefined && choice) {
    throw new RangeError(
      `auto-augment policy "${policy}": "w0" and "t${choice}" both pick op weights; use one`,
    );
  }
  if (weightIdx !== undefined) {
    weights = names.map((_, i) => RAND_CHOICE_WEIGHTS_W0[i]);
  }
  if (weights) {
    const total = weights.reduce((s, w) => s + w, 0);
    weights = weights.map((w) => w / total);
    const nonzero = weights.filter((w) => w > 0).length;
    if (numOps > nonzero) {
      throw new RangeError(
        `auto-augment policy "${policy}": weighted choice draws without replacement, so n must ` +
          `be at most ${nonzero}, got ${numOps}`,
      );
    }
  }
  if (!(prob >= 0 && prob <= 1)) {
    throw new RangeError(`auto-augment policy "${policy}": p must be in [0, 1], got ${prob}`);
  }
  return {
    kind: "rand",
    ops: names.map((name) => ({ name, prob, magnitude })),
    numOps,
    weights,
    magnitudeStd: magnitudeStd ?? 0,
    magnitudeMax,
  };
}

function parseAuto(policy: string, name: string, sections: string[]): AutoAugmentSpec {
  let magnitudeStd: number | undefined;
  for (const c of sections) {
    const [key, val] = splitSection(policy, c);
    if (key !== "mstd") unknownSection(policy, c);
    magnitudeStd ??= parseFloatValue(policy, key, val);
  }
  const table: readonly SubPolicy[] = AUTO_AUGMENT_POLICIES[name];
  return {
    kind: "auto",
    name,
    subPolicies: table.map((sp) =>
      sp.map(([n, prob, magnitude]) => ({ name: n, prob, magnitude }))
    ),
    magnitudeStd: magnitudeStd ?? 0,
  };
}

function parseAugMix(policy: string, sections: string[]): AugMixSpec {
  let magnitude = 3, width = 3, depth = -1, alpha = 1, blended = false;
  let magnitudeStd: number | undefined;
  for (const c of sections) {
    const [key, val] = splitSection(policy, c);
    switch (key) {
      case "mstd":
        magnitudeStd ??= parseFloatValue(policy, key, val);
        break;
      case "m":
        magnitude = parseIntValue(policy, key, val);
        break;
      case "w":
        width = parseIntValue(policy, key, val);
        break;
      case "d":
        depth = parseIntValue(policy, key, val);
        break;
      case "a":
        alpha = parseFloatValue(policy, key, val);
        break;
      case "b":
        // bool(val) on the string, as timm: "b0" also enables blending.
        blended = val.length > 0;
        break;
      default:
        unknownSection(policy, c);
    }
  }
  if (width < 1 || !(alpha > 0)) {
    throw new RangeError(`auto-augment policy "${policy}": AugMix needs w >= 1 and a > 0`);
  }
  return {
    kind: "augmix",
    // AugMix defaults to uniform magnitude sampling unless mstd is given.
    ops: AUGMIX_TRANSFORMS.map((name) => ({ name, prob: 1, magnitude })),
    width,
    depth,
    alpha,
    blended,
    magnitudeStd: magnitudeStd ?? Infinity,
  };
}

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
