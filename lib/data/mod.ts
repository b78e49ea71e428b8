/**
 * The data pipeline: shard specs, openers, tar -> samples, decoding, the train and validation
 * loaders, MNIST and ImageNet preparation. See README.md in this folder.
 */
export type { Batch } from "./batch.ts";
export { checkData, type CheckOptions, type CheckReport, formatReport } from "./check.ts";
export { decodeImage, jpegDecoder } from "./decode.ts";
export { IMAGENET_VARIANTS, prepareImagenet, type PrepareOptions } from "./imagenet.ts";
export {
  createTrainLoader,
  createValidLoader,
  type DataLoader,
  type LoaderOptions,
  type TrainLoaderOptions,
  type ValidLoaderOptions,
} from "./loader.ts";
export { mnistShardNames, prepareMnist } from "./mnist.ts";
export { OpenError, type OpenOptions, openShard } from "./open.ts";
export { groupSamples, type RawSample, type SkipReason } from "./samples.ts";
export { braceExpand, expandEnv, expandShardSpec } from "./spec.ts";
export { formatStats, type LoaderStats } from "./stats.ts";
export { readTar, TarError, type TarMember } from "./tar.ts";
export type { TestTransformOptions, TrainTransformOptions, TransformSpec } from "./transform.ts";
