/**
 * The compiled programs of one optimizer step, and the host inputs they take.
 *
 * - `SingleStep` (grad-accum 1): one program does forward, backward and the update; parameters
 *   and optimizer state are donated, so backends that can reuse their memory do.
 * - `AccumulatedStep` (grad-accum N): a gradient program per micro-batch, the gradients summed
 *   on the device, then one apply program with their mean.
 *
 * Both take the micro-batches through `next(i)`, so the loop does not care which one runs.
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
import {
  applyGradients,
  type Batch,
  buildGradStep,
  buildTrainStep,
  type MixInputs,
  type TrainStepConfig,
} from "./step.ts";

/** The shape of a step: micro-batch size, accumulation count, image side, whether it mixes. */
export interface StepShape {
  microBatch: number;
  accum: number;
  imageSize: number;
  /** Mixup or CutMix is on: the step takes MixInputs. */
  mixing: boolean;
}

/** Host inputs of one micro-batch. */
export interface MicroInputs {
  batch: Batch<HostTensor>;
  mix: MixInputs<HostTensor> | null;
  key: HostTensor;
}

export interface StepResult {
  params: unknown;
  opt: unknown;
  metrics: Record<string, number>;
}

export interface TrainPrograms {
  /**
   * One optimizer step from `params`/`opt` (device trees; the arrays it replaces are freed).
   * `next(i)` gives micro-batch i of the step.
   */
  run(
    params: unknown,
    opt: unknown,
    next: (i: number) => Promise<MicroInputs>,
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
  return shape.accum === 1
    ? await SingleStep.compile(backend, cfg, shape, params, opt)
    : await AccumulatedStep.compile(backend, cfg, shape, params, opt);
}

/**
 * Micro-batch `i` of step `step` as program inputs: the loader's batch, the Mixup/CutMix draw
 * from `Rng(mixup-seed).child(step, i)` and the dropout key `Rng(dropout-seed).child(step, i)`.
 */
export function microInputs(
  shape: StepShape,
  seeds: { dropout: number; mixup: number },
  mix: { mixup: number; cutmix: number },
  batch: HostBatch,
  step: number,
  i: number,
): MicroInputs {
  const b = shape.microBatch, s = shape.imageSize;
  return {
    batch: {
      images: hostTensor([b, 3, s, s], "u8", batch.images),
      labels: hostTensor([b], "i32", batch.labels),
    },
    mix: shape.mixing ? mixInputs(Rng.fromSeed(seeds.mixup).child(step).child(i), b, s, mix) : null,
    key: hostTensor([2], "u32", Rng.fromSeed(seeds.dropout).child(step).child(i).key),
  };
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
    readonly mixing: boolean,
  ) {}

  static async compile(
    backend: Backend,
    cfg: TrainStepConfig,
    shape: StepShape,
    params: unknown,
    opt: unknown,
  ): Promise<SingleStep> {
    const stepFn = buildTrainStep(cfg);
    const train = await Compiled.createWith(
      backend,
      { donate: donation(params, opt, shape.mixing) },
      (p: unknown, o: never, bt: never, m: MixInputs<Tensor>, sc: never, k: Tensor) =>
        stepFn(p, o, bt, m, sc, k),
      params,
      opt,
      batchSpec(shape),
      shape.mixing ? mixSpecs(shape.microBatch) : null,
      stepScalars(cfg.optimizer, 0, 0),
      keySpec,
    );
    return new SingleStep(train, new DeviceTrees(backend), shape.mixing);
  }

  async run(
    params: unknown,
    opt: unknown,
    next: (i: number) => Promise<MicroInputs>,
    scalars: ReturnType<typeof stepScalars>,
  ): Promise<StepResult> {
    const m = await next(0);
    const out = await this.train.call([params, opt, m.batch, m.mix, scalars, m.key], {
      donate: donation(params, opt, this.mixing),
    });
    this.trees.freeReplaced(params, out.params);
    this.trees.freeReplaced(opt, out.opt);
    return { params: out.params, opt: out.opt, metrics: await this.trees.scalars(out.metrics) };
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
    next: (i: number) => Promise<MicroInputs>,
    scalars: ReturnType<typeof stepScalars>,
  ): Promise<StepResult> {
    let acc: unknown;
    const sums: Record<string, number> = {};
    for (let i = 0; i < this.accum; i++) {
      const m = await next(i);
      const out = await this.grad.call([params, m.batch, m.mix, m.key]);
      const metrics = await this.trees.scalars(out.metrics);
      for (const [k, v] of Object.entries(metrics)) sums[k] = (sums[k] ?? 0) + v / this.accum;
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
    return { params: out.params, opt: out.opt, metrics: sums };
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

/** Donation flags over the flattened step inputs: params and optimizer state, not the rest. */
function donation(params: unknown, opt: unknown, mixing: boolean): boolean[] {
  const n = flatten(params).leaves.length + flatten(opt).leaves.length;
  // then images, labels; perm, imageLam, labelLam, box; lr, bc1, bc2; key
  return Array.from({ length: n + 2 + (mixing ? 4 : 0) + 3 + 1 }, (_, i) => i < n);
}
