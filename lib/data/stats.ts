/** Counting what the loader read and what it skipped, by reason, and judging it. */
import { redact } from "../config/redact.ts";
import { OPTIONS } from "../config/schema.ts";
import type { SkipReason } from "./samples.ts";

/**
 * The default of `maxSkipFraction`: the `max-bad-fraction` config key's (lib/config/schema.ts,
 * the one source), the tolerated fraction of bad samples and of shards not read whole.
 */
export const DEFAULT_MAX_BAD_FRACTION: number = OPTIONS["max-bad-fraction"].default;

/**
 * Bad data that stops a loader: too many skips, no readable shard, a bad sample in strict mode.
 * Its message says it all (shard, sample, counts), so callers print the message, not a stack.
 */
export class DataError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(redact(message), options);
    this.name = "DataError";
  }
}

/** How a shard visit ended. */
export type ShardOutcome = "whole" | "partial" | "failed";

/** What changed since the last report; travels from workers to the loader. */
export interface StatsDelta {
  samples: number;
  skipped: Partial<Record<SkipReason, number>>;
  shardsOk: number;
  shardsPartial: number;
  shardsFailed: number;
  shardsUnusable: number;
  /** Descriptions of the skips, for the log. */
  messages: string[];
}

/** Running totals. */
export interface LoaderStats {
  /** Good samples read (before augment repeats). */
  samples: number;
  /** Skips by reason: samples for sample-level reasons, shards for `shard_open`/`shard_read`. */
  skipped: Partial<Record<SkipReason, number>>;
  /** Shard visits read to the end. */
  shardsOk: number;
  /** Shard visits that failed part-way (truncated, corrupt, connection lost) after samples. */
  shardsPartial: number;
  /** Shard visits that gave no sample (unopenable, empty, failed before the first sample). */
  shardsFailed: number;
  /**
   * Shard visits that gave samples, none of them usable (all skipped: no image, no label, ...),
   * also counted as read whole or cut short. Counted by validation loaders (check-data).
   */
  shardsUnusable: number;
}

export class StatsAccumulator {
  #delta = emptyDelta();

  sample(): void {
    this.#delta.samples++;
  }

  skip(reason: SkipReason, message: string): void {
    this.#delta.skipped[reason] = (this.#delta.skipped[reason] ?? 0) + 1;
    if (this.#delta.messages.length < 20) {
      this.#delta.messages.push(redact(`skipped (${reason}): ${message}`));
    }
  }

  shard(outcome: ShardOutcome): void {
    if (outcome === "whole") this.#delta.shardsOk++;
    else if (outcome === "partial") this.#delta.shardsPartial++;
    else this.#delta.shardsFailed++;
  }

  /** A shard visit that gave samples but no usable one (see `LoaderStats.shardsUnusable`). */
  unusableShard(): void {
    this.#delta.shardsUnusable++;
  }

  /** Whether something was skipped since the last `take`. */
  get hasSkips(): boolean {
    return this.#delta.messages.length > 0 || Object.keys(this.#delta.skipped).length > 0;
  }

  take(): StatsDelta {
    const d = this.#delta;
    this.#delta = emptyDelta();
    return d;
  }
}

export function emptyStats(): LoaderStats {
  return {
    samples: 0,
    skipped: {},
    shardsOk: 0,
    shardsPartial: 0,
    shardsFailed: 0,
    shardsUnusable: 0,
  };
}

export function addDelta(total: LoaderStats, d: StatsDelta): void {
  total.samples += d.samples;
  total.shardsOk += d.shardsOk;
  total.shardsPartial += d.shardsPartial;
  total.shardsFailed += d.shardsFailed;
  total.shardsUnusable += d.shardsUnusable;
  for (const [k, v] of Object.entries(d.skipped)) {
    const r = k as SkipReason;
    total.skipped[r] = (total.skipped[r] ?? 0) + (v ?? 0);
  }
}

/** Skipped samples (not shards). */
export function skippedSamples(s: LoaderStats): number {
  let n = 0;
  for (const [k, v] of Object.entries(s.skipped)) {
    if (k !== "shard_open" && k !== "shard_read") n += v ?? 0;
  }
  return n;
}

/** Shard visits so far, whatever their outcome. */
export function shardVisits(s: LoaderStats): number {
  return s.shardsOk + s.shardsPartial + s.shardsFailed;
}

/** The fraction of shard visits read whole (1 before any visit ended). */
export function wholeShardFraction(s: LoaderStats): number {
  const visits = shardVisits(s);
  return visits === 0 ? 1 : s.shardsOk / visits;
}

/**
 * One line for the log:
 * `12000 samples from 12 shards (11 read whole, 91.7%); skipped: image_decode 3, shard_read 1`.
 */
export function formatStats(s: LoaderStats): string {
  const skips = Object.entries(s.skipped).map(([k, v]) => `${k} ${v}`).join(", ");
  const visits = shardVisits(s);
  const whole = `${s.shardsOk} read whole, ${(100 * wholeShardFraction(s)).toFixed(1)}%`;
  return `${s.samples} samples from ${visits} shards (${whole}); skipped: ${skips || "none"}`;
}

export interface Limits {
  /** Tolerated fraction of bad samples, and of shard visits not read whole. */
  maxBadFraction: number;
  /** Sample fraction judged once this many samples were seen (or at the end of a pass). */
  minSamples: number;
  /** Shards in the list. */
  shardCount: number;
  /** The end of a finite pass: judge whatever the counts. */
  atEnd: boolean;
  /** The last skip reported, quoted when no shard could be read (it says why). */
  lastSkip?: string;
}

/**
 * Why the loader must stop, or undefined while the data is good enough:
 * - more than `maxBadFraction` of the samples were bad (judged after `minSamples` samples, at
 *   the end of a pass, or once every shard was visited without a good sample);
 * - no shard gave a sample, after every shard (or 16) was tried: zero-byte, empty or missing
 *   shards, or sources failing before their first sample;
 * - more than `maxBadFraction` of the shard visits were not read whole (failed or cut short),
 *   judged after as many visits as there are shards (at most 100, so that one cut shard among
 *   the first few does not stop a run at a 1% limit), or at the end of a pass.
 */
export function judgeStats(s: LoaderStats, l: Limits): string | undefined {
  const limit = l.maxBadFraction;
  const bad = skippedSamples(s), seen = s.samples + bad;
  const visits = shardVisits(s);
  const due = l.atEnd || seen >= l.minSamples || (s.samples === 0 && visits >= l.shardCount);
  if (bad > 0 && bad > limit * seen && due) {
    return `too many bad samples: ${bad} of ${seen} (${(100 * bad / seen).toFixed(1)}%, limit ` +
      `${100 * limit}%); ${formatStats(s)}`;
  }
  if (s.shardsOk + s.shardsPartial === 0 && s.shardsFailed >= Math.min(l.shardCount, 16)) {
    const last = l.lastSkip
      ? `; the last: ${l.lastSkip.replace(/^skipped \([a-z_]+\): /, "")}`
      : "";
    return `no shard could be read (${s.shardsFailed} failed); ${formatStats(s)}${last}`;
  }
  const notWhole = s.shardsPartial + s.shardsFailed;
  if (notWhole > limit * visits && (l.atEnd || visits >= Math.min(l.shardCount, 100))) {
    return `too many shards not read whole: ${notWhole} of ${visits} ` +
      `(${s.shardsPartial} cut short, ${s.shardsFailed} unreadable; limit ${100 * limit}%); ` +
      formatStats(s);
  }
  return undefined;
}

function emptyDelta(): StatsDelta {
  return { ...emptyStats(), messages: [] };
}
