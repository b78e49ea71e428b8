/**
 * timm's augmentation ops (`timm.data.auto_augment.NAME_TO_OP`) by name, with explicit arguments:
 * `applyOp("Rotate", img, [27], { resample: "bicubic", fill: [123, 116, 103] })`.
 */
import type { Rng } from "../ir/rng.ts";
import { gaussianBlur } from "./blur.ts";
import { autocontrast, equalize, invert, posterize, solarize, solarizeAdd } from "./color.ts";
import { brightness, color, contrast, sharpness } from "./enhance.ts";
import { affine, rotate } from "./geometry.ts";
import { checkFill, checkImage, type RGB, type RGBImage } from "./image.ts";

/** Resampling for geometric ops, as timm chooses between them. */
export type OpResample = "bilinear" | "bicubic";

export type OpOptions = {
  /** Geometric ops only; default "bicubic" (timm's default when no interpolation is given). */
  resample?: OpResample;
  /** Fill for geometric ops; default deit3-jax's `img_mean`, the ImageNet mean (123, 116, 103). */
  fill?: RGB;
  /** Needed by "GaussianBlurRand", which draws its radius. */
  rng?: Rng;
};

/** deit3-jax's `img_mean` hyperparameter: `(IMAGENET_DEFAULT_MEAN * 255).astype(int)`. */
export const IMAGENET_MEAN_RGB: RGB = [123, 116, 103];

type OpFn = (
  img: RGBImage,
  args: readonly number[],
  o: Required<Omit<OpOptions, "rng">> & {
    rng?: Rng;
  },
) => RGBImage;

type OpSpec = { args: number; geometric?: boolean; fn: OpFn };

const OPS: Record<string, OpSpec> = {
  AutoContrast: { args: 0, fn: (img) => autocontrast(img) },
  Equalize: { args: 0, fn: (img) => equalize(img) },
  Invert: { args: 0, fn: (img) => invert(img) },
  Rotate: {
    args: 1,
    geometric: true,
    fn: (img, [deg], o) => rotate(img, deg, { resample: o.resample, fill: o.fill }),
  },
  Posterize: { args: 1, fn: (img, [bits]) => posterize(img, bits) },
  PosterizeIncreasing: { args: 1, fn: (img, [bits]) => posterize(img, bits) },
  PosterizeOriginal: { args: 1, fn: (img, [bits]) => posterize(img, bits) },
  Solarize: { args: 1, fn: (img, [t]) => solarize(img, t) },
  SolarizeIncreasing: { args: 1, fn: (img, [t]) => solarize(img, t) },
  SolarizeAdd: { args: 1, fn: (img, [add]) => solarizeAdd(img, add) },
  Color: { args: 1, fn: (img, [f]) => color(img, f) },
  ColorIncreasing: { args: 1, fn: (img, [f]) => color(img, f) },
  Contrast: { args: 1, fn: (img, [f]) => contrast(img, f) },
  ContrastIncreasing: { args: 1, fn: (img, [f]) => contrast(img, f) },
  Brightness: { args: 1, fn: (img, [f]) => brightness(img, f) },
  BrightnessIncreasing: { args: 1, fn: (img, [f]) => brightness(img, f) },
  Sharpness: { args: 1, fn: (img, [f]) => sharpness(img, f) },
  SharpnessIncreasing: { args: 1, fn: (img, [f]) => sharpness(img, f) },
  ShearX: { args: 1, geometric: true, fn: (img, [f], o) => affine(img, [1, f, 0, 0, 1, 0], o) },
  ShearY: { args: 1, geometric: true, fn: (img, [f], o) => affine(img, [1, 0, 0, f, 1, 0], o) },
  TranslateX: {
    args: 1,
    geometric: true,
    fn: (img, [px], o) => affine(img, [1, 0, px, 0, 1, 0], o),
  },
  TranslateY: {
    args: 1,
    geometric: true,
    fn: (img, [px], o) => affine(img, [1, 0, 0, 0, 1, px], o),
  },
  TranslateXRel: {
    args: 1,
    geometric: true,
    fn: (img, [pct], o) => affine(img, [1, 0, pct * img.width, 0, 1, 0], o),
  },
  TranslateYRel: {
    args: 1,
    geometric: true,
    fn: (img, [pct], o) => affine(img, [1, 0, 0, 0, 1, pct * img.height], o),
  },
  Desaturate: {
    args: 1,
    // timm: enhance factor 0 is grayscale, 1 no change.
    fn: (img, [f]) => color(img, Math.min(1, Math.max(0, 1 - f))),
  },
  GaussianBlur: { args: 1, fn: (img, [radius]) => gaussianBlur(img, radius) },
  GaussianBlurRand: {
    args: 1,
    fn: (img, [f], o) => {
      if (!o.rng) throw new Error(`applyOp: "GaussianBlurRand" draws its radius; pass { rng }`);
      return gaussianBlur(img, o.rng.uniformRange(0.1, 2.0 * f));
    },
  },
};

/** timm op names accepted by `applyOp`. */
export const OP_NAMES: readonly string[] = Object.keys(OPS);

/** True for ops that resample (and so take `resample` and `fill`). */
export function isGeometricOp(name: string): boolean {
  return OPS[name]?.geometric === true;
}

/**
 * Apply timm op `name` with its explicit arguments (as the fixture manifest lists them, i.e. after
 * the magnitude-to-argument mapping): Rotate [degrees], Shear* [factor], Translate*Rel [fraction of
 * the size], Translate* [pixels], Posterize* [bits], Solarize* [threshold], SolarizeAdd [amount],
 * Color/Contrast/Brightness/Sharpness* [factor], Desaturate [amount], GaussianBlur [radius],
 * GaussianBlurRand [scale]; AutoContrast, Equalize and Invert take none.
 */
export function applyOp(
  name: string,
  image: RGBImage,
  args: readonly number[] = [],
  opts: OpOptions = {},
): RGBImage {
  const spec = OPS[name];
  if (!spec) {
    throw new RangeError(`applyOp: unknown op "${name}"; valid ops: ${OP_NAMES.join(", ")}`);
  }
  checkImage(image, `applyOp(${name})`);
  if (!Array.isArray(args) || args.length !== spec.args || !args.every(Number.isFinite)) {
    throw new RangeError(
      `applyOp(${name}): expected ${spec.args} finite numeric argument(s), got [${args}]`,
    );
  }
  const resample = opts.resample ?? "bicubic";
  if (resample !== "bilinear" && resample !== "bicubic") {
    throw new RangeError(
      `applyOp(${name}): resample must be "bilinear" or "bicubic", got "${resample}"`,
    );
  }
  const fill = opts.fill ?? IMAGENET_MEAN_RGB;
  checkFill(fill, `applyOp(${name})`);
  return spec.fn(image, args, { resample, fill, rng: opts.rng });
}
