/**
 * What a run keeps between processes: its checkpoint files, the best accuracy so far, the last
 * evaluation, the data position and the open log window. `resume()` reads `{name}-state.msgpack`
 * back and checks it against the config; `save()` writes `{name}-last` (and `{name}-best` after a
 * new best) and the state, each atomically.
 *
 * The state's `data` map holds `positions` (every process's loader TrainPosition, keyed by
 * process index, with `process_count`; `position` is process 0's, as older states hold it),
 * `best_acc1`, `last_eval`, `window` (the log window's sums) and `eval_pending` (an evaluation
 * that an interruption cut short, run first on resume), structured values as JSON text.
 */
import { encodeFlaxMsgpack } from "../checkpoint/flax_msgpack.ts";
import { inputExists, writeOutput } from "../checkpoint/storage.ts";
import { loadTrainingState, saveTrainingState } from "../checkpoint/train_state.ts";
import type { Tree } from "../checkpoint/tree.ts";
import { type Config, CONFIG_KEYS, type ConfigKey, configToJson, OPTIONS } from "../config/mod.ts";
import type { TrainPosition } from "../data/loader.ts";
import type { HostTensor } from "../ir/host_tensor.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import type { WindowState } from "./metric_window.ts";
import { MODEL_KEYS } from "./run_config.ts";

export class TrainingError extends Error {}

/**
 * Keys that may differ between a saved state and the config that resumes it: how the run is
 * logged, evaluated, saved and where it runs, none of which changes the parameters. Any other
 * difference is refused unless `accept-config-changes` is set; the model keys (MODEL_KEYS) and
 * `train-loader-workers` (the batch order depends on it) are refused even then.
 */
export const RESUME_CHANGEABLE_KEYS = [
  "log-interval",
  "eval-interval",
  "save-interval",
  "save-minutes",
  "valid-batch-size",
  "valid-loader-workers",
  "backend",
  "pjrt-plugin",
  "grad-ckpt",
  "project",
  "ipaddr",
  "hostname",
  // The process count is checked against the saved positions instead (RunState.ownPosition),
  // whether it comes from flags or from the Cloud TPU environment.
  "num-processes",
  "process-id",
  "coordinator",
  "output-dir",
  "accept-config-changes",
] as const satisfies readonly ConfigKey[];

export interface Resumed {
  params: Tree;
  opt: Tree;
  step: number;
  /**
   * This process's loader position; undefined in states written before positions were saved
   * (or, for processes other than 0, before every process's position was).
   */
  position?: TrainPosition;
  window?: WindowState;
  /** An evaluation of `step` was cut short: run it before the next step. */
  evalPending: boolean;
}

export interface EvalSummary {
  loss: number;
  acc1: number;
  acc5: number;
  samples: number;
}

/** What `save()` stores besides the parameters and the optimizer state. */
export interface SavePoint {
  step: number;
  /** Every process's loader position after `step`, in process order (null: not known). */
  positions: (TrainPosition | null | undefined)[];
  window: WindowState;
  evalPending?: boolean;
}

export interface ConfigChange {
  key: ConfigKey;
  saved: unknown;
  now: unknown;
}

export class RunState {
  bestAcc1 = 0;
  lastEval: Record<string, number> | undefined;
  /** The last evaluation was a new best: the next save with parameters writes `{name}-best`. */
  pendingBest = false;
  /** When the state was last saved (performance.now()). */
  savedAt = performance.now();
  /** The W&B run of this training run, kept so that a resumed run continues it. */
  wandbRunId: string | undefined;

  constructor(
    readonly config: Config,
    readonly outDir: string,
    readonly name: string,
    /** Micro-batches per step (the replay of old states counts loader batches). */
    readonly accum: number,
    readonly log: (line: string) => void = () => {},
    /** This process of the job: which saved data position is its own. */
    readonly process: { index: number; count: number } = { index: 0, count: 1 },
  ) {}

  path(kind: "last" | "best" | "state"): string {
    return `${this.outDir}/${this.name}-${kind}.msgpack`;
  }

