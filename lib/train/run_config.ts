/** Maps a training config (the original's flag names) to the model, step and data settings. */
import type { Config } from "../config/mod.ts";
import type { LoaderOptions } from "../data/loader.ts";
import type { ViTConfig } from "../model/vit.ts";
import type { OptimizerConfig } from "../optim/optimizer.ts";
import type { TrainStepConfig } from "./step.ts";

export function vitConfigOf(c: Config): ViTConfig {
  return {
    layers: c.layers as number,
    dim: c.dim as number,
    heads: c.heads as number,
    labels: c.labels as number,
    layerscale: !!c.layerscale,
    patchSize: c["patch-size"] as number,
    imageSize: c["image-size"] as number,
    posemb: c.posemb as ViTConfig["posemb"],
    pooling: c.pooling as ViTConfig["pooling"],
    gelu: c.gelu as ViTConfig["gelu"],
    dropout: c.dropout as number,
    droppath: c.droppath as number,
    gradCkpt: !!c["grad-ckpt"],
  };
}

/** What the train and validation loaders take from the config: bad-data limits, label range, I/O. */
export function dataOptionsOf(
  c: Config,
): Pick<LoaderOptions, "labels" | "maxSkipFraction" | "open"> {
  return {
    labels: c.labels as number,
    maxSkipFraction: c["max-bad-fraction"] as number,
    open: {
      stallTimeoutMs: 1000 * (c["data-stall-timeout"] as number),
      retries: c["data-retries"] as number,
    },
  };
}

export function optimizerConfigOf(c: Config): OptimizerConfig {
  return {
    kind: c.optimizer as OptimizerConfig["kind"],
    b1: c["adam-b1"] as number,
    b2: c["adam-b2"] as number,
    eps: c["adam-eps"] as number,
    weightDecay: c["weight-decay"] as number,
    clipGrad: c["clip-grad"] as number,
    lrDecay: c["lr-decay"] as number,
    layers: c.layers as number,
  };
}

export function stepConfigOf(c: Config, replicas = 1): TrainStepConfig {
  return {
    vit: vitConfigOf(c),
    criterion: c.criterion as TrainStepConfig["criterion"],
    labelSmoothing: c["label-smoothing"] as number,
    optimizer: optimizerConfigOf(c),
    replicas,
  };
}

/** The model keys that must match between a saved training state and the config resuming it. */
export const MODEL_KEYS = [
  "layers",
  "dim",
  "heads",
  "labels",
  "layerscale",
  "patch-size",
  "image-size",
  "posemb",
  "pooling",
  "optimizer",
] as const;

/**
 * The loader workers to start for `key` (`train-loader-workers` or `valid-loader-workers`): the
 * configured count, clamped to the machine's cores (the recipes ask for 40 and 10; more workers
 * than cores only add memory and contention). `log` hears about a clamp.
 */
export function loaderWorkers(
  c: Config,
  key: "train-loader-workers" | "valid-loader-workers",
  log?: (line: string) => void,
  cores = navigator.hardwareConcurrency || 1,
): number {
  const asked = c[key] as number;
  if (asked <= cores) return asked;
  log?.(`${key} ${asked} exceeds the ${cores} cores of this machine: using ${cores}`);
  return cores;
}
