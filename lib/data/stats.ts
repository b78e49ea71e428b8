/** Counting what the loader read and what it skipped, by reason. */
import type { SkipReason } from "./samples.ts";

/** What changed since the last report; travels from workers to the loader. */
export interface StatsDelta {
  samples: number;
  skipped: Partial<Record<SkipReason, number>>;
  shardsOk: number;
  shardsFailed: number;
  /** Descriptions of the skips, for the log. */
  messages: string[];
}

/** Running totals. */
export interface LoaderStats {
  /** Good samples read (before augment repeats). */
  samples: number;
  /** Skips by reason: samples for sample-level reasons, shards for `shard_open`/`shard_read`. */
  skipped: Partial<Record<SkipReason, number>>;
  shardsOk: number;
  shardsFailed: number;
}

export class StatsAccumulator {
  #delta = emptyDelta();

  sample(): void {
    this.#delta.samples++;
  }

  skip(reason: SkipReason, message: string): void {
    this.#delta.skipped[reason] = (this.#delta.skipped[reason] ?? 0) + 1;
    if (this.#delta.messages.length < 20) {
      this.#delta.messages.push(`skipped (${reason}): ${message}`);
    }
  }

  shard(ok: boolean): void {
    if (ok) this.#delta.shardsOk++;
    else this.#delta.shardsFailed++;
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
  return { samples: 0, skipped: {}, shardsOk: 0, shardsFailed: 0 };
}

export function addDelta(total: LoaderStats, d: StatsDelta): void {
  total.samples += d.samples;
  total.shardsOk += d.shardsOk;
  total.shardsFailed += d.shardsFailed;
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

/** One line for the log: `12,000 samples; skipped: image_decode 3, shard_open 1`. */
export function formatStats(s: LoaderStats): string {
  const skips = Object.entries(s.skipped).map(([k, v]) => `${k} ${v}`).join(", ");
  return `${s.samples} samples from ${s.shardsOk} shards; skipped: ${skips || "none"}`;
}

function emptyDelta(): StatsDelta {
  return { samples: 0, skipped: {}, shardsOk: 0, shardsFailed: 0, messages: [] };
}