  /**
   * The saved state of this run, checked against the config; undefined when the state file does
   * not exist. A state that exists but cannot be read, or was saved with other settings, stops
   * the run with the path and the reason, and nothing is written.
   */
  async resume(): Promise<Resumed | undefined> {
    const url = this.path("state");
    let exists: boolean;
    try {
      exists = await inputExists(url);
    } catch (e) {
      throw new TrainingError(`cannot resume: ${(e as Error).message}`);
    }
    if (!exists) return undefined;
    let state;
    try {
      state = await loadTrainingState(url);
    } catch (e) {
      throw new TrainingError(
        `cannot resume: ${(e as Error).message}. Nothing was changed; move the file away to ` +
          "start this run afresh, or use another output-dir or name.",
      );
    }
    const data = state.data as Record<string, unknown>;
    this.checkConfig(state.config);
    const position = this.ownPosition(data, url);
    this.bestAcc1 = typeof data.best_acc1 === "number" ? data.best_acc1 : 0;
    this.lastEval = parseJson(data.last_eval, url, "data/last_eval");
    if (typeof data.wandb_run_id === "string" && data.wandb_run_id) {
      this.wandbRunId = data.wandb_run_id;
    }
    return {
      params: state.params,
      opt: state.optState,
      step: state.step,
      position,
      window: parseJson(data.window, url, "data/window"),
      evalPending: data.eval_pending === true,
    };
  }

  /**
   * This process's saved data position. A state saved by a job of another process count is
   * refused: each host's position is a place in its own 1/P of the shard stream.
   */
  ownPosition(data: Record<string, unknown>, url: string): TrainPosition | undefined {
    const { index, count } = this.process;
    if (data.positions === undefined) {
      // An older state: `position` is process 0's, of a job whose size it does not say.
      return count === 1
        ? parseJson<TrainPosition>(data.position, url, "data/position")
        : undefined;
    }
    const all = parseJson<Record<string, TrainPosition | null>>(
      data.positions,
      url,
      "data/positions",
    ) ?? {};
    const saved = typeof data.process_count === "number"
      ? data.process_count
      : Object.keys(all).length;
    if (saved !== count) {
      throw new TrainingError(
        `cannot resume from ${url}: it was saved by a job of ${saved} process(es) (data/` +
          `process_count ${saved}, data/positions keys ${Object.keys(all).join(", ")}), this ` +
          `job has ${count} (num-processes, or TPU_WORKER_HOSTNAMES): each process resumes ` +
          `from its own place in its 1/${saved} of the training shards. Run it with ` +
          `--num-processes ${saved}, or use another output-dir or name.`,
      );
    }
    return all[String(index)] ?? undefined;
  }

  /** Refuses a resume whose settings differ (see RESUME_CHANGEABLE_KEYS), listing every change. */
  checkConfig(saved: Record<string, unknown>): void {
    const changes = configChanges(saved, this.config);
    const changeable = new Set<ConfigKey>(RESUME_CHANGEABLE_KEYS);
    const fixed = new Set<ConfigKey>([...MODEL_KEYS, "train-loader-workers"]);
    const list = (cs: ConfigChange[]) =>
      cs.map((c) => `  ${c.key}: ${JSON.stringify(c.saved)} -> ${JSON.stringify(c.now)}`).join(
        "\n",
      );
    const where = this.path("state");
    const never = changes.filter((c) => fixed.has(c.key));
    if (never.length) {
      throw new TrainingError(
        `cannot resume from ${where}: it was saved with other model or loader settings ` +
          `(saved -> now):\n${list(never)}\nThese cannot change during a run (the parameters or ` +
          "the batch order depend on them). Use another output-dir or name.",
      );
    }
    const relevant = changes.filter((c) => !changeable.has(c.key));
    if (relevant.length && !this.config["accept-config-changes"]) {
      const seeds = relevant.some((c) => c.key.endsWith("-seed"))
        ? "\nSeeds that are not set are drawn at random at every start: set them in the config."
        : "";
      throw new TrainingError(
        `cannot resume from ${where}: training settings differ from the saved run's ` +
          `(saved -> now):\n${list(relevant)}\nRestore them, or pass --accept-config-changes ` +
          `to resume with the new values.${seeds}`,
      );
    }
    if (relevant.length) {
      this.log(`resuming with changed training settings (saved -> now):\n${list(relevant)}`);
    }
  }

