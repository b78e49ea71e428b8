/**
 * The training loop of `deno task train`: builds the model and the compiled step, streams
 * batches, logs, evaluates, checkpoints and resumes. The parts live beside it: the checks before
 * anything is written (preflight.ts), the step programs (programs.ts), what is kept between
 * processes (run_state.ts), the log windows (metric_window.ts) and interruption (interrupt.ts).
 *
 * Files in `output-dir` (local or gs://):
 * - `{name}-last.msgpack`, `{name}-best.msgpack`: parameters only, Flax msgpack, as the original
 *   writes them (its tools and `deno task convert` read them);
 * - `{name}-state.msgpack`: the full training state for resume (params, optimizer, step, seeds,
 *   data position, best accuracy, log window, config), written atomically at every evaluation,
 *   every `save-interval` steps, every `save-minutes`, and when the run stops;
 * - `metrics.jsonl`, `metrics.html`, `config.json` (local output dirs; for gs:// they go to
 *   `runs/{name}` locally).
 *
 * Data parallel (`--devices`, and `--num-processes` hosts, see distributed.ts): the step runs as
 * one replica per device of every process; only process 0 writes files, and all processes check
 * at the start that they resume from the same step.
 *
 * With a W&B API key (`WANDB_API_KEY` or `~/.netrc`) the run is also logged to W&B as the original
 * does (wandb.ts); its W&B run id is kept in the training state, so a resumed run continues it.
 */
import type { Backend } from "../backend/backend.ts";
import { createBackend } from "../backend/select.ts";
import { pjrtKeyValueStore } from "../backend/pjrt/kv_bridge.ts";
import { removeStaleTemps } from "../checkpoint/atomic.ts";
import { loadPretrainedFile } from "../checkpoint/finetune.ts";
import { isGsUrl } from "../gcs/url.ts";
import type { Tree } from "../checkpoint/tree.ts";
import { type Config, configToJson } from "../config/mod.ts";
import type { Batch as HostBatch } from "../data/batch.ts";
import { createTrainLoader, type DataLoader, type TrainPosition } from "../data/loader.ts";
import type { HostTensor } from "../ir/host_tensor.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import { initViT } from "../model/init.ts";
import { initOptState, stepScalars } from "../optim/optimizer.ts";
import { warmupCosine } from "../optim/schedule.ts";
import { DeviceTrees } from "./device_trees.ts";
import { Evaluator, formatEvalProgress } from "./evaluate.ts";
import { Interrupted, unlessAborted } from "./interrupt.ts";
import { formatDuration, RunLog, truncateMetrics } from "./logging.ts";
import { MetricWindow } from "./metric_window.ts";
import { checkRun } from "./preflight.ts";
import {
  compileTrainPrograms,
  microInputs,
  type StepShape,
  type TrainPrograms,
} from "./programs.ts";
import { dataOptionsOf, loaderWorkers, stepConfigOf } from "./run_config.ts";
import { type Resumed, RunState, TrainingError } from "./run_state.ts";
import {
  agreeOnStep,
  cpuProcessSum,
  KvStore,
  PositionExchange,
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
  /**
   * Interrupts the run (SIGINT/SIGTERM): a wait for data or for an evaluation ends at once, a
   * running step finishes, and the state of the last completed step is saved.
   */
  signal?: AbortSignal;
  /** Use this backend instead of creating one from the config. */
  backend?: Backend;
  /** Stop after this step even if training-steps is larger (tests: interrupt at a step). */
  stopAtStep?: number;
}

/** Data failed during a step: the parameters of the last completed step are intact. */
class DataFailure extends Error {}

