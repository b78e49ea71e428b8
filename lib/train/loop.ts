/**
 * The training loop of `deno task train`. `train` checks and sets up a run (preflight.ts,
 * run_setup.ts, run_state.ts); `Trainer` streams batches (train_data.ts) through the compiled step
 * (programs.ts), reports (step_report.ts, logging.ts, wandb.ts), evaluates (evaluate.ts),
 * checkpoints and resumes. Every setting comes from run_config.ts, the batch plan among them.
 * What lands in `output-dir`, and when, is in README.md; only process 0 writes, and every process
 * of a multi-host job checks at the start that it resumes from the same step.
 */
import type { Backend } from "../backend/backend.ts";
import type { Tree } from "../checkpoint/tree.ts";
import type { Config } from "../config/mod.ts";
import type { TrainPosition } from "../data/loader.ts";
import { checkViTConfig } from "../model/vit.ts";
import { stepScalars } from "../optim/optimizer.ts";
import { DeviceTrees } from "./device_trees.ts";
import {
  agreeOnStep,
  KvStore,
  PositionExchange,
  processTopology,
  writesOutputs,
} from "./distributed.ts";
import { formatEvalProgress } from "./evaluate.ts";
import { Interrupted } from "./interrupt.ts";
import { RunLog } from "./logging.ts";
import { checkRun } from "./preflight.ts";
import type { StepShape } from "./programs.ts";
import { type BatchPlan, batchPlan, mixingOf, scheduleOf, stepConfigOf } from "./run_config.ts";
import {
  createRunBackend,
  initialState,
  type Loop,
  openLoop,
  prepareOutputs,
  type RunContext,
  startWandb,
} from "./run_setup.ts";
import { type Resumed, RunState, TrainingError } from "./run_state.ts";
import type { TrainStepConfig } from "./step.ts";
import * as report from "./step_report.ts";
import { DataFailure } from "./train_data.ts";
import type { WandbRun } from "./wandb.ts";

export { TrainingError };

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

export async function train(config: Config, opts: TrainOptions = {}): Promise<TrainResult> {
  const t0 = performance.now();
  const topology = processTopology(config);
  // Only process 0 writes checkpoints, metrics and logs.
  const writer = writesOutputs(topology);
  // Everything is checked and read before the first file is written.
  const { outDir, logDir } = await checkRun(config);
  const log = new RunLog(writer ? logDir : null, config.name);
  const job = { index: topology.processIndex, count: topology.processCount };
  const state = new RunState(
    config,
    outDir,
    config.name,
    config["grad-accum"],
    (l) => log.line(l),
    job,
  );
  const from = await state.resume() ?? await initialState(config, log);
  const kv = topology.processCount > 1 ? await KvStore.connect(topology) : null;
  try {
    if (kv) await agreeOnStep(kv, from.step);
    if (writer) await prepareOutputs(config, outDir, logDir, from.step, log);
    await log.init();
    const positions = kv ? new PositionExchange<TrainPosition>(kv, (l) => log.line(l)) : null;
    try {
      const { backend, close } = await createRunBackend(config, topology, kv, log, opts.backend);
      try {
        const ctx = { config, backend, log, state, signal: opts.signal, topology, positions };
        return await new Trainer(ctx, opts.stopAtStep).run(t0, from);
      } finally {
        close();
      }
    } finally {
      await positions?.flush();
    }
  } finally {
    await kv?.[Symbol.asyncDispose]();
  }
}

class Trainer {
  readonly plan: BatchPlan;
  readonly step: TrainStepConfig;
  readonly shape: StepShape;
  readonly schedule: (step: number) => number;
  readonly trees: DeviceTrees;

  constructor(readonly ctx: RunContext, readonly stopAtStep?: number) {
    const { config, backend, topology } = ctx;
    // Before any work: the batches split over processes x devices x grad-accum.
    try {
      this.plan = batchPlan(config, { processes: topology.processCount, devices: backend.devices });
      this.step = stepConfigOf(config, backend.replicas);
      checkViTConfig(this.step.vit);
    } catch (e) {
      throw new TrainingError((e as Error).message);
    }
    this.shape = {
      microBatch: this.plan.perReplica,
      accum: this.plan.accum,
      imageSize: config["image-size"],
      mixing: mixingOf(config),
      devices: backend.devices,
      process: topology.processIndex,
    };
    this.schedule = scheduleOf(config);
    this.trees = new DeviceTrees(backend);
  }