  /** Takes an evaluation's result; returns the metrics to record. */
  recordEval(r: EvalSummary): Record<string, number> {
    const isBest = r.acc1 > this.bestAcc1 || this.lastEval === undefined && r.acc1 >= this.bestAcc1;
    if (isBest) this.bestAcc1 = r.acc1;
    this.lastEval = {
      "val/loss": r.loss,
      "val/acc1": r.acc1,
      "val/acc5": r.acc5,
      "val/best_acc1": this.bestAcc1,
      "val/samples": r.samples,
    };
    if (isBest) this.pendingBest = true;
    return this.lastEval;
  }

  /**
   * Writes `{name}-last` (and `{name}-best` after a new best) when `withParams`, then the training
   * state. Refuses non-finite parameters, so that a good checkpoint is never overwritten.
   */
  async save(params: Tree, opt: Tree, at: SavePoint, withParams: boolean): Promise<void> {
    for (const [path, t] of leavesWithPaths<HostTensor>(params)) {
      if (!t.data.every(Number.isFinite)) {
        throw new TrainingError(
          `parameter ${path} is not finite after step ${at.step}: stopping without saving. The ` +
            `last good checkpoint (${
              this.path("state")
            }, if one was written) is intact; lower the learning rate ` +
            "or enable --clip-grad.",
        );
      }
    }
    if (withParams) {
      await writeOutput(this.path("last"), encodeFlaxMsgpack(params));
      if (this.pendingBest) await writeOutput(this.path("best"), encodeFlaxMsgpack(params));
      this.pendingBest = false;
    }
    await saveTrainingState(this.path("state"), {
      params,
      optState: opt,
      step: at.step,
      rng: {
        dropout_seed: this.config["dropout-seed"] as number,
        mixup_seed: this.config["mixup-seed"] as number,
        shuffle_seed: this.config["shuffle-seed"] as number,
      },
      data: {
        batches_consumed: at.step * this.accum,
        best_acc1: this.bestAcc1,
        last_eval: JSON.stringify(this.lastEval ?? null),
        position: JSON.stringify(at.positions[0] ?? null),
        positions: JSON.stringify(
          Object.fromEntries(at.positions.map((p, i) => [String(i), p ?? null])),
        ),
        process_count: at.positions.length,
        window: JSON.stringify(at.window),
        eval_pending: at.evalPending ?? false,
        ...(this.wandbRunId ? { wandb_run_id: this.wandbRunId } : {}),
      },
      config: JSON.parse(configToJson(this.config)),
    });
    this.savedAt = performance.now();
  }
}

/**
 * Keys whose value differs between a saved config (as `configToJson` writes it) and `config`;
 * a key the saved config lacks (an option added since) counts as its default.
 */
/**
 * What a run saved before a key existed did, where that is not the key's default: runs before
 * `random-erasing-fill` filled erased boxes with timm's normal noise.
 */
const BEFORE_KEY_EXISTED: Partial<Record<ConfigKey, unknown>> = {
  "random-erasing-fill": "normal",
};

export function configChanges(saved: Record<string, unknown>, config: Config): ConfigChange[] {
  const now = JSON.parse(configToJson(config)) as Record<string, unknown>;
  const out: ConfigChange[] = [];
  for (const key of CONFIG_KEYS) {
    const was = key in saved
      ? saved[key]
      : key in BEFORE_KEY_EXISTED
      ? BEFORE_KEY_EXISTED[key]
      : OPTIONS[key].default;
    if (JSON.stringify(was) !== JSON.stringify(now[key])) {
      out.push({ key, saved: was, now: now[key] });
    }
  }
  return out;
}

function parseJson<T>(v: unknown, url: string, key: string): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string") {
    throw new TrainingError(`cannot resume: ${url}: key "${key}" is not JSON text`);
  }
  try {
    return JSON.parse(v) ?? undefined;
  } catch {
    throw new TrainingError(`cannot resume: ${url}: key "${key}" is not valid JSON`);
  }
}
