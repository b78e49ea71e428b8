/**
 * Where a run's metrics go besides metrics.jsonl: W&B (wandb.ts, when a key or offline mode is
 * set) and TensorBoard event files (tensorboard.ts, always, next to metrics.jsonl), behind the
 * one small interface the training loop uses.
 */
import { redact } from "../config/redact.ts";
import { TensorBoardWriter } from "./tensorboard.ts";
import { WandbRun, wandbRunFromEnv, wandbSettingsFromEnv } from "./wandb.ts";

/** The exit status of an interrupted run that saved its state (tasks/train.ts exits with it). */
export const EXIT_INTERRUPTED = 75;

export interface RunReport {
  /** A train row or an eval at `step`, the same metrics as its metrics.jsonl record. */
  log(metrics: Record<string, number>, step: number): void;
  /** The end: interrupted (it can resume), or done (exitcode 0) or failed (1). */
  finish(end: { interrupted: boolean; exitcode: number }): Promise<void>;
}

export interface ReportOptions {
  /** The folder of metrics.jsonl; event files go there too. */
  dir: string;
  name: string;
  project: string | null;
  /** The run's config as written to config.json. */
  config: Record<string, unknown>;
  /** The step this session starts at (0: a new run). */
  resumeStep: number;
  /** metrics.jsonl so far. */
  history: Record<string, unknown>[];
  /** The W&B run id kept in the training state. */
  wandbRunId?: string;
  backend?: { name: string; description: string; devices: number; replicas: number };
  log: (line: string) => void;
}

/** Opens the reports of a run; `runId` is the W&B run id to keep in the state, if any. */
export async function openRunReport(o: ReportOptions): Promise<RunReport & { runId?: string }> {
  const tb = new TensorBoardWriter(o.dir, { resumeStep: o.resumeStep });
  if (o.resumeStep === 0) {
    tb.text("config", "```json\n" + redact(JSON.stringify(o.config, null, 2)) + "\n```");
  }
  const settings = wandbSettingsFromEnv();
  const wandb = settings
    ? await WandbRun.start(settings, {
      project: o.project,
      name: o.name,
      config: o.config,
      id: o.wandbRunId,
      env: wandbRunFromEnv(),
      dir: o.dir,
      log: o.log,
      history: o.history,
      backend: o.backend,
      captureOutput: true,
    })
    : undefined;
  return {
    runId: wandb?.id,
    log(metrics, step) {
      const time = Date.now() / 1000;
      tb.scalars(step, metrics, time);
      wandb?.log(metrics, step, time);
    },
    async finish(end) {
      tb.close();
      if (!wandb) return;
      if (end.interrupted) wandb.preempting();
      // Interrupted, the process exits within tasks/train.ts's 9 s: W&B gets at most 5 of them.
      await wandb.finish(
        end.interrupted ? EXIT_INTERRUPTED : end.exitcode,
        end.interrupted ? 5000 : 10_000,
      );
    },
  };
}
