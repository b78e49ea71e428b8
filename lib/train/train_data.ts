/**
 * A run's training data: the train loader of this host (from the config and the batch plan,
 * checked against a resumed position), and the step inputs it feeds: each micro-batch waited for
 * interruptibly, the wait timed (timm's "Data" time), a loader failure turned into a
 * `DataFailure` (the last completed step is then intact).
 */
import type { Config } from "../config/mod.ts";
import type { Batch as HostBatch } from "../data/batch.ts";
import { createTrainLoader, type DataLoader, type TrainPosition } from "../data/loader.ts";
import type { LoaderStats } from "../data/stats.ts";
import { Interrupted, unlessAborted } from "./interrupt.ts";
import { type MicroInputs, microInputs, type StepShape } from "./programs.ts";
import { type BatchPlan, loaderWorkers, trainLoaderOptionsOf } from "./run_config.ts";
import { TrainingError } from "./run_state.ts";

/** Data failed during a step: the parameters of the last completed step are intact. */
export class DataFailure extends Error {}

export class TrainData {
  readonly #loader: DataLoader;
  readonly #batches: AsyncIterator<HostBatch>;
  /** Milliseconds spent waiting for batches and preparing inputs since the last `takeWait`. */
  #waited = 0;

  private constructor(
    loader: DataLoader,
    readonly config: Config,
    readonly shape: StepShape,
    readonly signal: AbortSignal | undefined,
  ) {
    this.#loader = loader;
    this.#batches = loader[Symbol.asyncIterator]();
  }

  /**
   * Opens this host's train loader at `start` (a resumed position). A position saved with
   * another worker count is refused: the batch order depends on it.
   */
  static open(
    config: Config,
    plan: BatchPlan,
    shape: StepShape,
    job: { index: number; count: number; statePath: string },
    start: TrainPosition | undefined,
    o: { log: (line: string) => void; signal?: AbortSignal },
  ): TrainData {
    const workers = loaderWorkers(config, "train-loader-workers", o.log);
    if (start && start.workers !== Math.max(1, workers)) {
      throw new TrainingError(
        `cannot resume from ${job.statePath}: process ${job.index}'s data position ` +
          `(data/positions) was saved with ${start.workers} loader worker(s), ` +
          `train-loader-workers is ${workers} here (capped at this machine's cores); the batch ` +
          "order depends on the worker count. Run it where that many workers fit.",
      );
    }
    const loader = createTrainLoader({
      ...trainLoaderOptionsOf(config, plan, job, workers),
      start,
      log: o.log,
    });
    return new TrainData(loader, config, shape, o.signal);
  }

  /** Micro-batch `i` of step `step` as program inputs (one per local device). */
  async microInputs(step: number, i: number): Promise<MicroInputs[]> {
    const t = performance.now();
    const c = this.config;
    const inputs = microInputs(
      this.shape,
      { dropout: c["dropout-seed"], mixup: c["mixup-seed"] },
      { mixup: c.mixup, cutmix: c.cutmix },
      await this.next(),
      step,
      i,
    );
    this.#waited += performance.now() - t;
    return inputs;
  }

  /** The wait since the last call, in seconds. */
  takeWait(): number {
    const s = this.#waited / 1000;
    this.#waited = 0;
    return s;
  }

  /** The loader's next batch, unless interrupted; a loader error is a DataFailure. */
  async next(): Promise<HostBatch> {
    let r;
    try {
      r = await unlessAborted(this.#batches.next(), this.signal);
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

  position(): TrainPosition | undefined {
    return this.#loader.position();
  }

  /** Skips `n` batches (a state saved before data positions were): the position after them. */
  async replay(n: number): Promise<TrainPosition | undefined> {
    for (let i = 0; i < n; i++) await this.next();
    return this.position();
  }

  stats(): LoaderStats {
    return this.#loader.stats();
  }

  /** Closes the loader; a stalled source must not hold the exit up, so this takes 2 s at most. */
  async close(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#loader.close(), new Promise((r) => timer = setTimeout(r, 2000))]);
    clearTimeout(timer); // a prompt close must not keep the process alive for 2 s
  }
}
