/**
 * The training loop of `deno task train`: builds the model and the compiled step, streams
 * batches, logs, evaluates, checkpoints and resumes. The parts live beside it: the step programs
 * (programs.ts), what is kept between processes (run_state.ts) and the log windows
 * (metric_window.ts).
 *
 * Files in `output-dir` (local or gs://):
 * - `{name}-last.msgpack`, `{name}-best.msgpack`: parameters only, Flax msgpack, as the original
 *   writes them (its tools and `deno task convert` read them);
 * - `{name}-state.msgpack`: the full training state for resume (params, optimizer, step, seeds,
 *   data position, config), written atomically;
 * - `metrics.jsonl`, `metrics.html`, `config.json` (local output dirs; for gs:// they go to
 *   `runs/{name}` locally).
 *
 * With a W&B API key (`WANDB_API_KEY` or `~/.netrc`) the run is also logged to W&B as the original
 * does (wandb.ts); its W&B run id is kept in the training state, so a resumed run continues it.
 */
import type { Backend } from "../backend/backend.ts";
import { createBackend } from "../backend/select.ts";
import { loadPretrainedFile } from "../checkpoint/finetune.ts";
import { isGcsUrl } from "../checkpoint/storage.ts";
import type { Tree } from "../checkpoint/tree.ts";
import { type Config, configToJson } from "../config/mod.ts";
import type { Batch as HostBatch } from "../data/batch.ts";
import { createTrainLoader, type DataLoader } from "../data/loader.ts";
import type { HostTensor } from "../ir/host_tensor.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import { initViT } from "../model/init.ts";
import { initOptState, stepScalars } from "../optim/optimizer.ts";
import { warmupCosine } from "../optim/schedule.ts";
import { DeviceTrees } from "./device_trees.ts";
import { Evaluator, formatEvalProgress } from "./evaluate.ts";
import { formatDuration, RunLog } from "./logging.ts";
import { MetricWindow } from "./metric_window.ts";
import {
  compileTrainPrograms,
  microInputs,
  type StepShape,
  type TrainPrograms,
} from "./programs.ts";
import { dataOptionsOf, loaderWorkers } from "./run_config.ts";
import { RunState, TrainingError } from "./run_state.ts";
import {
  agreeOnStep,
  KvStore,
  processTopology,
  type Topology,
  writesOutputs,
} from "./distributed.ts";
import { trainStepSignature } from "./signature.ts";
import type { TrainStepConfig } from "./step.ts";
import { WandbRun, wandbSettingsFromEnv } from "./wandb.ts";

export { TrainingError };

/** The learning rate at step 0 of the warmup (the original's `init_value`). */
export const WARMUP_INIT_LR = 1e-6;
/** The learning rate the cosine decay ends at (the original's `end_value`). */
export const COSINE_END_LR = 1e-5;

export interface TrainResult {
  step: number;
  bestAcc1: number;
  lastEval?: Record<string, number>;
  interrupted: boolean;
  seconds: number;
}

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
  const topology = processTopology(config);
  // Only process 0 writes metrics and logs.
  const log = new RunLog(writesOutputs(topology) ? localDir : null, name);
  await log.init();
  const ownBackend = !opts.backend;
  const backend = opts.backend ??
    await createBackend(config.backend as never, {
      pjrtPlugin: config["pjrt-plugin"] as string | undefined,
      precision: config.precision as never,
      devices: config.devices,
      log: (l) => log.line(l),
    });
  try {
    if (backend.replicas !== backend.devices * topology.processCount) {
      throw new TrainingError(
        `the ${backend.name} backend runs ${backend.replicas} replica(s) with ${backend.devices} ` +
          `device(s) here, not ${topology.processCount} processes x ${backend.devices}: ` +
          "multi-host training needs --backend pjrt",
      );
    }
    log.line(
      `backend: ${backend.name} (${backend.description}); ${topology.processCount} ` +
        `process${topology.processCount > 1 ? "es" : ""} x ${backend.devices} ` +
        `device${backend.devices > 1 ? "s" : ""}` +
        (topology.processCount > 1 ? `, this is process ${topology.processIndex}` : ""),
    );
    const kv = topology.processCount > 1 ? await KvStore.connect(topology) : null;
    try {
      return await new Trainer(config, backend, log, outDir, opts, topology, kv).run(t0);
    } finally {
      await kv?.[Symbol.asyncDispose]();
    }
  } finally {
    if (ownBackend) backend.dispose();
  }
}

