/**
 * `deno task check-data`: read shards through the real loader and report what came out: sample
 * count, skips by reason, a label histogram summary and the throughput.
 */
import { createTrainLoader, createValidLoader, type DataLoader } from "./loader.ts";
import type { OpenOptions } from "./open.ts";
import { type LoaderStats, wholeShardFraction } from "./stats.ts";
import type { TransformSpec } from "./transform.ts";

export interface CheckOptions {
  shards: string;
  transform: "train" | "valid" | "none";
  /** Stop after this many samples. */
  limit?: number;
  workers?: number;
  imageSize?: number;
  batchSize?: number;
  /** Train transform settings (the DeiT-III defaults otherwise). */
  randomCrop?: "rrc" | "src" | "none";
  autoAugment?: string;
  colorJitter?: number;
  randomErasing?: number;
  testCropRatio?: number;
  /** Stop at the first bad sample instead of counting. */
  strict?: boolean;
  /** Class count: labels outside `[0, labels)` are counted as `bad_label`. */
  labels?: number;
  open?: OpenOptions;
  log?: (line: string) => void;
}

export interface CheckReport {
  shards: number;
  samples: number;
  skipped: LoaderStats["skipped"];
  /** Shard reads that reached the end, that failed part-way, that gave nothing. */
  shards_whole: number;
  shards_partial: number;
  shards_failed: number;
  /**
   * Shard reads that gave samples but no usable one (every sample skipped); counted with
   * `--transform none|valid` (the train loader decodes after its shuffle buffer, past the shard).
   */
  shards_unusable: number;
  /** shards_whole over all shard reads. */
  whole_fraction: number;
  seconds: number;
  img_per_s: number;
  transform: string;
  workers: number;
  labels: LabelSummary;
}

export interface LabelSummary {
  classes: number;
  min_label: number | null;
  max_label: number | null;
  /** Fewest and most samples of any class seen. */
  min_per_class: number;
  max_per_class: number;
  /** The five most frequent labels, [label, count]. */
  most_common: [number, number][];
}

export async function checkData(o: CheckOptions): Promise<CheckReport> {
  const imageSize = o.imageSize ?? 224;
  const batchSize = o.batchSize ?? 64;
  const workers = o.workers ?? 1;
  const common = {
    shards: o.shards,
    batchSize,
    workers,
    strict: o.strict ?? false,
    labels: o.labels,
    maxSkipFraction: 1, // report, do not judge
    open: o.open,
    log: o.log ?? (() => {}),
  };
  let loader: DataLoader;
  if (o.transform === "train") {
    const transform: TransformSpec = {
      kind: "train",
      options: {
        imageSize,
        randomCrop: o.randomCrop ?? "rrc",
        colorJitter: o.colorJitter ?? 0,
        autoAugment: o.autoAugment ?? "rand-m9-mstd0.5-inc1",
        randomErasing: o.randomErasing ?? 0.25,
      },
    };
    loader = createTrainLoader({ ...common, transform, epochs: 1, shuffleSeed: 0 });
  } else {
    const transform: TransformSpec = o.transform === "valid"
      ? { kind: "valid", options: { imageSize, testCropRatio: o.testCropRatio ?? 0.875 } }
      : { kind: "none" };
    loader = createValidLoader({ ...common, transform });
  }
  const counts = new Map<number, number>();
  let samples = 0;
  const t0 = performance.now();
  try {
    outer: for await (const batch of loader) {
      for (let r = 0; r < batch.count; r++) {
        const label = batch.labels[r];
        counts.set(label, (counts.get(label) ?? 0) + 1);
        if (++samples === o.limit) break outer;
      }
    }
  } finally {
    await loader.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const stats = loader.stats();
  return {
    shards: loader.shards.length,
    samples,
    skipped: stats.skipped,
    shards_whole: stats.shardsOk,
    shards_partial: stats.shardsPartial,
    shards_failed: stats.shardsFailed,
    shards_unusable: stats.shardsUnusable,
    whole_fraction: Number(wholeShardFraction(stats).toFixed(4)),
    seconds: Number(seconds.toFixed(3)),
    img_per_s: Number((samples / Math.max(seconds, 1e-9)).toFixed(1)),
    transform: o.transform,
    workers,
    labels: summarize(counts),
  };
}

/**
 * Why the data is unusable as checked, or undefined: no usable sample at all, or shards that gave
 * none (unreadable, or every sample skipped). `check-data` exits non-zero with this.
 */
export function verdict(r: CheckReport): string | undefined {
  const reads = r.shards_whole + r.shards_partial + r.shards_failed;
  const empty = r.shards_failed + r.shards_unusable;
  if (r.samples === 0) {
    return `no usable sample in ${reads} shard read(s); skipped: ${formatSkips(r)}`;
  }
  if (empty > 0) {
    return `${empty} of ${reads} shard read(s) gave no usable sample ` +
      `(${r.shards_failed} unreadable, ${r.shards_unusable} with every sample skipped)`;
  }
  return undefined;
}

function formatSkips(r: CheckReport): string {
  return Object.entries(r.skipped).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
}

/** The report as a few lines of text. */
export function formatReport(r: CheckReport): string {
  const skips = formatSkips(r);
  const l = r.labels;
  const labelLine = l.classes === 0
    ? "labels: none"
    : `labels: ${l.classes} classes seen (${l.min_label}..${l.max_label}), ` +
      `${l.min_per_class}..${l.max_per_class} samples per class; most common: ` +
      l.most_common.map(([k, n]) => `${k} (${n})`).join(", ");
  const reads = r.shards_whole + r.shards_partial + r.shards_failed;
  return [
    `shards: ${r.shards}; ${r.shards_whole} of ${reads} read whole ` +
    `(${(100 * r.whole_fraction).toFixed(1)}%)` +
    (r.shards_partial ? `, ${r.shards_partial} cut short` : "") +
    (r.shards_failed ? `, ${r.shards_failed} unreadable` : "") +
    (r.shards_unusable ? `, ${r.shards_unusable} with no usable sample` : ""),
    `samples: ${r.samples} in ${r.seconds.toFixed(1)} s: ${r.img_per_s.toFixed(1)} img/s ` +
    `(transform ${r.transform}, ${r.workers} worker${r.workers === 1 ? "" : "s"})`,
    `skipped: ${skips}`,
    labelLine,
  ].join("\n");
}

function summarize(counts: Map<number, number>): LabelSummary {
  const entries = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const labels = [...counts.keys()];
  const per = [...counts.values()];
  return {
    classes: counts.size,
    min_label: labels.length ? Math.min(...labels) : null,
    max_label: labels.length ? Math.max(...labels) : null,
    min_per_class: per.length ? Math.min(...per) : 0,
    max_per_class: per.length ? Math.max(...per) : 0,
    most_common: entries.slice(0, 5),
  };
}
