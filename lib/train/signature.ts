/**
 * The training step's signature, in one place: the argument specs of
 * `(params, opt, batch, mix, scalars, key)`, their flattened paths (`params.model.embed...`,
 * `opt.mu...`, `batch.images`, ...) and the donation mask (every `params.` and `opt.` leaf), for
 * the loop, the StableHLO export and the tests.
 */
import type { Config } from "../config/mod.ts";
import type { ShapeSpec } from "../ir/graph.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import { paramSpecs } from "../model/params.ts";
import { checkViTConfig } from "../model/vit.ts";
import { batchPlan, mixingOf, stepConfigOf } from "./run_config.ts";
import type { TrainStepConfig } from "./step.ts";

export interface SignatureOptions {
  /** Replicas of the step (every device of every process); each gets batch / devices. */
  devices: number;
  /** Whether the step takes Mixup/CutMix inputs (default: the config's mixup or cutmix > 0). */
  mixing?: boolean;
  /** Images per step over all replicas (default `train-batch-size` / `grad-accum`). */
  batch?: number;
}

export interface StepSignature {
  step: TrainStepConfig;
  /** The six arguments' specs (`mix` is null without mixing). */
  args: [unknown, unknown, unknown, unknown, unknown, ShapeSpec];
  /** Flattened argument paths, in `@main` order. */
  paths: string[];
  /** Per flattened argument: donated (params and optimizer state). */
  donate: boolean[];
  /** Images per replica. */
  perReplicaBatch: number;
  mixing: boolean;
}

export const ARG_NAMES = ["params", "opt", "batch", "mix", "scalars", "key"] as const;

export function trainStepSignature(config: Config, opts: SignatureOptions): StepSignature {
  const { devices } = opts;
  if (!Number.isInteger(devices) || devices < 1) {
    throw new Error(`devices must be a positive integer, got ${devices}`);
  }
  let perReplicaBatch: number;
  if (opts.batch === undefined) {
    perReplicaBatch = batchPlan(config, { processes: 1, devices }).perReplica;
  } else {
    perReplicaBatch = opts.batch / devices;
    if (!Number.isInteger(perReplicaBatch) || perReplicaBatch < 1) {
      throw new Error(
        `a step batch of ${opts.batch} images does not split over ${devices} devices`,
      );
    }
  }
  const mixing = opts.mixing ?? mixingOf(config);
  return stepSignature(stepConfigOf(config, devices), { perReplicaBatch, mixing });
}

/** The signature of the step `step` describes (its `replicas`), for a per-replica batch. */
export function stepSignature(
  step: TrainStepConfig,
  o: { perReplicaBatch: number; mixing: boolean },
): StepSignature {
  checkViTConfig(step.vit);
  const b = o.perReplicaBatch, mixing = o.mixing;
  const size = step.vit.imageSize;
  const f32 = (shape: number[]): ShapeSpec => ({ shape, dtype: "f32" });
  const params = paramSpecs(step.vit);
  const args: StepSignature["args"] = [
    params,
    { mu: params, nu: params },
    { images: { shape: [b, 3, size, size], dtype: "u8" }, labels: { shape: [b], dtype: "i32" } },
    mixing
      ? {
        perm: { shape: [b], dtype: "i32" },
        imageLam: f32([]),
        labelLam: f32([]),
        box: { shape: [4], dtype: "i32" },
      }
      : null,
    { lr: f32([]), bc1: f32([]), bc2: f32([]) },
    { shape: [2], dtype: "u32" },
  ];
  const paths = leavesWithPaths<ShapeSpec>(args).map(([p]) => {
    const dot = p.indexOf(".");
    const head = ARG_NAMES[Number(dot < 0 ? p : p.slice(0, dot))];
    return dot < 0 ? head : head + p.slice(dot);
  });
  const donate = paths.map((p) => p.startsWith("params.") || p.startsWith("opt."));
  return { step, args, paths, donate, perReplicaBatch: b, mixing };
}
