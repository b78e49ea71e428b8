/**
 * Image augmentation for training: Pillow-exact ops on 8-bit RGB images, timm's RandAugment /
 * AutoAugment / AugMix / 3-Augment policies, torchvision's crops, flips, ColorJitter and
 * RandomErasing, the deit3-jax train/test transforms, and host-side Mixup/CutMix sampling.
 */
export type { RGB, RGBImage } from "./image.ts";
export { checkImage, cloneImage, createImage } from "./image.ts";

export {
  crop,
  resize,
  RESIZE_FILTERS,
  resizedCrop,
  type ResizeFilter,
  type ResizeOptions,
  setResizeBackend,
} from "./resize.ts";
export {
  affine,
  type AffineMatrix,
  type AffineOptions,
  type AffineResample,
  flipLeftRight,
  flipTopBottom,
  rotate,
  rotate180,
  rotate270,
  rotate90,
} from "./geometry.ts";
export {
  applyLut,
  autocontrast,
  equalize,
  grayscale,
  histogram,
  invert,
  luma,
  posterize,
  solarize,
  solarizeAdd,
} from "./color.ts";
export { blend, brightness, color, contrast, sharpness, smooth } from "./enhance.ts";
export { boxBlur, gaussianBlur } from "./blur.ts";

export {
  applyOp,
  IMAGENET_MEAN_RGB,
  isGeometricOp,
  OP_NAMES,
  type OpOptions,
  type OpResample,
} from "./ops.ts";
export { type AugmentHparams, LEVEL_TO_ARG, levelToArgs } from "./levels.ts";
export {
  parsePolicy,
  POLICY_FORMS,
  type PolicyOp,
  type PolicySpec,
  RAND_INCREASING_TRANSFORMS,
  RAND_TRANSFORMS,
} from "./policy.ts";
export { chooseRandOps, createAutoAugment, type OpDraw, runOp, sampleOp } from "./autoaugment.ts";
export { AUTO_AUGMENT_POLICIES } from "./policies.ts";

export {
  centerCrop,
  cropReflect,
  type CropRegion,
  padReflect,
  randomCropReflect,
  randomResizedCrop,
  randomResizedCropParams,
  resizeShortSide,
  simpleRandomCrop,
} from "./crops.ts";
export { colorJitter } from "./jitter.ts";
export {
  eraseBox,
  ERASING_FILLS,
  type ErasingBox,
  type ErasingFill,
  type ErasingOptions,
  IMAGENET_MEAN,
  IMAGENET_STD,
  randomErasing,
  randomErasingBox,
} from "./erasing.ts";
export {
  createTestTransform,
  createTrainTransform,
  type TestTransformOptions,
  type TrainTransformOptions,
} from "./transforms.ts";
export { mixBatchHost, type MixupOptions, type MixupParams, sampleMixup } from "./mixup.ts";
