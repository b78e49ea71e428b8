/**
 * A training config (the original's flag names) mapped to what the code runs: the model, the
 * step, the optimizer and its schedule, the batch plan, the loaders and the backend. The one
 * place where config keys become settings, shared by `train`, `eval`, `export-hlo` and the bench.
 */
import type { BackendOptions } from "../backend/select.ts";
import type { Config } from "../config/mod.ts";
import type { LoaderOptions, TrainLoaderOptions } from "../data/loader.ts";
import type { ViTConfig } from "../model/vit.ts";
import type { OptimizerConfig } from "../optim/optimizer.ts";
import { warmupCosine } from "../optim/schedule.ts";
import type { TrainStepConfig } from "./step.ts";

export function vitConfigOf(c: Config): ViTConfig {
  return {
    layers: c.layers,
    dim: c.dim,
    heads: c.heads,
    labels: c.labels,
    layerscale: c.layerscale,
    patchSize: c["patch-size"],
    imageSize: c["image-size"],
    posemb: c.posemb,
    pooling: c.pooling,
    dropout: c.dropout,
    droppath: c.droppath,
    gradCkpt: c["grad-ckpt"],
  };
}

export function optimizerConfigOf(c: Config): OptimizerConfig {
  return {
    kind: c.optimizer,
    b1: c["adam-b1"],
    b2: c["adam-b2"],
    eps: c["adam-eps"],
    weightDecay: c["weight-decay"],
    clipGrad: c["clip-grad"],
    lrDecay: c["lr-decay"],
    layers: c.layers,
  };
}

export function stepConfigOf(c: Config, replicas = 1): TrainStepConfig {
  return {
    vit: vitConfigOf(c),
    criterion: c.criterion,
    labelSmoothing: c["label-smoothing"],
    optimizer: optimizerConfigOf(c),
    replicas,
  };
}

/** Whether the step takes Mixup/CutMix inputs. */
export function mixingOf(c: Config): boolean {
  return c.mixup > 0 || c.cutmix > 0;
}

/** The learning rate at step 0 of the warmup (the original's `init_value`). */
export const WARMUP_INIT_LR = 1e-6;
/** The learning rate the cosine decay ends at (the original's `end_value`). */
export const COSINE_END_LR = 1e-5;

/** The original's `optax.warmup_cosine_decay_schedule` over `training-steps`. */
export function scheduleOf(c: Config): (step: number) => number {
  return warmupCosine({
    initValue: WARMUP_INIT_LR,
    peakValue: c["learning-rate"],
    warmupSteps: c["warmup-steps"],
    decaySteps: c["training-steps"],
    endValue: COSINE_END_LR,
  });
}

/** What `createBackend` takes from the config (train and eval alike). */
export function backendOptionsOf(c: Config): BackendOptions {
  return {
    pjrtPlugin: c["pjrt-plugin"] ?? undefined,
    precision: c.precision,
    devices: c.devices,
  };
}

/**
 * How the batches split, computed once for a job of `processes` hosts with `devices` local
 * devices each: every batch size the loaders, the programs and the checks read.
 */
export interface BatchPlan {
  /** `train-batch-size`: images per optimizer step over every replica of every host. */
  global: number;
  /** `grad-accum`: micro-batches per optimizer step. */
  accum: number;
  /** Images per replica (one device) in one micro-batch: what a step program takes. */
  perReplica: number;
  /** Images per host in one micro-batch: the train loader's batch (perReplica x devices). */
  perHost: number;
  /** Validation images per host (`valid-batch-size` / processes); split over its devices. */
  validPerHost: number;
}

/** The batch plan, or an error naming the key that does not split and what to use instead. */
export function batchPlan(c: Config, job: { processes: number; devices: number }): BatchPlan {
  const { processes, devices } = job;
  const replicas = processes * devices;
  const global = c["train-batch-size"], accum = c["grad-accum"];
  const perReplica = global / accum / replicas;
  if (!Number.isInteger(perReplica) || perReplica < 1) {
    throw new Error(
      `train-batch-size: ${global} images` + (accum > 1 ? ` in ${accum} accumulation steps` : "") +
        ` do not split over ${processes} process(es) x ${devices} device(s); use a multiple of ` +
        `${replicas * accum} (processes x devices x grad-accum)`,
    );
  }
  const validPerHost = validBatchPerHost(c, job);
  return { global, accum, perReplica, perHost: perReplica * devices, validPerHost };
}

/** Validation images per host (`valid-batch-size` / processes), checked to split over the job. */
export function validBatchPerHost(c: Config, job: { processes: number; devices: number }): number {
  const valid = c["valid-batch-size"], replicas = job.processes * job.devices;
  if (c["valid-dataset-shards"] && valid % replicas !== 0) {
    throw new Error(
      `valid-batch-size: ${valid} does not split over ${job.processes} process(es) x ` +
        `${job.devices} device(s); use a multiple of ${replicas}`,
    );
  }
  return valid / job.processes;
}

/** What the train and validation loaders take from the config: bad-data limits, label range, I/O. */
export function dataOptionsOf(
  c: Config,
): Pick<LoaderOptions, "labels" | "maxSkipFraction" | "open"> {
  return {
    labels: c.labels,
    maxSkipFraction: c["max-bad-fraction"],
    open: {
      stallTimeoutMs: 1000 * c["data-stall-timeout"],
      retries: c["data-retries"],
    },
  };
}

/** The train loader of this host, from the config and the batch plan (without `start`/`log`). */
export function trainLoaderOptionsOf(
  c: Config,
  plan: BatchPlan,
  process: { index: number; count: number },
  workers: number,
): TrainLoaderOptions {
  return {
    shards: c["train-dataset-shards"] ?? "",
    batchSize: plan.perHost,
    workers,
    processIndex: process.index,
    processCount: process.count,
    shuffleSeed: c["shuffle-seed"],
    augmentRepeats: c["augment-repeats"],
    ...dataOptionsOf(c),
    transform: {
      kind: "train",
      options: {
        imageSize: c["image-size"],
        randomCrop: c["random-crop"],
        colorJitter: c["color-jitter"],
        autoAugment: c["auto-augment"],
        randomErasing: c["random-erasing"],
        randomErasingFill: c["random-erasing-fill"],
        hflip: c.hflip,
      },
    },
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
  const asked = c[key];
  if (asked <= cores) return asked;
  log?.(`${key} ${asked} exceeds the ${cores} cores of this machine: using ${cores}`);
  return cores;
}