class Trainer {
  readonly step: TrainStepConfig;
  readonly shape: StepShape;
  readonly totalSteps: number;
  readonly batchSize: number;
  readonly schedule: (step: number) => number;
  readonly state: RunState;
  readonly trees: DeviceTrees;

  constructor(
    readonly config: Config,
    readonly backend: Backend,
    readonly log: RunLog,
    readonly outDir: string,
    readonly opts: TrainOptions,
    readonly topology: Topology = {
      processIndex: 0,
      processCount: 1,
      coordinator: null,
      source: "single",
    },
    readonly kv: KvStore | null = null,
  ) {
    const accum = (config["grad-accum"] as number | undefined) ?? 1;
    this.batchSize = config["train-batch-size"] as number;
    // Before any work: the global batch must split over processes x devices x grad-accum.
    let sig;
    try {
      sig = trainStepSignature(config, { devices: backend.replicas });
    } catch (e) {
      throw new TrainingError((e as Error).message);
    }
    const valid = config["valid-batch-size"] as number;
    const parts = topology.processCount * backend.devices;
    if (config["valid-dataset-shards"] && valid % parts !== 0) {
      throw new TrainingError(
        `valid-batch-size: ${valid} does not split over ${topology.processCount} process(es) x ` +
          `${backend.devices} device(s); use a multiple of ${parts}`,
      );
    }
    this.step = sig.step;
    this.totalSteps = config["training-steps"] as number;
    this.shape = {
      microBatch: sig.perReplicaBatch,
      accum,
      imageSize: config["image-size"] as number,
      mixing: sig.mixing,
      devices: backend.devices,
      process: topology.processIndex,
    };
    this.schedule = warmupCosine({
      initValue: WARMUP_INIT_LR,
      peakValue: config["learning-rate"] as number,
      warmupSteps: config["warmup-steps"] as number,
      decaySteps: this.totalSteps,
      endValue: COSINE_END_LR,
    });
    this.state = new RunState(config, outDir, config.name as string, accum);
    this.trees = new DeviceTrees(backend);
  }

  get name(): string {
    return this.config.name as string;
  }

