/**
 * The train and test transforms of deit3-jax (`dataset.create_transforms`), on decoded RGB images:
 *
 * train: random crop (rrc | src | none) -> horizontal flip (p 0.5) -> auto-augment ->
 *        ColorJitter -> RandomErasing;
 * test:  Resize(int(imageSize / testCropRatio)) -> CenterCrop(imageSize).
 *
 * Every random choice comes from the `Rng` handed in with the image; each stage draws from its own
 * child stream (crop 0, flip 1, auto-augment 2, jitter 3, erasing 4), so a (seed, sample path)
 * pair always reproduces the same image and one stage's draws never shift another's.
 */
import type { Rng } from "../ir/rng.ts";
import { centerCrop, randomResizedCrop, resizeShortSide, simpleRandomCrop } from "./crops.ts";
import { ERASING_FILLS, type ErasingFill, randomErasing } from "./erasing.ts";
import { flipLeftRight } from "./geometry.ts";
import { checkImage, type RGBImage } from "./image.ts";
import { colorJitter } from "./jitter.ts";
import type { AugmentHparams } from "./levels.ts";
import { IMAGENET_MEAN_RGB } from "./ops.ts";
import { createAutoAugment } from "./autoaugment.ts";

export type TrainTransformOptions = {
  imageSize: number;
  randomCrop: "rrc" | "src" | "none";
  colorJitter: number;
  /** "rand-m9-mstd0.5-inc1", "3a", "v0", "augmix-m3", "none", ... (see POLICY_FORMS). */
  autoAugment: string;
  /** Probability of RandomErasing. */
  randomErasing: number;
  /** How RandomErasing fills its box; default "original" (deit3-jax's). */
  randomErasingFill?: ErasingFill;
  /** Default true. */
  hflip?: boolean;
};

export type TestTransformOptions = { imageSize: number; testCropRatio: number };

const RANDOM_CROPS = ["rrc", "src", "none"] as const;

/** Build the train transform; options are validated here, not per image. */
export function createTrainTransform(
  opts: TrainTransformOptions,
): (img: RGBImage, rng: Rng) => RGBImage {
  const size = checkImageSize(opts.imageSize, "createTrainTransform");
  if (!RANDOM_CROPS.includes(opts.randomCrop)) {
    throw new RangeError(
      `createTrainTransform: randomCrop must be one of ${RANDOM_CROPS.join(", ")}, got ` +
        `"${opts.randomCrop}"`,
    );
  }
  const cj = opts.colorJitter;
  if (typeof cj !== "number" || !Number.isFinite(cj) || cj < 0) {
    throw new RangeError(`createTrainTransform: colorJitter must be a number >= 0, got ${cj}`);
  }
  const pErase = opts.randomErasing;
  if (typeof pErase !== "number" || !(pErase >= 0 && pErase <= 1)) {
    throw new RangeError(
      `createTrainTransform: randomErasing is a probability in [0, 1], got ${pErase}`,
    );
  }
  const fill = opts.randomErasingFill ?? "original";
  if (!ERASING_FILLS.includes(fill)) {
    throw new RangeError(
      `createTrainTransform: randomErasingFill must be one of ${ERASING_FILLS.join(", ")}, got ` +
        `"${fill}"`,
    );
  }
  const hflip = opts.hflip ?? true;
  // deit3-jax's hyperparameters: translate_const int(size * 0.45), img_mean the ImageNet mean.
  const hp: AugmentHparams = {
    translateConst: Math.trunc(size * 0.45),
    imgMean: IMAGENET_MEAN_RGB,
  };
  const autoAugment = createAutoAugment(opts.autoAugment, hp);
  const crop = opts.randomCrop === "rrc"
    ? (img: RGBImage, rng: Rng) => randomResizedCrop(img, size, rng)
    : opts.randomCrop === "src"
    ? (img: RGBImage, rng: Rng) => simpleRandomCrop(img, size, rng)
    : (img: RGBImage) => centerCrop(resizeShortSide(img, size), size);

  return (img, rng) => {
    checkImage(img, "train transform");
    let out = crop(img, rng.child(0));
    if (hflip && rng.child(1).uniform() < 0.5) out = flipLeftRight(out);
    out = autoAugment(out, rng.child(2));
    if (cj > 0) out = colorJitter(out, rng.child(3), cj, cj, cj);
    if (pErase > 0) out = randomErasing(out, rng.child(4), { probability: pErase, fill });
    return out;
  };
}

/** Build the test transform: Resize(int(imageSize / testCropRatio)), CenterCrop(imageSize). */
export function createTestTransform(opts: TestTransformOptions): (img: RGBImage) => RGBImage {
  const size = checkImageSize(opts.imageSize, "createTestTransform");
  const ratio = opts.testCropRatio;
  if (typeof ratio !== "number" || !(ratio > 0) || !Number.isFinite(ratio)) {
    throw new RangeError(`createTestTransform: testCropRatio must be > 0, got ${ratio}`);
  }
  const resizeTo = Math.trunc(size / ratio);
  if (resizeTo < 1) {
    throw new RangeError(`createTestTransform: imageSize / testCropRatio is below 1 pixel`);
  }
  return (img) => {
    checkImage(img, "test transform");
    return centerCrop(resizeShortSide(img, resizeTo), size);
  };
}

function checkImageSize(size: number, where: string): number {
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`${where}: imageSize must be a positive integer, got ${size}`);
  }
  return size;
}
