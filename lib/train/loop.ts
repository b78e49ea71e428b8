/**
 * The training loop of `deno task train`. `train` checks and sets up a run (preflight.ts,
 * run_setup.ts, run_state.ts); `Trainer` streams batches (train_data.ts) through the compiled step
 * (programs.ts), reports (step_report.ts, logging.ts; W&B and TensorBoard: report.ts), evaluates
 * (evaluate.ts), checkpoints and resumes. Every setting comes from run_config.ts, the batch plan among them.
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
import { RunLog } from "../report/logging.ts";
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
  startReports,
} from "./run_setup.ts";
import { type Resumed, RunState, TrainingError } from "./run_state.ts";
import type { TrainStepConfig } from "./step.ts";
import * as report from "./step_report.ts";
import { DataFailure } from "./train_data.ts";
import type { RunReport } from "../report/report.ts";

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
  const log = new RunLog(writer ? logDir : null, config.name, undefined, config.criterion);
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

  /** The step this process stops at: the last, or `stopAtStep` (tests, benchmarks). */
  readonly stopAt: number;

  constructor(readonly ctx: RunContext, stopAtStep?: number) {
    const { config, backend, topology } = ctx;
    this.stopAt = Math.min(config["training-steps"], stopAtStep ?? Infinity);
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
    const reports = await startReports(this.ctx, from.step);
    const end = { interrupted: false, exitcode: 1 };
    try {
      const r = await this.trainFrom(from, t0, reports);
      Object.assign(end, { interrupted: r.interrupted, exitcode: 0 });
      return r;
    } finally {
      await reports?.finish(end);
    }
  }

  /** The loop: one optimizer step at a time until the last step, a stop or an interruption. */
  async trainFrom(from: Resumed, t0: number, reports: RunReport | undefined): Promise<TrainResult> {
    const { config, log, state, signal, topology } = this.ctx;
    const loop = await openLoop(this.ctx, this, from, reports);
    const total = config["training-steps"], stopAt = this.stopAt;
    let interrupted = false;
    try {
      if (!from.position && from.step > 0) {
        // A state saved before (this process's) data positions were: replay the batches.
        const n = from.step * this.plan.accum, p = topology.processIndex;
        log.line(`the state has no data position for process ${p}: replaying ${n} batches`);
        loop.position = await loop.data.replay(n);
      }
      this.ctx.positions?.publish(loop.step, loop.position);
      if (from.evalPending) await this.evaluateAndSave(loop);
      while (loop.step < stopAt) {
        if (signal?.aborted) throw new Interrupted();
        await this.advance(loop);
      }
    } catch (e) {
      if (!(e instanceof Interrupted)) throw e;
      interrupted = true;
      await this.settle(loop); // the last step's metrics belong in the window saved below
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

  /**
   * One optimizer step, queued; then the previous step's metrics are read (on a GPU, step n + 1
   * is encoded while step n runs). Log, eval and save points read their own step's metrics first,
   * so the window, the loader's statistics and the saved state all belong to that step.
   */
  async advance(loop: Loop): Promise<void> {
    const { config } = this.ctx;
    const lr = this.schedule(loop.step);
    const out = await this.trainStep(loop, lr);
    loop.params = out.params;
    loop.opt = out.opt;
    const step = ++loop.step, total = config["training-steps"];
    loop.position = loop.data.position();
    this.ctx.positions?.publish(step, loop.position);
    await this.settle(loop);
    out.metrics.catch(() => {}); // awaited by settle(); an early exit must not leave it unhandled
    loop.pending = {
      step,
      lr,
      metrics: out.metrics,
      dataTime: out.dataTime,
      computeTime: out.computeTime,
    };
    const logDue = step % config["log-interval"] === 0 || step === total;
    const evalDue = step % config["eval-interval"] === 0 || step === total;
    const saveDue = !evalDue && this.saveDue(step);
    if (logDue || evalDue || saveDue || step === this.stopAt) await this.settle(loop);
    if (evalDue) await this.evaluateAndSave(loop);
    else if (saveDue) await this.save(loop, false);
  }

  /**
   * Reads the pending step's metrics: stops on a non-finite loss, adds them to the window, prints
   * the progress line and, when due, the log line.
   */
  async settle(loop: Loop): Promise<void> {
    const p = loop.pending;
    if (!p) return;
    loop.pending = undefined;
    const { config, log } = this.ctx;
    const t = performance.now();
    const metrics = await p.metrics;
    const { step, lr } = p, loss = metrics.loss, window = loop.window;
    if (!Number.isFinite(loss)) throw new TrainingError(this.failure(loop, step, { loss }));
    const computeTime = p.computeTime + (performance.now() - t) / 1000;
    window.add({ ...metrics, data_time: p.dataTime, compute_time: computeTime }, this.plan.global);
    const imgPerS = window.imagesPerSecond();
    const eta = (this.stopAt - step) * this.plan.global / imgPerS;
    const total = config["training-steps"];
    log.progress(
      report.progressLine({ step, total, loss, acc1: metrics.acc1, lr, imgPerS }, eta),
      // Off a terminal: the first step at once, then one line a minute.
      step === loop.start + 1 ? 0 : undefined,
    );
    // Not at a stop before the end: the open window is saved and continues on resume.
    if (step % config["log-interval"] === 0 || step === total) {
      const event = report.trainEvent(window, loop.data.stats(), lr, imgPerS);
      await this.record(loop, step, event, report.trainLine(step, event, eta));
      window.reset();
    }
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
      if (!(e instanceof DataFailure)) {
        throw new TrainingError(this.failure(loop, step, { error: e as Error }));
      }
      // No program ran on this step's data: the last completed step is intact, keep it.
      await this.settle(loop);
      const kept = step > loop.start && savedStep !== step;
      if (kept) await this.save(loop, false);
      throw new TrainingError(this.failure(loop, step, { data: e.cause as Error, kept }));
    }
  }

  /** Why the run stops at `step`, and what is intact. */
  failure(loop: Loop, step: number, why: Parameters<typeof report.stepFailure>[1]): string {
    const statePath = this.ctx.state.path("state");
    return report.stepFailure({ step, statePath, savedStep: loop.savedStep }, why);
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
        await this.record(loop, step, event, report.evalLine(step, r, state.bestAcc1));
      } catch (e) {
        if (!(e instanceof Interrupted)) throw e;
        await this.save(loop, false, true);
        throw e;
      }
    }
    await this.save(loop, true);
  }

  /** A log or eval event into metrics.jsonl, the charts (every run gets them), the log, W&B. */
  async record(loop: Loop, step: number, event: Record<string, number>, line: string) {
    await this.ctx.log.record({ step, time: Date.now() / 1000, ...event });
    await this.ctx.log.plot();
    this.ctx.log.line(line);
    loop.reports?.log(event, step);
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
