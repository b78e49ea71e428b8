/**
 * timm's magnitude-to-argument mapping (`LEVEL_TO_ARG`): magnitudes run 0..10 (`_LEVEL_DENOM`),
 * signed ops are negated with probability 1/2. Arithmetic follows timm's expressions exactly, so
 * e.g. Rotate at 9.4 gives 28.200000000000003 as in Python.
 */
import type { Rng } from "../ir/rng.ts";
import type { RGB } from "./image.ts";

export const LEVEL_DENOM = 10;

/** The hyperparameters timm's ops read (deit3-jax passes translate_const and img_mean). */
export type AugmentHparams = {
  /** Pixels at magnitude 10 for TranslateX/Y (timm default 250; deit3-jax int(size * 0.45)). */
  translateConst: number;
  /** Fraction of the size at magnitude 10 for TranslateX/YRel (default 0.45; AugMix 0.3). */
  translatePct?: number;
  /** Fill colour for geometric ops (timm default (128, 128, 128); deit3-jax the ImageNet mean). */
  imgMean: RGB;
  /** Fixed resampling for geometric ops; default: bilinear or bicubic at random each time. */
  interpolation?: "bilinear" | "bicubic";
  /** Std of the magnitude noise; Infinity samples uniformly in [0, magnitude]. Default 0. */
  magnitudeStd?: number;
  /** Upper clip of the magnitude (0 or unset: 10). */
  magnitudeMax?: number;
};

/** `level -> args`; `rng` null disables the random sign flip (as the fixture's `levels` table). */
export type LevelFn = (level: number, hp: AugmentHparams, rng: Rng | null) => number[];

const negate = (v: number, rng: Rng | null) => (rng !== null && rng.uniform() > 0.5 ? -v : v);

const rotate: LevelFn = (level, _hp, rng) => [negate((level / LEVEL_DENOM) * 30, rng)];
const enhance: LevelFn = (level) => [(level / LEVEL_DENOM) * 1.8 + 0.1];
const enhanceIncreasing: LevelFn = (level, _hp, rng) => [
  Math.max(0.1, 1.0 + negate((level / LEVEL_DENOM) * 0.9, rng)),
];
const shear: LevelFn = (level, _hp, rng) => [negate((level / LEVEL_DENOM) * 0.3, rng)];
const translateAbs: LevelFn = (level, hp, rng) => [
  negate((level / LEVEL_DENOM) * hp.translateConst, rng),
];
const translateRel: LevelFn = (level, hp, rng) => [
  negate((level / LEVEL_DENOM) * (hp.translatePct ?? 0.45), rng),
];
const posterize: LevelFn = (level) => [Math.trunc((level / LEVEL_DENOM) * 4)];
const posterizeIncreasing: LevelFn = (level, hp, rng) => [4 - posterize(level, hp, rng)[0]];
const posterizeOriginal: LevelFn = (level) => [Math.trunc((level / LEVEL_DENOM) * 4) + 4];
const solarize: LevelFn = (level) => [Math.min(256, Math.trunc((level / LEVEL_DENOM) * 256))];
const solarizeIncreasing: LevelFn = (level, hp, rng) => [256 - solarize(level, hp, rng)[0]];
const solarizeAdd: LevelFn = (level) => [Math.min(128, Math.trunc((level / LEVEL_DENOM) * 110))];
const minmax = (min: number, max: number): LevelFn => (level) => {
  const v = min + (max - min) * (level / LEVEL_DENOM);
  return [Math.max(min, Math.min(max, v))];
};

/** timm's LEVEL_TO_ARG; `null` for ops without arguments. */
export const LEVEL_TO_ARG: Readonly<Record<string, LevelFn | null>> = {
  AutoContrast: null,
  Equalize: null,
  Invert: null,
  Rotate: rotate,
  Posterize: posterize,
  PosterizeIncreasing: posterizeIncreasing,
  PosterizeOriginal: posterizeOriginal,
  Solarize: solarize,
  SolarizeIncreasing: solarizeIncreasing,
  SolarizeAdd: solarizeAdd,
  Color: enhance,
  ColorIncreasing: enhanceIncreasing,
  Contrast: enhance,
  ContrastIncreasing: enhanceIncreasing,
  Brightness: enhance,
  BrightnessIncreasing: enhanceIncreasing,
  Sharpness: enhance,
  SharpnessIncreasing: enhanceIncreasing,
  ShearX: shear,
  ShearY: shear,
  TranslateX: translateAbs,
  TranslateY: translateAbs,
  TranslateXRel: translateRel,
  TranslateYRel: translateRel,
  Desaturate: minmax(0.5, 1.0),
  GaussianBlur: minmax(0.1, 2.0),
  GaussianBlurRand: minmax(0, 1),
};

/** The arguments timm passes to op `name` at `magnitude` (null rng: no random sign). */
export function levelToArgs(
  name: string,
  magnitude: number,
  hp: AugmentHparams,
  rng: Rng | null = null,
): number[] {
  const fn = LEVEL_TO_ARG[name];
  if (fn === undefined) {
    throw new RangeError(
      `levelToArgs: unknown op "${name}"; valid ops: ${Object.keys(LEVEL_TO_ARG).join(", ")}`,
    );
  }
  return fn === null ? [] : fn(magnitude, hp, rng);
}
