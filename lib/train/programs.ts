/**
 * The compiled programs of one optimizer step, and the host inputs they take.
 *
 * - `SingleStep` (grad-accum 1): one program does forward, backward and the update; parameters
 *   and optimizer state are donated, so backends that can reuse their memory do.
 * - `AccumulatedStep` (grad-accum N): a gradient program per micro-batch, the gradients summed
 *   on the device, then one apply program with their mean.
 *
 * Both take the micro-batches through `next(i)`, so the loop does not care which one runs.
 *
 * Data parallel: each program runs once per local device (`shape.devices`), as a replica of a
 * step whose gradients and metrics are averaged over every device of every process. A
 * micro-batch is split into one slice per device, and each device draws its own Mixup and
 * dropout keys, as the original's `shard_prng_key` does.
 */
import { sampleMixup } from "../augment/mixup.ts";
import type { Backend } from "../backend/backend.ts";
import { Compiled } from "../backend/jit.ts";
import type { Batch as HostBatch } from "../data/batch.ts";
import { type HostTensor, hostTensor } from "../ir/host_tensor.ts";
import * as ops from "../ir/ops.ts";
import { flatten, unflatten } from "../ir/pytree.ts";
import { Rng } from "../ir/rng.ts";
import type { Tensor } from "../ir/tensor.ts";
import { stepScalars } from "../optim/optimizer.ts";
import { DeviceTrees } from "./device_trees.ts";
import { stepSignature } from "./signature.ts";
import {
  applyGradients,
  type Batch,
  buildGradStep,
  buildTrainStep,
  type MixInputs,
  type TrainStepConfig,
} from "./step.ts";

/**
 * The shape of a step: per-replica micro-batch size, accumulation count, image side, whether it
 * mixes, and where this process's replicas are.
 */
export interface StepShape {
  /** Images per replica in one micro-batch. */
  microBatch: number;
  accum: number;
  imageSize: number;
  /** Mixup or CutMix is on: the step takes MixInputs. */
  mixing: boolean;
  /** Local devices (default 1); the loader's batch has microBatch x devices images. */
  devices?: number;
  /** This process's index in a multi-host job (default 0): its keys derive from seed + index. */
  process?: number;
}

/** Host inputs of one micro-batch on one device. */
export interface MicroInputs {
  batch: Batch<HostTensor>;
  mix: MixInputs<HostTensor> | null;
  key: HostTensor;
}

export interface StepResult {
  params: unknown;
  opt: unknown;
  /**
   * The step's metrics, read back from the device. `run` returns once the step is queued and
   * does not wait for them, so the caller can queue the next step before awaiting these (on a
   * GPU, step n + 1 is then encoded while step n runs).
   */
  metrics: Promise<Record<string, number>>;
}

export interface TrainPrograms {
  /**
   * One optimizer step from `params`/`opt` (device trees; the arrays it replaces are freed).
   * `next(i)` gives micro-batch i of the step.
   */
  run(
    params: unknown,
    opt: unknown,
    next: (i: number) => Promise<MicroInputs[]>,
    scalars: ReturnType<typeof stepScalars>,
  ): Promise<StepResult>;
  dispose(): void;
}

/** Compiles the single-step or accumulation programs for `shape`. */
export async function compileTrainPrograms(
  backend: Backend,
  cfg: TrainStepConfig,
  shape: StepShape,
  params: unknown,
  opt: unknown,
): Promise<TrainPrograms> {
  try {
    return shape.accum === 1
      ? await SingleStep.compile(backend, cfg, shape, params, opt)
      : await AccumulatedStep.compile(backend, cfg, shape, params, opt);
  } catch (e) {
    // A backend that finds the step larger than its device's memory (the WebGPU plan's
    // DeviceMemoryError) says so in figures; the step says which settings made it that large.
    if ((e as Error)?.name !== "DeviceMemoryError") throw e;
    const devices = shape.devices ?? 1;
    throw new Error(
      `the train step does not fit the device at batch ${shape.microBatch} per device` +
        (shape.accum > 1 ? ` (grad-accum ${shape.accum})` : "") +
        ` with grad-ckpt ${cfg.vit.gradCkpt ? "on" : "off"}: ${(e as Error).message}. ` +
        (cfg.vit.gradCkpt ? "" : "Enable --grad-ckpt, or use ") +
        `${cfg.vit.gradCkpt ? "Use " : ""}a smaller train-batch-size (now ${
          shape.microBatch * shape.accum * devices
        } per process) or a larger --grad-accum`,
      { cause: e },
    );
  }
}

