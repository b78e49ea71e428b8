/**
 * What a run keeps between processes: its checkpoint files, the best accuracy so far, and the
 * data position. `resume()` reads `{name}-state.msgpack` back; `save()` writes `{name}-last`
 * (and `{name}-best` after a new best) and the state, each atomically.
 */
import { encodeFlaxMsgpack } from "../checkpoint/flax_msgpack.ts";
import { writeOutput } from "../checkpoint/storage.ts";
import { loadTrainingState, saveTrainingState } from "../checkpoint/train_state.ts";
import type { Tree } from "../checkpoint/tree.ts";
import { type Config, configToJson } from "../config/mod.ts";
import type { HostTensor } from "../ir/host_tensor.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import { MODEL_KEYS } from "./run_config.ts";

export class TrainingError extends Error {}

export interface Resumed {
  params: Tree;
  opt: Tree;
  step: number;
}

export interface EvalSummary {
  loss: number;
  acc1: number;
  acc5: number;
  samples: number;
}

export class RunState {
  bestAcc1 = 0;
  lastEval: Record<string, number> | undefined;
  /** The last evaluation was a new best: the next save writes `{name}-best` too. */
  pendingBest = false;
  /** The W&B run of this training run, kept so that a resumed run continues it. */
  wandbRunId: string | undefined;

  constructor(
    readonly config: Config,
    readonly outDir: string,
    readonly name: string,
    /** Micro-batches per step (the data position is counted in loader batches). */
    readonly accum: number,
  ) {}

  path(kind: "last" | "best" | "state"): string {
    return `${this.outDir}/${this.name}-${kind}.msgpack`;
  }

  /** The saved state of this run, checked against the config; undefined when there is none. */
  async resume(): Promise<Resumed | undefined> {
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
    const wandb = state.data.wandb_run_id;
    if (typeof wandb === "string" && wandb) this.wandbRunId = wandb;
    return { params: state.params, opt: state.optState, step: state.step };
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
  async save(params: Tree, opt: Tree, step: number, withParams = true): Promise<void> {
    for (const [path, t] of leavesWithPaths<HostTensor>(params)) {
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
      await writeOutput(this.path("last"), encodeFlaxMsgpack(params));
      if (this.pendingBest) await writeOutput(this.path("best"), encodeFlaxMsgpack(params));
      this.pendingBest = false;
    }
    await saveTrainingState(this.path("state"), {
      params,
      optState: opt,
      step,
      rng: {
        dropout_seed: this.config["dropout-seed"] as number,
        mixup_seed: this.config["mixup-seed"] as number,
        shuffle_seed: this.config["shuffle-seed"] as number,
      },
      data: {
        batches_consumed: step * this.accum,
        best_acc1: this.bestAcc1,
        ...(this.wandbRunId ? { wandb_run_id: this.wandbRunId } : {}),
      },
      config: JSON.parse(configToJson(this.config)),
    });
  }
}