  async run(t0: number, from: Resumed): Promise<TrainResult> {
    const { config, log, state, topology } = this.ctx;
    if (from.step > 0) log.line(`resumed from ${state.path("state")} at step ${from.step}`);
    if (log.dir) log.line(report.outputsLine(config.name, state.outDir, log.dir));
    else log.line(`process ${topology.processIndex} writes no files (process 0 does)`);
    const wandb = log.dir ? startWandb(config, state, log) : undefined;
    let exitcode = 1;
    try {
      const r = await this.trainFrom(from, t0, wandb);
      exitcode = r.interrupted ? 255 : 0;
      return r;
    } finally {
      await wandb?.finish(exitcode);
    }
  }

  /** The loop: one optimizer step at a time until the last step, a stop or an interruption. */
  async trainFrom(from: Resumed, t0: number, wandb: WandbRun | undefined): Promise<TrainResult> {
    const { config, log, state, signal, topology } = this.ctx;
    const loop = await openLoop(this.ctx, this, from, wandb);
    const total = config["training-steps"], stopAt = Math.min(total, this.stopAtStep ?? Infinity);
    let interrupted = false;
    try {
      if (!from.position && from.step > 0) {
        // A state saved before (this process's) data positions were: replay the batches.
        const n = from.step * this.plan.accum;
        log.line(
          `the state has no data position for process ${topology.processIndex}: ` +
            `replaying ${n} batches`,
        );
        for (let i = 0; i < n; i++) await loop.data.next();
        loop.position = loop.data.position();
      }
      this.ctx.positions?.publish(loop.step, loop.position);
      if (from.evalPending) await this.evaluateAndSave(loop);
      while (loop.step < stopAt) {
        if (signal?.aborted) throw new Interrupted();
        await this.advance(loop, stopAt);
      }
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      interrupted = true;
    } finally {
      await loop.data.close();
      loop.programs.dispose();
      loop.evaluator?.dispose();
    }
    const { step, start, savedStep } = loop;
    // Interrupted or stopped early: keep everything needed to resume.
    if (step < total && step > start && savedStep !== step) await this.save(loop, false);
    const closing = report.closingLine({
      step,
      total,
      interrupted,
      saved: step > start || loop.savedStep === step,
      paths: { last: state.path("last"), best: state.path("best"), state: state.path("state") },
      bestAcc1: loop.evaluator ? state.bestAcc1 : undefined,
    });
    if (closing) log.line(closing);
    const seconds = (performance.now() - t0) / 1000;
    return { step, bestAcc1: state.bestAcc1, lastEval: state.lastEval, interrupted, seconds };
  }

  /** One optimizer step, then its progress line, and its log line, eval or save when due. */
  async advance(loop: Loop, stopAt: number): Promise<void> {
    const { config, log, state } = this.ctx;
    const lr = this.schedule(loop.step);
    const out = await this.trainStep(loop, lr);
    loop.params = out.params;
    loop.opt = out.opt;
    const step = ++loop.step, loss = out.metrics.loss, window = loop.window;
    loop.position = loop.data.position();
    this.ctx.positions?.publish(step, loop.position);
    if (!Number.isFinite(loss)) {
      throw new TrainingError(
        `loss is ${loss} at step ${step}: stopping. The last good checkpoint ` +
          `(${state.path("state")}, if one was written) is intact; lower the learning rate or ` +
          "enable --clip-grad.",
      );
    }
    const times = { data_time: out.dataTime, compute_time: out.computeTime };
    window.add({ ...out.metrics, ...times }, this.plan.global);
    const imgPerS = window.imagesPerSecond();
    const eta = (stopAt - step) * this.plan.global / imgPerS;
    const total = config["training-steps"];
    log.progress(
      report.progressLine({ step, total, loss, acc1: out.metrics.acc1, lr, imgPerS }, eta),
    );
    // Not at a stop before the end: the open window is saved and continues on resume.
    if (step % config["log-interval"] === 0 || step === total) {
      const event = report.trainEvent(window, loop.data.stats(), lr, imgPerS);
      await log.record({ step, time: Date.now() / 1000, ...event });
      log.line(report.trainLine(step, event, eta));
      loop.wandb?.log(event, step);
      window.reset();
    }
    if (step % config["eval-interval"] === 0 || step === total) await this.evaluateAndSave(loop);
    else if (this.saveDue(step)) await this.save(loop, false);
  }