export async function train(config: Config, opts: TrainOptions = {}): Promise<TrainResult> {
  const t0 = performance.now();
  const name = config.name as string;
  const topology = processTopology(config);
  // Only process 0 writes checkpoints, metrics and logs.
  const writer = writesOutputs(topology);
  // Everything is checked and read before the first file is written.
  const { outDir, logDir } = await checkRun(config);
  const log = new RunLog(writer ? logDir : null, name);
  const accum = (config["grad-accum"] as number | undefined) ?? 1;
  const state = new RunState(config, outDir, name, accum, (l) => log.line(l), {
    index: topology.processIndex,
    count: topology.processCount,
  });
  const resumed = await state.resume();
  const initial = resumed ? undefined : await initialState(config, log);
  const kv = topology.processCount > 1 ? await KvStore.connect(topology) : null;
  try {
    if (kv) await agreeOnStep(kv, resumed?.step ?? 0);
    if (writer) await prepareOutputs(config, outDir, logDir, resumed, log);
    await log.init();
    const positions = kv ? new PositionExchange<TrainPosition>(kv, (l) => log.line(l)) : null;
    try {
      return await trainWith(
        config,
        opts,
        topology,
        kv,
        log,
        state,
        resumed ?? initial!,
        t0,
        positions,
      );
    } finally {
      await positions?.flush();
    }
  } finally {
    await kv?.[Symbol.asyncDispose]();
  }
}

/** Clears what a killed run left and writes config.json (process 0). */
async function prepareOutputs(
  config: Config,
  outDir: string,
  logDir: string,
  resumed: Resumed | undefined,
  log: RunLog,
): Promise<void> {
  const name = config.name as string;
  if (!isGsUrl(outDir)) {
    await Deno.mkdir(outDir, { recursive: true });
    for (const f of await removeStaleTemps(outDir, (t) => t.startsWith(`${name}-`))) {
      log.line(`removed ${outDir}/${f}, left by a killed write`);
    }
  }
  await Deno.mkdir(logDir, { recursive: true });
  await removeStaleTemps(logDir, (t) => t.startsWith("metrics."));
  const dropped = await truncateMetrics(logDir, resumed?.step ?? 0);
  if (dropped) {
    log.line(`dropped ${dropped} records after step ${resumed?.step ?? 0} from metrics.jsonl`);
  }
  await Deno.writeTextFile(`${logDir}/config.json`, configToJson(config));
}

/** Creates the backend (when not given), checks its replicas and runs the Trainer. */
async function trainWith(
  config: Config,
  opts: TrainOptions,
  topology: Topology,
  kv: KvStore | null,
  log: RunLog,
  state: RunState,
  from: Resumed,
  t0: number,
  positions: PositionExchange<TrainPosition> | null,
): Promise<TrainResult> {
  const ownBackend = !opts.backend;
  // CPU processes sum their replicas through process 0 (cpu/cross_process.ts).
  const processSum = kv && ownBackend && config.backend === "cpu" ? await cpuProcessSum(kv) : null;
  let backend: Backend;
  try {
    backend = opts.backend ??
      await createBackend(config.backend as never, {
        pjrtPlugin: config["pjrt-plugin"] as string | undefined,
        precision: config.precision as never,
        devices: config.devices,
        // Multi-host PJRT plugins (CUDA) find their peers through process 0's store.
        keyValueStore: kv ? pjrtKeyValueStore(kv) : undefined,
        processes: processSum ?? undefined,
        log: (l) => log.line(l),
      });
  } catch (e) {
    processSum?.close();
    throw e;
  }
  try {
    const P = topology.processCount;
    if (backend.replicas !== backend.devices * P) {
      throw new TrainingError(
        `the ${backend.name} backend runs ${backend.replicas} replica(s) with ${backend.devices} ` +
          `device(s) here, not ${P} processes x ${backend.devices}: multi-host training needs ` +
          "--backend pjrt or --backend cpu",
      );
    }
    log.line(
      `backend: ${backend.name} (${backend.description}); ${P} process${P > 1 ? "es" : ""} x ` +
        `${backend.devices} device${backend.devices > 1 ? "s" : ""}` +
        (P > 1 ? `, this is process ${topology.processIndex}` : ""),
    );
    return await new Trainer(config, backend, log, state, opts, topology, positions).run(t0, from);
  } finally {
    if (ownBackend) backend.dispose();
    processSum?.close();
  }
}

/** Fresh parameters (or the pretrained ones) and a fresh optimizer state. */
async function initialState(config: Config, log: RunLog): Promise<Resumed> {
  let params = initViT(stepConfigOf(config).vit, config["init-seed"] as number) as Tree;
  if (config["pretrained-ckpt"]) {
    params = await loadPretrainedFile(config["pretrained-ckpt"] as string, params, {
      labelMappingUrl: config["label-mapping"] as string | undefined,
    });
    log.line(`loaded pretrained parameters from ${config["pretrained-ckpt"]}`);
  }
  return { params, opt: initOptState(params) as Tree, step: 0, evalPending: false };
}

