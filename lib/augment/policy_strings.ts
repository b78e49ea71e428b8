/**
 * Auto-augment policy strings parsed as timm parses them (`rand_augment_transform`,
 * `auto_augment_transform`, `augment_and_mix_transform`) into policy specs; `autoaugment.ts`
 * applies them.
 */
import { LEVEL_DENOM } from "./levels.ts";
import { AUTO_AUGMENT_POLICIES, type SubPolicy } from "./autoaugment_policies.ts";

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