  /**
   * One optimizer step, with `dataTime` (waiting for and preparing the inputs) and `computeTime`
   * (the rest) in seconds, as timm splits them. A failure says which step failed and what is
   * intact; a data failure first saves the last completed step.
   */
  async trainStep(loop: Loop, lr: number) {
    const { step, savedStep } = loop, t = performance.now();
    try {
      const out = await loop.programs.run(
        loop.params,
        loop.opt,
        (i) => loop.data.microInputs(step, i),
        stepScalars(this.step.optimizer, step, lr),
      );
      const dataTime = loop.data.takeWait();
      return { ...out, dataTime, computeTime: (performance.now() - t) / 1000 - dataTime };
    } catch (e) {
      if (e instanceof Interrupted) throw e;
      const where = this.ctx.state.path("state");
      if (e instanceof DataFailure) {
        // No program ran on this step's data: the last completed step is intact, keep it.
        const keep = step > loop.start && savedStep !== step;
        if (keep) await this.save(loop, false);
        throw new TrainingError(
          `the training data failed at step ${step + 1}: ${(e.cause as Error).message}` +
            (keep ? `; the state of step ${step} was saved to ${where}` : ""),
        );
      }
      throw new TrainingError(
        `step ${step + 1} failed: ${(e as Error).message}. The last saved state (${where}, step ` +
          `${savedStep >= 0 ? savedStep : "of an earlier run, if any"}) is intact; run the same ` +
          "command again to resume from it",
      );
    }
  }

  /** Evaluates (when there are validation shards), then saves with parameters. */
  async evaluateAndSave(loop: Loop): Promise<void> {
    const { config, log, state, topology, signal } = this.ctx, step = loop.step;
    if (loop.evaluator) {
      try {
        const r = await loop.evaluator.run(
          config,
          loop.params,
          (l) => log.line(l),
          (p) => log.progress(formatEvalProgress(p), 30_000),
          signal,
          { index: topology.processIndex, count: topology.processCount },
        );
        const event = state.recordEval(r);
        await log.record({ step, time: Date.now() / 1000, ...event });
        await log.plot();
        log.line(report.evalLine(step, r, state.bestAcc1));
        loop.wandb?.log(event, step);
      } catch (e) {
        if (!(e instanceof Interrupted)) throw e;
        await this.save(loop, false, true);
        throw e;
      }
    }
    await this.save(loop, true);
  }

  /** A periodic save of the state is due (`save-interval` steps, `save-minutes`). */
  saveDue(step: number): boolean {
    const every = this.ctx.config["save-interval"], minutes = this.ctx.config["save-minutes"];
    return every > 0 && step % every === 0 ||
      minutes > 0 && performance.now() - this.ctx.state.savedAt >= minutes * 60_000;
  }

  /** Downloads the device state and saves it (see RunState.save); process 0 writes. */
  async save(loop: Loop, withParams: boolean, evalPending = false): Promise<void> {
    const { topology, positions, state } = this.ctx, { step } = loop;
    if (writesOutputs(topology)) {
      // Process 0 saves every process's data position.
      const all = positions ? await positions.gather(step, loop.position) : [loop.position];
      const at = { step, positions: all, window: loop.window.state(), evalPending };
      const hostParams = await this.trees.download(loop.params) as Tree;
      const hostOpt = await this.trees.download(loop.opt) as Tree;
      await state.save(hostParams, hostOpt, at, withParams);
    }
    loop.savedStep = step;
    loop.window.restartClock();
  }
}