  async run(t0: number): Promise<TrainResult> {
    const { config, log, state } = this;
    if (!config["train-dataset-shards"]) {
      throw new TrainingError('"train-dataset-shards" is not set: give the shards to train on');
    }
    const writer = writesOutputs(this.topology);
    if (writer && !isGcsUrl(this.outDir)) await Deno.mkdir(this.outDir, { recursive: true });
    if (log.dir) await Deno.writeTextFile(`${log.dir}/config.json`, configToJson(config));

    // State: resume > pretrained > fresh init.
    let start = 0;
    let params: Tree;
    let opt: Tree;
    const resumed = await state.resume();
    if (this.kv) await agreeOnStep(this.kv, resumed?.step ?? 0);
    if (resumed) {
      ({ params, opt, step: start } = resumed);
      log.line(`resumed from ${state.path("state")} at step ${start}`);
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
    log.line(
      `writing to ${this.outDir}: checkpoints ${this.name}-{last,best,state}.msgpack` +
        (log.dir === this.outDir ? "" : `; metrics to ${log.dir}`) +
        `, metrics.jsonl, metrics.html (live: deno task dashboard ${parentDir(log.dir!)})`,
    );
    const wandb = this.startWandb();
    let exitcode = 1;
    try {
      const r = await this.trainFrom(start, params, opt, t0, wandb);
      exitcode = r.interrupted ? 255 : 0;
      return r;
    } finally {
      await wandb?.finish(exitcode);
    }
  }

  /** A W&B run when an API key is set (or WANDB_MODE=offline), continuing a resumed one. */
  startWandb(): WandbRun | undefined {
    const settings = wandbSettingsFromEnv();
    if (!settings) return undefined;
    const run = new WandbRun(settings, {
      project: (this.config.project as string | null) ?? null,
      name: this.name,
      config: JSON.parse(configToJson(this.config)),
      id: this.state.wandbRunId,
      dir: this.log.dir ?? undefined,
      log: (l) => this.log.line(l),
    });
    this.state.wandbRunId = run.id;
    return run;
  }

  async trainFrom(
    start: number,
    params: Tree,
    opt: Tree,
    t0: number,
    wandb: WandbRun | undefined,
  ): Promise<TrainResult> {
    const { config, log, state, shape } = this;
    const nParams = leavesWithPaths<HostTensor>(params).reduce((s, [, t]) => s + t.data.length, 0);
    log.line(
      `model: ViT ${this.step.vit.layers} layers, dim ${this.step.vit.dim}, ${this.step.vit.heads} heads, ` +
        `${
          (nParams / 1e6).toFixed(2)
        }M params; ${this.totalSteps} steps of batch ${this.batchSize}` +
        (shape.accum > 1 ? ` (${shape.accum} x ${shape.microBatch})` : ""),
    );

    const programs = await compileTrainPrograms(this.backend, this.step, shape, params, opt);
    const evaluator = config["valid-dataset-shards"]
      ? await Evaluator.create(
        this.backend,
        this.step,
        params,
        perHost(config["valid-batch-size"] as number, this.topology.processCount),
      )
      : undefined;
    if (evaluator) {
      loaderWorkers(config, "valid-loader-workers", (l) => log.line(l));
      // A resumed run knows its validation set's size from its last eval: ETA from the first one.
      const last = log.events.findLast((e) => typeof e["val/samples"] === "number");
      evaluator.expectedSamples = last?.["val/samples"] as number | undefined;
    }
    let devParams = await this.trees.upload(params);
    let devOpt = await this.trees.upload(opt);

    const loader = this.trainLoader();
    const it = loader[Symbol.asyncIterator]();
    // Data position: the loader is deterministic, so resuming skips the batches already used.
    for (let i = 0; i < start * shape.accum; i++) await nextBatch(it);

    const stopAt = Math.min(this.totalSteps, this.opts.stopAtStep ?? Infinity);
    let step = start;
    let interrupted = false;
    const window = new MetricWindow();
    const logInterval = config["log-interval"] as number;
    const evalInterval = config["eval-interval"] as number;
    try {
      while (step < stopAt) {
        if (this.opts.signal?.aborted) {
          interrupted = true;
          break;
        }
        const lr = this.schedule(step);
        const out = await this.trainStep(programs, devParams, devOpt, it, step, lr);
        devParams = out.params;
        devOpt = out.opt;
        step++;
        const loss = out.metrics.loss;
        if (!Number.isFinite(loss)) {
          throw new TrainingError(
            `loss is ${loss} at step ${step}: stopping. The last good checkpoint (${
              state.path("state")
            }, ` +
              `if one was written) is intact; lower the learning rate or enable --clip-grad.`,
          );
        }
        window.add(
          { ...out.metrics, data_time: out.dataTime, compute_time: out.computeTime },
          this.batchSize,
        );
        const imgPerS = window.imagesPerSecond();
        const eta = (stopAt - step) * this.batchSize / imgPerS;
        log.progress(
          `step ${step}/${this.totalSteps} | loss ${loss.toFixed(4)} | acc1 ${
            (out.metrics.acc1 * 100).toFixed(2)
          }% | ` +
            `lr ${lr.toExponential(2)} | ${imgPerS.toFixed(0)} img/s | ETA ${formatDuration(eta)}`,
        );
        if (step % logInterval === 0 || step === stopAt) {
          const event = await this.logWindow(window, loader, step, lr, imgPerS, eta);
          wandb?.log(event, step);
          window.reset();
        }
        if (step % evalInterval === 0 || step === this.totalSteps) {
          if (evaluator) {
            // Not inside wandb?.log(...): its arguments are skipped when W&B is off.
            const event = await this.evaluate(evaluator, devParams, step);
            wandb?.log(event, step);
          }
          await this.save(devParams, devOpt, step);
          window.restartClock();
        }
      }
      if (step < this.totalSteps && step % evalInterval !== 0) {
        // Interrupted or stopped early: keep everything needed to resume.
        await this.save(devParams, devOpt, step, false);
        log.line(
          `${interrupted ? "interrupted" : "stopped"} at step ${step}; state saved to ${
            state.path("state")
          }; ` +
            "run the same command again to resume",
        );
      }
    } finally {
      await loader.close();
      programs.dispose();
      evaluator?.dispose();
    }
    if (!interrupted && step === this.totalSteps) {
      log.line(
        `checkpoints: ${state.path("last")}` +
          (evaluator
            ? `, ${state.path("best")} (best val acc1 ${(state.bestAcc1 * 100).toFixed(2)}%)`
            : "") +
          `; training state ${state.path("state")}`,
      );
    }
    return {
      step,
      bestAcc1: state.bestAcc1,
      lastEval: state.lastEval,
      interrupted,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /**
   * One optimizer step. `dataTime` is the time spent waiting for the loader and preparing the host
   * inputs, `computeTime` the rest (timm's "Data" and "Time" split), both in seconds.
   */
  async trainStep(
    programs: TrainPrograms,
    params: unknown,
    opt: unknown,
    it: AsyncIterator<HostBatch>,
    step: number,
    lr: number,
  ) {
    const c = this.config;
    const seeds = { dropout: c["dropout-seed"] as number, mixup: c["mixup-seed"] as number };
    const mix = { mixup: c.mixup as number, cutmix: c.cutmix as number };
    const t = performance.now();
    let data = 0;
    const out = await programs.run(
      params,
      opt,
      async (i) => {
        const d = performance.now();
        const inputs = microInputs(this.shape, seeds, mix, await nextBatch(it), step, i);
        data += performance.now() - d;
        return inputs;
      },
      stepScalars(this.step.optimizer, step, lr),
    );
    const total = performance.now() - t;
    return { ...out, dataTime: data / 1000, computeTime: (total - data) / 1000 };
  }

  async logWindow(
    window: MetricWindow,
    loader: DataLoader,
    step: number,
    lr: number,
    imgPerS: number,
    eta: number,
  ): Promise<Record<string, number>> {
    const stats = loader.stats();
    const event: Record<string, number> = {
      "train/lr": lr,
      "train/img_per_s": imgPerS,
      ...window.means("train/"),
    };
    event["data/skipped"] = Object.values(stats.skipped ?? {}).reduce(
      (a: number, b) => a + (b as number),
      0,
    );
    await this.log.record({ step, time: Date.now() / 1000, ...event });
    this.log.line(
      `step ${step}: loss ${event["train/loss"].toFixed(4)}, acc1 ${
        (event["train/acc1"] * 100).toFixed(2)
      }%, lr ${lr.toExponential(3)}, ${imgPerS.toFixed(1)} img/s, ` +
        `data ${event["train/data_time"].toFixed(3)} s + compute ${
          event["train/compute_time"].toFixed(3)
        } s per step, ETA ${formatDuration(eta)}, data skips ${event["data/skipped"]}`,
    );
    return event;
  }

  async evaluate(
    evaluator: Evaluator,
    params: unknown,
    step: number,
  ): Promise<Record<string, number>> {
    const { processIndex: index, processCount: count } = this.topology;
    const r = await evaluator.run(
      this.config,
      params,
      (l) => this.log.line(l),
      (p) => this.log.progress(formatEvalProgress(p), 30_000),
      { index, count },
    );
    const event = this.state.recordEval(r);
    await this.log.record({ step, time: Date.now() / 1000, ...event });
    await this.log.plot();
    this.log.line(
      `eval at step ${step}: loss ${r.loss.toFixed(4)}, acc1 ${(r.acc1 * 100).toFixed(2)}%, ` +
        `acc5 ${(r.acc5 * 100).toFixed(2)}% (best ${(this.state.bestAcc1 * 100).toFixed(2)}%) ` +
        `on ${r.samples} images in ${r.seconds.toFixed(1)} s`,
    );
    return event;
  }

  /** Downloads the device state and saves it (see RunState.save). */
  async save(params: unknown, opt: unknown, step: number, withParams = true): Promise<void> {
    if (!writesOutputs(this.topology)) return;
    const hostParams = await this.trees.download(params) as Tree;
    const hostOpt = await this.trees.download(opt) as Tree;
    await this.state.save(hostParams, hostOpt, step, withParams);
  }

  trainLoader(): DataLoader {
    const c = this.config;
    return createTrainLoader({
      shards: c["train-dataset-shards"] as string,
      // This host's micro-batch: one slice per local device.
      batchSize: this.shape.microBatch * this.backend.devices,
      workers: loaderWorkers(c, "train-loader-workers", (l) => this.log.line(l)),
      processIndex: this.topology.processIndex,
      processCount: this.topology.processCount,
      shuffleSeed: c["shuffle-seed"] as number,
      augmentRepeats: c["augment-repeats"] as number,
      ...dataOptionsOf(c),
      transform: {
        kind: "train",
        options: {
          imageSize: this.shape.imageSize,
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
}

/** A host's share of `valid-batch-size`. */
function perHost(batch: number, processes: number): number {
  if (batch % processes !== 0) {
    throw new TrainingError(
      `valid-batch-size: ${batch} does not split over ${processes} processes`,
    );
  }
  return batch / processes;
}

/** The loader's next batch; the train stream is endless, so running dry is an error. */
async function nextBatch(it: AsyncIterator<HostBatch>): Promise<HostBatch> {
  const r = await it.next();
  if (r.done) {
    throw new TrainingError("the training data ran out (the train loader should cycle forever)");
  }
  return r.value;
}

function parentDir(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i > 0 ? path.slice(0, i) : ".";
}
