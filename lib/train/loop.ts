/**
 * The training loop of `deno task train`: builds the model and the compiled step, streams
 * batches, logs, evaluates, checkpoints and resumes.
 *
 * Files in `output-dir` (local or gs://):
 * - `{name}-last.msgpack`, `{name}-best.msgpack`: parameters only, Flax msgpack, as the original
 *   writes them (its tools and `deno task convert` read them);
 * - `{name}-state.msgpack`: the full training state for resume (params, optimizer, step, seeds,
 *   data position, config), written atomically;
 * - `metrics.jsonl`, `metrics.html`, `config.json` (local output dirs; for gs:// they go to
 *   `runs/{name}` locally).
 */
import type { Backend, DeviceArray } from "../backend/backend.ts";
import { Compiled } from "../backend/jit.ts";
import { createBackend } from "../backend/select.ts";
import { encodeFlaxMsgpack } from "../checkpoint/flax_msgpack.ts";
import { loadPretrainedFile } from "../checkpoint/finetune.ts";
import { isGcsUrl, writeOutput } from "../checkpoint/storage.ts";
import { loadTrainingState, saveTrainingState } from "../checkpoint/train_state.ts";
import type { Tree } from "../checkpoint/tree.ts";
import { type Config, configToJson } from "../config/mod.ts";
import { sampleMixup } from "../augment/mixup.ts";
import type { Batch as HostBatch } from "../data/batch.ts";
import { createTrainLoader, type DataLoader } from "../data/loader.ts";
import { Evaluator } from "./evaluate.ts";
import { type HostTensor, hostTensor } from "../ir/host_tensor.ts";
import { flatten, leavesWithPaths, unflatten } from "../ir/pytree.ts";
import { Rng } from "../ir/rng.ts";
import type { Tensor } from "../ir/tensor.ts";
import { initViT } from "../model/init.ts";
import { initOptState, stepScalars } from "../optim/optimizer.ts";
import { warmupCosine } from "../optim/schedule.ts";
import { formatDuration, RunLog } from "./logging.ts";
import { dataOptionsOf, MODEL_KEYS, stepConfigOf } from "./run_config.ts";
import {
  applyGradients,
  buildGradStep,
  buildTrainStep,
  type MixInputs,
  type TrainStepConfig,
} from "./step.ts";
import * as ops from "../ir/ops.ts";

export interface TrainResult {
  step: number;
  bestAcc1: number;
  lastEval?: Record<string, number>;
  interrupted: boolean;
  seconds: number;
}

export class TrainingError extends Error {}

export interface TrainOptions {
  /** Stops the loop after the current step (SIGINT/SIGTERM); state is saved first. */
  signal?: AbortSignal;
  /** Use this backend instead of creating one from the config. */
  backend?: Backend;
  /** Stop after this step even if training-steps is larger (tests: interrupt at a step). */
  stopAtStep?: number;
}

export async function train(config: Config, opts: TrainOptions = {}): Promise<TrainResult> {
  const t0 = performance.now();
  const name = config.name as string;
  const outDir = (config["output-dir"] as string | undefined) ?? `runs/${name}`;
  const localDir = isGcsUrl(outDir) ? `runs/${name}` : outDir;
  const log = new RunLog(localDir, name);
  await log.init();
  const ownBackend = !opts.backend;
  const backend = opts.backend ??
    await createBackend(config.backend as never, {
      pjrtPlugin: config["pjrt-plugin"] as string | undefined,
      precision: config.precision as never,
      log: (l) => log.line(l),
    });
  log.line(`backend: ${backend.name} (${backend.description})`);
  try {
    return await new Trainer(config, backend, log, outDir, opts).run(t0);
  } finally {
    if (ownBackend) backend.dispose();
  }
}

class Trainer {
  readonly step: TrainStepConfig;
  readonly totalSteps: number;
  readonly accum: number;
  readonly batchSize: number;
  readonly microBatch: number;
  readonly imageSize: number;
  readonly schedule: (step: number) => number;
  readonly name: string;
  readonly mixing: boolean;
  bestAcc1 = 0;
  lastEval: Record<string, number> | undefined;
  pendingBest = false;

