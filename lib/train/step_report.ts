/**
 * What the training loop says, as text: the live progress line, the log window's metrics event
 * and line, the evaluation line and the closing line. Pure formatting; the loop (loop.ts) decides
 * when, and RunLog (logging.ts) where.
 */
import type { LoaderStats } from "../data/stats.ts";
import type { EvalResult } from "./evaluate.ts";
import { formatDuration } from "../report/logging.ts";
import type { MetricWindow } from "./metric_window.ts";

/** Where the run writes, said once at its start. */
export function outputsLine(name: string, outDir: string, logDir: string): string {
  // The run's own folder: its parent could be /tmp, and the dashboard would scan all of it.
  return `writing to ${outDir}: checkpoints ${name}-{last,best,state}.msgpack` +
    (logDir === outDir ? "" : `; metrics to ${logDir}`) +
    `, metrics.jsonl, metrics.html (live: deno task dashboard ${logDir})`;
}

/** The model and the schedule, said once before compiling. */
export function modelLine(
  vit: { layers: number; dim: number; heads: number },
  params: number,
  steps: number,
  plan: { global: number; accum: number; perReplica: number },
): string {
  return `model: ViT ${vit.layers} layers, dim ${vit.dim}, ${vit.heads} heads, ` +
    `${(params / 1e6).toFixed(2)}M params; ${steps} step${steps === 1 ? "" : "s"} of batch ` +
    `${plan.global}` +
    (plan.accum > 1 ? ` (${plan.accum} x ${plan.perReplica})` : "");
}

/** The live line after each step: "step 12/300 | loss 2.1 | acc1 40.00% | lr ... | ETA 1m". */
export function progressLine(
  o: { step: number; total: number; loss: number; acc1: number; lr: number; imgPerS: number },
  eta: number,
): string {
  return `step ${o.step}/${o.total} | loss ${o.loss.toFixed(4)} | acc1 ` +
    `${(o.acc1 * 100).toFixed(2)}% | lr ${o.lr.toExponential(2)} | ` +
    `${o.imgPerS.toFixed(0)} img/s | ETA ${formatDuration(eta)}`;
}

/** The log window's means as one metrics event (`train/...`, `data/skipped`). */
export function trainEvent(
  window: MetricWindow,
  stats: LoaderStats,
  lr: number,
  imgPerS: number,
): Record<string, number> {
  const skipped = Object.values(stats.skipped ?? {}) as number[];
  return {
    "train/lr": lr,
    "train/img_per_s": imgPerS,
    ...window.means("train/"),
    "data/skipped": skipped.reduce((a, b) => a + b, 0),
  };
}

/** The log line of a train event. */
export function trainLine(step: number, event: Record<string, number>, eta: number): string {
  return `step ${step}: loss ${event["train/loss"].toFixed(4)}, acc1 ` +
    `${(event["train/acc1"] * 100).toFixed(2)}%, lr ${event["train/lr"].toExponential(3)}, ` +
    `${event["train/img_per_s"].toFixed(1)} img/s, data ${event["train/data_time"].toFixed(3)} s ` +
    `+ compute ${event["train/compute_time"].toFixed(3)} s per step, ETA ` +
    `${formatDuration(eta)}, data skips ${event["data/skipped"]}`;
}

/** The log line of an evaluation. */
export function evalLine(step: number, r: EvalResult, bestAcc1: number): string {
  return `eval at step ${step}: loss ${r.loss.toFixed(4)}, acc1 ${(r.acc1 * 100).toFixed(2)}%, ` +
    `acc5 ${(r.acc5 * 100).toFixed(2)}% (best ${(bestAcc1 * 100).toFixed(2)}%) ` +
    `on ${r.samples} images in ${r.seconds.toFixed(1)} s`;
}

/** The run's last line: where it stopped and what is saved, or where the checkpoints are. */
export function closingLine(o: {
  step: number;
  total: number;
  interrupted: boolean;
  /** The state file holds this run's latest step (saved now or before). */
  saved: boolean;
  paths: { last: string; best: string; state: string };
  /** Best validation acc1, when the run evaluates. */
  bestAcc1: number | undefined;
}): string | undefined {
  const { paths } = o;
  if (o.step < o.total) {
    return `${o.interrupted ? "interrupted" : "stopped"} at step ${o.step}; state ` +
      `${o.saved ? "saved to" : "(if any) unchanged in"} ${paths.state}; run the same command ` +
      "again to resume";
  }
  if (o.interrupted) return undefined;
  return `checkpoints: ${paths.last}` +
    (o.bestAcc1 !== undefined
      ? `, ${paths.best} (best val acc1 ${(o.bestAcc1 * 100).toFixed(2)}%)`
      : "") +
    `; training state ${paths.state}`;
}

/** Why a run stops at a step: a non-finite loss, the data, or the step itself failing. */
export function stepFailure(
  o: { step: number; statePath: string; savedStep: number },
  why: { loss: number } | { data: Error; kept: boolean } | { error: Error },
): string {
  const { step, statePath } = o;
  if ("loss" in why) {
    return `loss is ${why.loss} at step ${step}: stopping. The last good checkpoint ` +
      `(${statePath}, if one was written) is intact; lower the learning rate or enable ` +
      "--clip-grad.";
  }
  if ("data" in why) {
    return `the training data failed at step ${step + 1}: ${why.data.message}` +
      (why.kept ? `; the state of step ${step} was saved to ${statePath}` : "");
  }
  return `step ${step + 1} failed: ${why.error.message}. The last saved state (${statePath}, ` +
    `step ${o.savedStep >= 0 ? o.savedStep : "of an earlier run, if any"}) is intact; run the ` +
    "same command again to resume from it";
}