/**
 * Micro-batch `i` of step `step` as program inputs, one per local device d: rows
 * [d b, (d + 1) b) of the loader's batch, the Mixup/CutMix draw from
 * `replicaRng(mixup-seed, d).child(step, i)` and the dropout key from
 * `replicaRng(dropout-seed, d).child(step, i)`.
 */
export function microInputs(
  shape: StepShape,
  seeds: { dropout: number; mixup: number },
  mix: { mixup: number; cutmix: number },
  batch: HostBatch,
  step: number,
  i: number,
): MicroInputs[] {
  const b = shape.microBatch, s = shape.imageSize, devices = shape.devices ?? 1;
  const px = 3 * s * s;
  if (batch.labels.length !== b * devices) {
    throw new Error(`micro-batch of ${batch.labels.length} images for ${devices} x ${b}`);
  }
  return Array.from({ length: devices }, (_, d) => {
    const rng = (seed: number) => replicaRng(seed, shape.process ?? 0, d).child(step).child(i);
    return {
      batch: {
        images: hostTensor([b, 3, s, s], "u8", batch.images.subarray(d * b * px, (d + 1) * b * px)),
        labels: hostTensor([b], "i32", batch.labels.subarray(d * b, (d + 1) * b)),
      },
      mix: shape.mixing ? mixInputs(rng(seeds.mixup), b, s, mix) : null,
      key: hostTensor([2], "u32", rng(seeds.dropout).key),
    };
  });
}

/**
 * The random stream of local device `device` of process `process`, as the original keys its
 * replicas: `shard_prng_key(PRNGKey(seed + process_index))[device]`, where `jax.random.split`
 * (threefry, partitionable) gives key d = fold_in(key, d).
 */
export function replicaRng(seed: number, process: number, device: number): Rng {
  return Rng.fromSeed(seed + process).child(device);
}

/** Host-drawn Mixup/CutMix inputs of a micro-batch. */
function mixInputs(
  rng: Rng,
  batchSize: number,
  imageSize: number,
  o: { mixup: number; cutmix: number },
): MixInputs<HostTensor> {
  const p = sampleMixup(rng, { mixup: o.mixup, cutmix: o.cutmix, batchSize, imageSize });
  return {
    perm: hostTensor([batchSize], "i32", p.perm),
    imageLam: hostTensor([], "f32", [p.kind === "mixup" ? p.lam : 1]),
    labelLam: hostTensor([], "f32", [p.lam]),
    box: hostTensor([4], "i32", p.box ?? [0, 0, 0, 0]),
  };
}

class SingleStep implements TrainPrograms {
  private constructor(
    readonly train: Compiled,
    readonly trees: DeviceTrees,
    readonly donate: boolean[],
  ) {}

  static async compile(
    backend: Backend,
    cfg: TrainStepConfig,
    shape: StepShape,
    params: unknown,
    opt: unknown,
  ): Promise<SingleStep> {
    const stepFn = buildTrainStep(cfg);
    const sig = stepSignature(cfg, { perReplicaBatch: shape.microBatch, mixing: shape.mixing });
    const [, , batch, mix, scalars, key] = sig.args;
    const train = await Compiled.createWith(
      backend,
      { donate: sig.donate },
      (p: unknown, o: never, bt: never, m: MixInputs<Tensor>, sc: never, k: Tensor) =>
        stepFn(p, o, bt, m, sc, k),
      params,
      opt,
      batch,
      mix,
      scalars,
      key,
    );
    return new SingleStep(train, new DeviceTrees(backend), sig.donate);
  }