class Trainer {
  readonly step: TrainStepConfig;
  readonly shape: StepShape;
  readonly totalSteps: number;
  readonly batchSize: number;
  readonly schedule: (step: number) => number;
  readonly trees: DeviceTrees;
  readonly signal: AbortSignal | undefined;

  constructor(
    readonly config: Config,
    readonly backend: Backend,
    readonly log: RunLog,
    readonly state: RunState,
    readonly opts: TrainOptions,
    readonly topology: Topology = {
      processIndex: 0,
      processCount: 1,
      coordinator: null,
      source: "single",
    },
    /** Multi-host: every process's data position, for process 0's saves. */
    readonly positions: PositionExchange<TrainPosition> | null = null,
  ) {
    const accum = (config["grad-accum"] as number | undefined) ?? 1;
    this.batchSize = config["train-batch-size"] as number;
    // Before any work: the global batch splits over processes x devices x grad-accum.
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
    this.trees = new DeviceTrees(backend);
    this.signal = opts.signal;
  }

  get name(): string {
    return this.config.name as string;
  }

  async run(t0: number, from: Resumed): Promise<TrainResult> {
    const { log, state } = this;
    if (from.step > 0) log.line(`resumed from ${state.path("state")} at step ${from.step}`);
    if (log.dir) {
      log.line(
        `writing to ${state.outDir}: checkpoints ${this.name}-{last,best,state}.msgpack` +
          (log.dir === state.outDir ? "" : `; metrics to ${log.dir}`) +
          `, metrics.jsonl, metrics.html (live: deno task dashboard ${parentDir(log.dir)})`,
      );
    } else log.line(`process ${this.topology.processIndex} writes no files (process 0 does)`);
    const wandb = log.dir ? this.startWandb() : undefined;
    let exitcode = 1;
    try {
      const r = await this.trainFrom(from, t0, wandb);
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

  async trainFrom(from: Resumed, t0: number, wandb: WandbRun | undefined): Promise<TrainResult> {
    const { config, log, state, shape } = this;
    const start = from.step;
    const nParams = leavesWithPaths<HostTensor>(from.params)
      .reduce((s, [, t]) => s + t.data.length, 0);
    log.line(
      `model: ViT ${this.step.vit.layers} layers, dim ${this.step.vit.dim}, ${this.step.vit.heads} heads, ` +
        `${
          (nParams / 1e6).toFixed(2)
        }M params; ${this.totalSteps} steps of batch ${this.batchSize}` +
        (shape.accum > 1 ? ` (${shape.accum} x ${shape.microBatch})` : ""),
    );

    const programs = await compileTrainPrograms(
      this.backend,
      this.step,
      shape,
      from.params,
      from.opt,
    );
    const evaluator = config["valid-dataset-shards"]
      ? await Evaluator.create(
        this.backend,
        this.step,
        from.params,
        (config["valid-batch-size"] as number) / this.topology.processCount,
      )
      : undefined;
    if (evaluator) {
      loaderWorkers(config, "valid-loader-workers", (l) => log.line(l));
      // A resumed run knows its validation set's size from its last eval: ETA from the first one.
      const last = log.events.findLast((e) => typeof e["val/samples"] === "number");
      evaluator.expectedSamples = last?.["val/samples"] as number | undefined;
    }
    let devParams = await this.trees.upload(from.params);
    let devOpt = await this.trees.upload(from.opt);

    const loader = this.trainLoader(from.position);
    const it = loader[Symbol.asyncIterator]();
    const window = from.window ? MetricWindow.restore(from.window) : new MetricWindow();
    let step = start;
    let interrupted = false;
    let savedStep = -1;
    // The data position after the last completed step (a cut step may have taken batches).
    let position = loader.position();
    const save = async (withParams: boolean, evalPending = false) => {
      await this.save(devParams, devOpt, {
        step,
        positions: [position],
        window: window.state(),
        evalPending,
      }, withParams);
      savedStep = step;
      window.restartClock();
    };
    /** Evaluates (when there are validation shards) and saves with parameters. */
    const evaluateAndSave = async () => {
      if (evaluator) {
        try {
          // Not inside wandb?.log(...): its arguments are skipped when W&B is off.
          const event = await this.evaluate(evaluator, devParams, step);
          wandb?.log(event, step);
        } catch (e) {
          if (!(e instanceof Interrupted)) throw e;
          await save(false, true);
          throw e;
        }
      }
      await save(true);
    };

    const stopAt = Math.min(this.totalSteps, this.opts.stopAtStep ?? Infinity);
    const logInterval = config["log-interval"] as number;
    const evalInterval = config["eval-interval"] as number;
    /** The last queued step, whose metrics are not read yet. */
    let pending:
      | { step: number; lr: number; metrics: Promise<Record<string, number>> } & {
        dataTime: number;
        computeTime: number;
      }
      | undefined;
    /** Reads the pending step's metrics: stops on a non-finite loss, adds them to the window, logs. */
    const settle = async () => {
      if (!pending) return;
      const p = pending;
      pending = undefined;
      const t = performance.now();
      const metrics = await p.metrics;
      const computeTime = p.computeTime + (performance.now() - t) / 1000;
      const loss = metrics.loss;
      if (!Number.isFinite(loss)) {
        throw new TrainingError(
          `loss is ${loss} at step ${p.step}: stopping. The last good checkpoint (${
            state.path("state")
          }, ` +
            `if one was written) is intact; lower the learning rate or enable --clip-grad.`,
        );
      }
      window.add({ ...metrics, data_time: p.dataTime, compute_time: computeTime }, this.batchSize);
      const imgPerS = window.imagesPerSecond();
      const eta = (stopAt - p.step) * this.batchSize / imgPerS;
      log.progress(
        `step ${p.step}/${this.totalSteps} | loss ${loss.toFixed(4)} | acc1 ${
          (metrics.acc1 * 100).toFixed(2)
        }% | ` +
          `lr ${p.lr.toExponential(2)} | ${imgPerS.toFixed(0)} img/s | ETA ${formatDuration(eta)}`,
      );
      // Not at a stop before the end: the open window is saved and continues on resume.
      if (p.step % logInterval === 0 || p.step === this.totalSteps) {
        const event = await this.logWindow(window, loader, p.step, p.lr, imgPerS, eta);
        wandb?.log(event, p.step);
        window.reset();
      }
    };
    try {
      if (!from.position && start > 0) {
        // A state saved before (this process's) data positions were: replay the batches.
        log.line(
          `the state has no data position for process ${this.topology.processIndex}: ` +
            `replaying ${start * shape.accum} batches`,
        );
        for (let i = 0; i < start * shape.accum; i++) await this.nextBatch(it);
        position = loader.position();
      }
      this.positions?.publish(step, position);
      if (from.evalPending) await evaluateAndSave();
      while (step < stopAt) {
        if (this.signal?.aborted) throw new Interrupted();
        const lr = this.schedule(step);
        let out;
        try {
          out = await this.trainStep(programs, devParams, devOpt, it, step, lr);
        } catch (e) {
          if (e instanceof DataFailure) {
            // No program ran on this step's data: the last completed step is intact, keep it.
            await settle();
            const keep = step > start && savedStep !== step;
            if (keep) await save(false);
            throw new TrainingError(
              `the training data failed at step ${step + 1}: ${(e.cause as Error).message}` +
                (keep ? `; the state of step ${step} was saved to ${state.path("state")}` : ""),
            );
          }
          if (e instanceof Interrupted) throw e;
          throw new TrainingError(
            `step ${step + 1} failed: ${(e as Error).message}. The last saved state (${
              state.path("state")
            }, step ${savedStep >= 0 ? savedStep : "of an earlier run, if any"}) is intact; ` +
              "run the same command again to resume from it",
          );
        }
        devParams = out.params;
        devOpt = out.opt;
        step++;
        position = loader.position();
        this.positions?.publish(step, position);
        // The previous step's metrics are read now, with this step already queued.
        await settle();
        out.metrics.catch(() => {}); // awaited by settle(); an early exit must not leave it unhandled
        pending = { ...out, step, lr };
        // Log, eval and save points read their step's metrics before going on, so the window,
        // the loader's statistics and the saved state all belong to that step.
        const logDue = step % logInterval === 0 || step === this.totalSteps;
        const evalDue = step % evalInterval === 0 || step === this.totalSteps;
        const saveDue = !evalDue && this.saveDue(step);
        if (logDue || evalDue || saveDue || step === stopAt) await settle();
        if (evalDue) await evaluateAndSave();
        else if (saveDue) await save(false);
      }
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      interrupted = true;
      await settle(); // the last step's metrics belong in the window saved below
    } finally {
      // A stalled source must not hold the exit up: closing is bounded.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([loader.close(), new Promise((r) => timer = setTimeout(r, 2000))]);
      clearTimeout(timer); // a prompt close must not keep the process alive for 2 s
      programs.dispose();
      evaluator?.dispose();
    }
    if (step < this.totalSteps && step > start && savedStep !== step) {
      // Interrupted or stopped early: keep everything needed to resume.
      await save(false);
    }
    if (step < this.totalSteps) {
      log.line(
        `${interrupted ? "interrupted" : "stopped"} at step ${step}; state ${
          step > start || savedStep === step ? "saved to" : "(if any) unchanged in"
        } ${state.path("state")}; run the same command again to resume`,
      );
    } else if (!interrupted) {
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

  /** A periodic save of the state is due (`save-interval` steps, `save-minutes`). */
  saveDue(step: number): boolean {
    const every = this.config["save-interval"] as number;
    const minutes = this.config["save-minutes"] as number;
    return every > 0 && step % every === 0 ||
      minutes > 0 && performance.now() - this.state.savedAt >= minutes * 60_000;
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
        const inputs = microInputs(this.shape, seeds, mix, await this.nextBatch(it), step, i);
        data += performance.now() - d;
        return inputs;
      },
      stepScalars(this.step.optimizer, step, lr),
    );
    const total = performance.now() - t;
    return { ...out, dataTime: data / 1000, computeTime: (total - data) / 1000 };
  }

  /** The loader's next batch, unless interrupted; a loader error is a DataFailure. */
  async nextBatch(it: AsyncIterator<HostBatch>): Promise<HostBatch> {
    let r;
    try {
      r = await unlessAborted(it.next(), this.signal);
    } catch (e) {
      if (e instanceof Interrupted) throw e;
      throw new DataFailure("the loader failed", { cause: e });
    }
    if (r.done) {
      throw new DataFailure("the loader ended", {
        cause: new Error("the training data ran out (the train loader should cycle forever)"),
      });
    }
    return r.value;
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
    const r = await evaluator.run(
      this.config,
      params,
      (l) => this.log.line(l),
      (p) => this.log.progress(formatEvalProgress(p), 30_000),
      this.signal,
      { index: this.topology.processIndex, count: this.topology.processCount },
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
  async save(
    params: unknown,
    opt: unknown,
    at: Parameters<RunState["save"]>[2],
    withParams: boolean,
  ): Promise<void> {
    if (!writesOutputs(this.topology)) return;
    // `at.positions` holds this process's alone: process 0 saves every process's.
    if (this.positions) {
      at = { ...at, positions: await this.positions.gather(at.step, at.positions[0]) };
    }
    const hostParams = await this.trees.download(params) as Tree;
    const hostOpt = await this.trees.download(opt) as Tree;
    await this.state.save(hostParams, hostOpt, at, withParams);
  }

  trainLoader(start: TrainPosition | undefined): DataLoader {
    const c = this.config;
    const workers = loaderWorkers(c, "train-loader-workers", (l) => this.log.line(l));
    if (start && start.workers !== Math.max(1, workers)) {
      throw new TrainingError(
        `cannot resume from ${this.state.path("state")}: process ${this.topology.processIndex}'s ` +
          `data position (data/positions) was saved with ${start.workers} loader worker(s), ` +
          `train-loader-workers is ${workers} here (capped at this machine's cores); the batch ` +
          "order depends on the worker count. Run it where that many workers fit.",
      );
    }
    return createTrainLoader({
      shards: c["train-dataset-shards"] as string,
      // This host's micro-batch: one slice per local device.
      batchSize: this.shape.microBatch * this.backend.devices,
      workers,
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
          randomErasingFill: c["random-erasing-fill"] as "original" | "normal",
          hflip: c.hflip as boolean,
        },
      },
      start,
      log: (l) => this.log.line(l),
    });
  }
}

function parentDir(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i > 0 ? path.slice(0, i) : ".";
}