  constructor(
    readonly config: Config,
    readonly backend: Backend,
    readonly log: RunLog,
    readonly outDir: string,
    readonly opts: TrainOptions,
  ) {
    this.step = stepConfigOf(config);
    this.totalSteps = config["training-steps"] as number;
    this.accum = (config["grad-accum"] as number | undefined) ?? 1;
    this.batchSize = config["train-batch-size"] as number;
    this.microBatch = this.batchSize / this.accum;
    this.imageSize = config["image-size"] as number;
    this.name = config.name as string;
    this.mixing = (config.mixup as number) > 0 || (config.cutmix as number) > 0;
    this.schedule = warmupCosine({
      initValue: 1e-6,
      peakValue: config["learning-rate"] as number,
      warmupSteps: config["warmup-steps"] as number,
      decaySteps: this.totalSteps,
      endValue: 1e-5,
    });
  }

  path(kind: string): string {
    return `${this.outDir}/${this.name}-${kind}.msgpack`;
  }

  async run(t0: number): Promise<TrainResult> {
    const { config, log } = this;
    if (!config["train-dataset-shards"]) {
      throw new TrainingError('"train-dataset-shards" is not set: give the shards to train on');
    }
    if (!isGcsUrl(this.outDir)) await Deno.mkdir(this.outDir, { recursive: true });
    await Deno.writeTextFile(`${log.dir}/config.json`, configToJson(config));

    // State: resume > pretrained > fresh init.
    let start = 0;
    let params: Tree;
    let opt: Tree;
    const resumed = await this.tryResume();
    if (resumed) {
      ({ params, opt, step: start } = resumed);
      log.line(`resumed from ${this.path("state")} at step ${start}`);
    } else {
      params = initViT(this.step.vit, config["init-seed"] as number) as Tree;
      if (config["pretrained-ckpt"]) {
        params = await loadPretrainedFile(config["pretrained-ckpt"] as string, params, {
          labelMappingUrl: config["label-mapping"] as string | undefined,
        });
        log.line(`loaded pretrained parameters from ${config["pretrained-ckpt"]}`);
      }
      opt = initOptState(params) as Tree;
    }
    const nParams = leavesWithPaths<HostTensor>(params).reduce((s, [, t]) => s + t.data.length, 0);
    log.line(
      `model: ViT ${this.step.vit.layers} layers, dim ${this.step.vit.dim}, ${this.step.vit.heads} heads, ` +
        `${
          (nParams / 1e6).toFixed(2)
        }M params; ${this.totalSteps} steps of batch ${this.batchSize}` +
        (this.accum > 1 ? ` (${this.accum} x ${this.microBatch})` : ""),
    );

    const programs = await this.compile(params, opt);
    let devParams = await this.upload(params);
    let devOpt = await this.upload(opt);

    const loader = this.trainLoader();
    const it = loader[Symbol.asyncIterator]();
    // Data position: the loader is deterministic, so resuming skips the batches already used.
    for (let i = 0; i < start * this.accum; i++) await nextBatch(it);

    const stopAt = Math.min(this.totalSteps, this.opts.stopAtStep ?? Infinity);
    let step = start;
    let interrupted = false;
    let windowStart = performance.now(), windowImages = 0;
    const logInterval = config["log-interval"] as number;
    const evalInterval = config["eval-interval"] as number;
    const sums: Record<string, number> = {};
    let sumCount = 0;
    try {
      while (step < stopAt) {
        if (this.opts.signal?.aborted) {
          interrupted = true;
          break;
        }
        const lr = this.schedule(step);
        const out = await this.trainStep(programs, devParams, devOpt, it, step, lr);
        this.freeTree(devParams, out.params);
        this.freeTree(devOpt, out.opt);
        devParams = out.params;
        devOpt = out.opt;
        step++;
        windowImages += this.batchSize;
        const loss = out.metrics.loss;
        if (!Number.isFinite(loss)) {
          throw new TrainingError(
            `loss is ${loss} at step ${step}: stopping. The last good checkpoint (${
              this.path("state")
            }, ` +
              `if one was written) is intact; lower the learning rate or enable --clip-grad.`,
          );
        }
        for (const [k, v] of Object.entries(out.metrics)) sums[k] = (sums[k] ?? 0) + v;
        sumCount++;
        const now = performance.now();
        const imgPerS = windowImages / ((now - windowStart) / 1000);
        const eta = (stopAt - step) * this.batchSize / imgPerS;
        log.progress(
          `step ${step}/${this.totalSteps} | loss ${loss.toFixed(4)} | acc1 ${
            out.metrics.acc1.toFixed(3)
          } | ` +
            `lr ${lr.toExponential(2)} | ${imgPerS.toFixed(0)} img/s | ETA ${formatDuration(eta)}`,
        );
        if (step % logInterval === 0 || step === stopAt) {
          const stats = loader.stats();
          const event: Record<string, number> = { "train/lr": lr, "train/img_per_s": imgPerS };
          for (const [k, v] of Object.entries(sums)) event[`train/${k}`] = v / sumCount;
          event["data/skipped"] = Object.values(stats.skipped ?? {}).reduce(
            (a: number, b) => a + (b as number),
            0,
          );
          await log.record({ step, time: Date.now() / 1000, ...event });
          log.line(
            `step ${step}: loss ${event["train/loss"].toFixed(4)}, acc1 ${
              event["train/acc1"].toFixed(4)
            }, ` +
              `lr ${lr.toExponential(3)}, ${imgPerS.toFixed(1)} img/s, data skips ${
                event["data/skipped"]
              }`,
          );
          for (const k of Object.keys(sums)) delete sums[k];
          sumCount = 0;
          windowStart = performance.now();
          windowImages = 0;
        }
        if (step % evalInterval === 0 || step === this.totalSteps) {
          await this.evaluate(programs, devParams, step);
          await this.save(devParams, devOpt, step);
          windowStart = performance.now();
          windowImages = 0;
        }
      }
      if (step < this.totalSteps && step % evalInterval !== 0) {
        // Interrupted or stopped early: keep everything needed to resume.
        await this.save(devParams, devOpt, step, false);
        log.line(
          `${interrupted ? "interrupted" : "stopped"} at step ${step}; state saved to ${
            this.path("state")
          }; ` +
            "run the same command again to resume",
        );
      }
    } finally {
      await loader.close();
      programs.dispose();
    }
    return {
      step,
      bestAcc1: this.bestAcc1,
      lastEval: this.lastEval,
      interrupted,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  async tryResume(): Promise<{ params: Tree; opt: Tree; step: number } | undefined> {
    let state;
    try {
      state = await loadTrainingState(this.path("state"));
    } catch (e) {
      const msg = (e as Error).message;
      if (/No such file|not found|NotFound|does not exist|404/i.test(msg)) return undefined;
      throw new TrainingError(`cannot resume: ${msg}`);
    }
    for (const k of MODEL_KEYS) {
      if (JSON.stringify(state.config[k]) !== JSON.stringify(this.config[k])) {
        throw new TrainingError(
          `cannot resume from ${this.path("state")}: it was trained with ${k} = ${
            JSON.stringify(state.config[k])
          }, the config says ${JSON.stringify(this.config[k])}. Use another output-dir or name.`,
        );
      }
    }
    return { params: state.params, opt: state.optState, step: state.step };
  }

  async compile(params: Tree, opt: Tree) {
    const { backend, step: cfg } = this;
    const b = this.microBatch, s = this.imageSize;
    const batchSpec = {
      images: { shape: [b, 3, s, s], dtype: "u8" as const },
      labels: { shape: [b], dtype: "i32" as const },
    };
    const mixSpec = this.mixing ? mixSpecs(b) : null;
    const scalars = stepScalars(cfg.optimizer, 0, 0);
    const key = { shape: [2], dtype: "u32" as const };
    const evaluator = await Evaluator.create(
      backend,
      cfg,
      params,
      this.config["valid-batch-size"] as number,
    );
    if (this.accum === 1) {
      const stepFn = buildTrainStep(cfg);
      // Params and optimizer state are donated: backends that can reuse their memory do.
      const train = await Compiled.createWith(
        backend,
        { donate: this.donation(params, opt) },
        (p: unknown, o: never, bt: never, m: MixInputs<Tensor>, sc: never, k: Tensor) =>
          stepFn(p, o, bt, m, sc, k),
        params,
        opt,
        batchSpec,
        mixSpec,
        scalars,
        key,
      );
      return { train, evaluator, dispose: () => [train, evaluator].forEach((c) => c.dispose()) };
    }
    // Gradient accumulation: micro-step gradients are summed on the device, then applied.
    const gradStep = buildGradStep(cfg);
    const grad = await Compiled.create(
      backend,
      (p: unknown, bt: never, m: MixInputs<Tensor>, k: Tensor) => gradStep(p, bt, m, k),
      params,
      batchSpec,
      mixSpec,
      key,
    );
    const add = await Compiled.create(
      backend,
      (a: unknown, g: unknown) => unflattenLike(a, zipLeaves(a, g).map(([x, y]) => ops.add(x, y))),
      params,
      params,
    );
    const accum = this.accum;
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
      scalars,
    );
    return {
      grad,
      add,
      apply,
      evaluator,
      dispose: () => [grad, add, apply, evaluator].forEach((c) => c.dispose()),
    };
  }

  async trainStep(
    programs: Awaited<ReturnType<Trainer["compile"]>>,
    params: unknown,
    opt: unknown,
    it: AsyncIterator<HostBatch>,
    step: number,
    lr: number,
  ): Promise<{ params: unknown; opt: unknown; metrics: Record<string, number> }> {
    const scalars = stepScalars(this.step.optimizer, step, lr);
    const dropoutKey = Rng.fromSeed(this.config["dropout-seed"] as number).child(step);
    const mixRng = Rng.fromSeed(this.config["mixup-seed"] as number).child(step);
    const micro = async (i: number) => {
      const batch = await nextBatch(it);
      return {
        batch: {
          images: hostTensor(
            [this.microBatch, 3, this.imageSize, this.imageSize],
            "u8",
            batch.images,
          ),
          labels: hostTensor([this.microBatch], "i32", batch.labels),
        },
        mix: this.mixInputs(mixRng.child(i)),
        key: hostTensor([2], "u32", dropoutKey.child(i).key),
      };
    };
    if ("train" in programs && programs.train) {
      const m = await micro(0);
      const out = await programs.train.call([params, opt, m.batch, m.mix, scalars, m.key], {
        donate: this.donation(params, opt),
      });
      return { params: out.params, opt: out.opt, metrics: await this.download(out.metrics) };
    }
    let acc: unknown;
    const sums: Record<string, number> = {};
    for (let i = 0; i < this.accum; i++) {
      const m = await micro(i);
      const out = await programs.grad!.call([params, m.batch, m.mix, m.key]);
      const metrics = await this.download(out.metrics);
      for (const [k, v] of Object.entries(metrics)) sums[k] = (sums[k] ?? 0) + v / this.accum;
      if (acc === undefined) acc = out.grads;
      else {
        const next = await programs.add!.call([acc, out.grads]);
        this.freeTree(acc, next);
        this.freeTree(out.grads, next);
        acc = next;
      }
    }
    const out = await programs.apply!.call([params, opt, acc, scalars]);
    this.freeTree(acc, out);
    return { params: out.params, opt: out.opt, metrics: sums };
  }

  /** Host-drawn Mixup/CutMix inputs of the step, or null when the recipe mixes nothing. */
  mixInputs(rng: Rng): MixInputs<HostTensor> | null {
    if (!this.mixing) return null;
    const p = sampleMixup(rng, {
      mixup: this.config.mixup as number,
      cutmix: this.config.cutmix as number,
      batchSize: this.microBatch,
      imageSize: this.imageSize,
    });
    return {
      perm: hostTensor([this.microBatch], "i32", p.perm),
      imageLam: hostTensor([], "f32", [p.kind === "mixup" ? p.lam : 1]),
      labelLam: hostTensor([], "f32", [p.lam]),
      box: hostTensor([4], "i32", p.box ?? [0, 0, 0, 0]),
    };
  }

  async evaluate(programs: { evaluator: Evaluator }, params: unknown, step: number): Promise<void> {
    if (!this.config["valid-dataset-shards"]) return;
    const r = await programs.evaluator.run(this.config, params, (l) => this.log.line(l));
    const isBest = r.acc1 > this.bestAcc1 || this.lastEval === undefined && r.acc1 >= this.bestAcc1;
    if (isBest) this.bestAcc1 = r.acc1;
    this.lastEval = {
      "val/loss": r.loss,
      "val/acc1": r.acc1,
      "val/acc5": r.acc5,
      "val/best_acc1": this.bestAcc1,
      "val/samples": r.samples,
    };
    await this.log.record({ step, time: Date.now() / 1000, ...this.lastEval });
    await this.log.plot();
    this.log.line(
      `eval at step ${step}: loss ${r.loss.toFixed(4)}, acc1 ${(r.acc1 * 100).toFixed(2)}%, ` +
        `acc5 ${(r.acc5 * 100).toFixed(2)}% (best ${(this.bestAcc1 * 100).toFixed(2)}%) ` +
        `on ${r.samples} images in ${r.seconds.toFixed(1)} s`,
    );
    if (isBest) this.pendingBest = true;
  }

  /** Writes {name}-last (and -best after a new best) params and the training state. */
  async save(params: unknown, opt: unknown, step: number, withParams = true): Promise<void> {
    const hostParams = await this.downloadTree(params) as Tree;
    const hostOpt = await this.downloadTree(opt) as Tree;
    // Never overwrite a good checkpoint with diverged parameters.
    for (const [path, t] of leavesWithPaths<HostTensor>(hostParams)) {
      if (!t.data.every(Number.isFinite)) {
        throw new TrainingError(
          `parameter ${path} is not finite after step ${step}: stopping without saving. The last good ` +
            `checkpoint (${
              this.path("state")
            }, if one was written) is intact; lower the learning rate ` +
            "or enable --clip-grad.",
        );
      }
    }
    if (withParams) {
      await writeOutput(this.path("last"), encodeFlaxMsgpack(hostParams));
      if (this.pendingBest) await writeOutput(this.path("best"), encodeFlaxMsgpack(hostParams));
      this.pendingBest = false;
    }
    await saveTrainingState(this.path("state"), {
      params: hostParams,
      optState: hostOpt,
      step,
      rng: {
        dropout_seed: this.config["dropout-seed"] as number,
        mixup_seed: this.config["mixup-seed"] as number,
        shuffle_seed: this.config["shuffle-seed"] as number,
      },
      data: { batches_consumed: step * this.accum, best_acc1: this.bestAcc1 },
      config: JSON.parse(configToJson(this.config)),
    });
  }

  trainLoader(): DataLoader {
    const c = this.config;
    return createTrainLoader({
      shards: c["train-dataset-shards"] as string,
      batchSize: this.microBatch,
      workers: c["train-loader-workers"] as number,
      shuffleSeed: c["shuffle-seed"] as number,
      augmentRepeats: c["augment-repeats"] as number,
      ...dataOptionsOf(c),
      transform: {
        kind: "train",
        options: {
          imageSize: this.imageSize,
          randomCrop: c["random-crop"] as "rrc",
          colorJitter: c["color-jitter"] as number,
          autoAugment: c["auto-augment"] as string,
          randomErasing: c["random-erasing"] as number,
          hflip: c.hflip as boolean,
        },
      },
      log: (l) => this.log.line(l),
    });
  }

  /** Donation flags over the flattened step inputs: params and optimizer state, not the rest. */
  donation(params: unknown, opt: unknown): boolean[] {
    const n = flatten(params).leaves.length + flatten(opt).leaves.length;
    // then images, labels; perm, imageLam, labelLam, box; lr, bc1, bc2; key
    return Array.from({ length: n + 2 + (this.mixing ? 4 : 0) + 3 + 1 }, (_, i) => i < n);
  }

  async upload(tree: unknown): Promise<unknown> {
    const { leaves, def } = flatten<HostTensor>(tree);
    return unflatten(def, await Promise.all(leaves.map((l) => this.backend.fromHost(l))));
  }

  async download(tree: unknown): Promise<Record<string, number>> {
    // One round of readbacks for all metrics (a GPU round trip each when read one by one).
    const leaves = leavesWithPaths<DeviceArray>(tree);
    const host = await Promise.all(leaves.map(([, v]) => this.backend.toHost(v)));
    for (const [, v] of leaves) this.backend.free(v);
    return Object.fromEntries(leaves.map(([k], i) => [k, host[i].data[0]]));
  }

  async downloadTree(tree: unknown): Promise<unknown> {
    const { leaves, def } = flatten<DeviceArray>(tree);
    return unflatten(def, await Promise.all(leaves.map((l) => this.backend.toHost(l))));
  }

  /** Frees the leaves of `old` that `kept` does not reuse. */
  freeTree(old: unknown, kept: unknown): void {
    const keep = new Set(flatten(kept).leaves);
    for (const l of flatten<DeviceArray>(old).leaves) if (!keep.has(l)) this.backend.free(l);
  }
}

/** The loader's next batch; the train stream is endless, so running dry is an error. */
async function nextBatch(it: AsyncIterator<HostBatch>): Promise<HostBatch> {
  const r = await it.next();
  if (r.done) {
    throw new TrainingError("the training data ran out (the train loader should cycle forever)");
  }
  return r.value;
}

function mixSpecs(b: number) {
  return {
    perm: { shape: [b], dtype: "i32" as const },
    imageLam: { shape: [], dtype: "f32" as const },
    labelLam: { shape: [], dtype: "f32" as const },
    box: { shape: [4], dtype: "i32" as const },
  };
}

function zipLeaves(a: unknown, b: unknown): [Tensor, Tensor][] {
  const x = flatten<Tensor>(a).leaves, y = flatten<Tensor>(b).leaves;
  return x.map((t, i) => [t, y[i]]);
}

function unflattenLike(tree: unknown, leaves: Tensor[]): unknown {
  return unflatten(flatten(tree).def, leaves);
}