  async run(
    params: unknown,
    opt: unknown,
    next: (i: number) => Promise<MicroInputs[]>,
    scalars: ReturnType<typeof stepScalars>,
  ): Promise<StepResult> {
    const m = await this.trees.uploadPerDevice(await next(0)) as MicroInputs;
    const out = await this.train.call([params, opt, m.batch, m.mix, scalars, m.key], {
      donate: this.donate,
    });
    this.trees.freeReplaced(m, out);
    this.trees.freeReplaced(params, out.params);
    this.trees.freeReplaced(opt, out.opt);
    return { params: out.params, opt: out.opt, metrics: this.trees.scalars(out.metrics) };
  }

  dispose(): void {
    this.train.dispose();
  }
}

class AccumulatedStep implements TrainPrograms {
  private constructor(
    readonly grad: Compiled,
    readonly add: Compiled,
    readonly apply: Compiled,
    readonly trees: DeviceTrees,
    readonly accum: number,
  ) {}

  static async compile(
    backend: Backend,
    cfg: TrainStepConfig,
    shape: StepShape,
    params: unknown,
    opt: unknown,
  ): Promise<AccumulatedStep> {
    const gradStep = buildGradStep(cfg);
    const grad = await Compiled.create(
      backend,
      (p: unknown, bt: never, m: MixInputs<Tensor>, k: Tensor) => gradStep(p, bt, m, k),
      params,
      batchSpec(shape),
      shape.mixing ? mixSpecs(shape.microBatch) : null,
      keySpec,
    );
    const add = await Compiled.create(
      backend,
      (a: unknown, g: unknown) => {
        const x = flatten<Tensor>(a), y = flatten<Tensor>(g).leaves;
        return unflatten(x.def, x.leaves.map((t, i) => ops.add(t, y[i])));
      },
      params,
      params,
    );
    const accum = shape.accum;
    const apply = await Compiled.create(
      backend,
      (p: unknown, o: never, g: unknown, sc: never) => {
        const { leaves, def } = flatten<Tensor>(g);
        const mean = unflatten(def, leaves.map((t) => ops.div(t, accum)));
        return applyGradients(cfg, p, o, mean, sc);
      },
      params,
      opt,
      params,
      stepScalars(cfg.optimizer, 0, 0),
    );
    return new AccumulatedStep(grad, add, apply, new DeviceTrees(backend), accum);
  }

  async run(
    params: unknown,
    opt: unknown,
    next: (i: number) => Promise<MicroInputs[]>,
    scalars: ReturnType<typeof stepScalars>,
  ): Promise<StepResult> {
    let acc: unknown;
    const reads: Promise<Record<string, number>>[] = [];
    for (let i = 0; i < this.accum; i++) {
      const m = await this.trees.uploadPerDevice(await next(i)) as MicroInputs;
      const out = await this.grad.call([params, m.batch, m.mix, m.key]);
      this.trees.freeReplaced(m, out);
      reads.push(this.trees.scalars(out.metrics));
      if (acc === undefined) acc = out.grads;
      else {
        const summed = await this.add.call([acc, out.grads]);
        this.trees.freeReplaced(acc, summed);
        this.trees.freeReplaced(out.grads, summed);
        acc = summed;
      }
    }
    const out = await this.apply.call([params, opt, acc, scalars]);
    this.trees.freeReplaced(acc, out);
    this.trees.freeReplaced(params, out.params);
    this.trees.freeReplaced(opt, out.opt);
    const metrics = Promise.all(reads).then((all) => {
      const sums: Record<string, number> = {};
      for (const m of all) {
        for (const [k, v] of Object.entries(m)) sums[k] = (sums[k] ?? 0) + v / this.accum;
      }
      return sums;
    });
    return { params: out.params, opt: out.opt, metrics };
  }

  dispose(): void {
    for (const c of [this.grad, this.add, this.apply]) c.dispose();
  }
}

const keySpec = { shape: [2], dtype: "u32" as const };

function batchSpec(shape: StepShape) {
  const b = shape.microBatch, s = shape.imageSize;
  return {
    images: { shape: [b, 3, s, s], dtype: "u8" as const },
    labels: { shape: [b], dtype: "i32" as const },
  };
}

function mixSpecs(b: number) {
  return {
    perm: { shape: [b], dtype: "i32" as const },
    imageLam: { shape: [], dtype: "f32" as const },
    labelLam: { shape: [], dtype: "f32" as const },
    box: { shape: [4], dtype: "i32" as const },
  };
}
