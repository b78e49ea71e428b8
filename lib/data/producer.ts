/**
 * What one loader worker does: read its shards, shuffle, decode, augment and batch. Runs inside
 * a Deno Worker (worker.ts) or, with 0 workers, in the calling thread; either way the output is
 * a sequence of messages the loader (loader.ts) consumes.
 */
import type { RGBImage } from "../augment/image.ts";
import { Rng } from "../ir/rng.ts";
import { type Batch, BatchBuilder } from "./batch.ts";
import { DecodeError, decodeImage } from "./decode.ts";
import type { OpenOptions } from "./open.ts";
import {
  sampleOwner,
  ShuffleBuffer,
  type ShuffleState,
  type Slice,
  trainShardVisits,
} from "./order.ts";
import {
  imageBytes,
  parseLabel,
  type RawSample,
  requireParts,
  SampleError,
  type SkipReason,
} from "./samples.ts";
import { readShard, ShardError } from "./shard_reader.ts";
import { DataError, StatsAccumulator, type StatsDelta } from "./stats.ts";
import {
  loadTransform,
  type SampleTransform,
  transformImageSize,
  type TransformSpec,
} from "./transform.ts";

export interface TrainProducerConfig {
  mode: "train";
  shards: string[];
  slice: Slice;
  shuffleSeed: number;
  augmentSeed: number;
  batchSize: number;
  augmentRepeats: number;
  shuffleBuffer: number;
  shuffleInitial: number;
  /** Passes over the shard list; Infinity cycles forever. */
  epochs: number;
  transform: TransformSpec;
  open: OpenOptions;
  withKeys: boolean;
  /** Any bad sample or shard is an error instead of a counted skip. */
  strict: boolean;
  /** Class count: labels outside `[0, labels)` are `bad_label` (else outside int32 / < 0). */
  labels?: number;
  /** Continue from this position (a `position` of an earlier run's batch) instead of the start. */
  start?: TrainCursor;
}

/**
 * Where a train producer stands right after a batch, in terms of its own visit sequence
 * (`trainShardVisits` for its slice): enough to continue with the same next batch without
 * decoding anything that came before.
 */
export interface TrainCursor {
  /** Index of the visit (in this worker's shard order) being read. */
  visit: number;
  /** Samples of that visit already read. */
  read: number;
  /** Every visit was read (a finite pass draining its shuffle buffer). */
  exhausted: boolean;
  /** The shuffle buffer, its samples named `[visit, sample index]`. */
  buffer: ShuffleState<[number, number]>;
  /** A sample whose augmented copies straddle the batch end: `[visit, index, copies done]`. */
  partial: [number, number, number] | null;
}

export interface ValidProducerConfig {
  mode: "valid";
  shards: string[];
  /** Indices into `shards`, in the order this worker reads them, with their rank on the host. */
  assigned: { shard: number; rank: number }[];
  /** With `hostSplit: "samples"`: keep only the samples this host owns. */
  owner?: { processIndex: number; processCount: number };
  chunkSize: number;
  transform: TransformSpec;
  open: OpenOptions;
  withKeys: boolean;
  strict: boolean;
  labels?: number;
}

export type ProducerConfig = TrainProducerConfig | ValidProducerConfig;

export type ProducerMessage =
  /** A train batch; `position` continues right after it. */
  | { type: "batch"; batch: Batch; stats: StatsDelta; position: TrainCursor }
  /** Part of the shard ranked `rank` on this host; `last` closes it with its sample count. */
  | {
    type: "chunk";
    rank: number;
    batch: Batch;
    last: boolean;
    shardSamples: number;
    stats: StatsDelta;
  }
  | { type: "stats"; stats: StatsDelta };

// Consecutive unreadable shards after which a worker gives up ("no shard can be read").
const MAX_CONSECUTIVE_SHARD_FAILURES = 16;

/** `signal` stops the shard reads under way (a `pipe:` command's process group is killed). */
export function runProducer(
  config: ProducerConfig,
  signal?: AbortSignal,
): AsyncGenerator<ProducerMessage> {
  return config.mode === "train" ? trainProducer(config, signal) : validProducer(config, signal);
}

async function* trainProducer(
  cfg: TrainProducerConfig,
  signal?: AbortSignal,
): AsyncGenerator<ProducerMessage> {
  const transform = await loadTransform(cfg.transform);
  const size = transformImageSize(cfg.transform);
  const stats = new StatsAccumulator();
  const { processIndex: h, workerIndex: w } = cfg.slice;
  const shuffleRng = Rng.fromSeed(cfg.shuffleSeed).child(1, h, w);
  const start = cfg.start;
  const restore = start ? await restoreSamples(cfg, start, stats, signal) : undefined;
  let shuffle = new ShuffleBuffer<Visited>(shuffleRng, cfg.shuffleBuffer, cfg.shuffleInitial);
  const augment = Rng.fromSeed(cfg.augmentSeed);
  const repeats = Math.max(1, cfg.augmentRepeats);
  const newBatch = () => new BatchBuilder(cfg.batchSize, size, repeats, cfg.withKeys);
  let batch = newBatch();
  // The read position: the visit being read and how many of its samples were read.
  let visit = start?.visit ?? 0, read = start?.read ?? 0, exhausted = start?.exhausted ?? false;
  const position = (partial: TrainCursor["partial"]): TrainCursor => ({
    visit,
    read,
    exhausted,
    buffer: shuffle.state((v) => [v.visit, v.sample.index]),
    partial,
  });

  // Decodes one sample and adds its augmented copies from `first` on; yields every batch that fills.
  const emit = async function* (item: Visited, first = 0): AsyncGenerator<ProducerMessage> {
    const decoded = await decodeSample(item.sample, stats, cfg, item.url);
    if (!decoded) return;
    for (let k = first; k < repeats; k++) {
      const rng = augment.child(2, item.epoch, item.shard, item.sample.index, k);
      const img = applyTransform(transform, decoded.image, rng, size, item, stats, cfg.strict);
      if (img === null) return;
      batch.add(img, decoded.label, item.sample.key);
      if (batch.full) {
        const partial: TrainCursor["partial"] = k + 1 < repeats
          ? [item.visit, item.sample.index, k + 1]
          : null;
        yield {
          type: "batch",
          batch: batch.finish(),
          stats: stats.take(),
          position: position(partial),
        };
        batch = newBatch();
      }
    }
  };

  // A restored run: the buffer's samples (read again, not decoded) and the straddling sample.
  let pending = restore;
  const finishRestore = async function* (): AsyncGenerator<ProducerMessage> {
    if (!pending) return;
    const r = pending;
    pending = undefined;
    const held = r.buffer.items.map(([v, i]) => r.lookup(v, i));
    shuffle = ShuffleBuffer.restore(
      shuffleRng,
      cfg.shuffleBuffer,
      cfg.shuffleInitial,
      r.buffer,
      held,
    );
    if (r.partial) yield* emit(r.lookup(r.partial[0], r.partial[1]), r.partial[2]);
  };

  if (!exhausted) {
    const visits = trainShardVisits(cfg.shards.length, cfg.shuffleSeed, cfg.slice, cfg.epochs);
    const from = { visit, read, keep: restore?.keep };
    for await (const item of readVisits(visits, cfg, stats, from, signal)) {
      yield* finishRestore();
      if (item === null) {
        if (stats.hasSkips) yield { type: "stats", stats: stats.take() };
        continue;
      }
      visit = item.visit;
      read = item.sample.index + 1;
      const out = shuffle.push(item);
      if (out) yield* emit(out);
      // Report skips as they happen, so that a stream of nothing but bad samples fails fast.
      if (stats.hasSkips) yield { type: "stats", stats: stats.take() };
    }
    exhausted = true;
  }
  yield* finishRestore();
  for (const out of shuffle.drain()) {
    yield* emit(out);
    if (stats.hasSkips) yield { type: "stats", stats: stats.take() };
  }
  if (batch.count > 0) {
    yield { type: "batch", batch: batch.finish(), stats: stats.take(), position: position(null) };
  } else yield { type: "stats", stats: stats.take() };
}

/**
 * The samples a restored producer needs again: those its shuffle buffer held and the one whose
 * copies straddled the batch end. Earlier visits are read here (only up to their last needed
 * sample); samples of the current visit are kept while `readVisits` skips over them.
 */
async function restoreSamples(
  cfg: TrainProducerConfig,
  start: TrainCursor,
  stats: StatsAccumulator,
  signal?: AbortSignal,
) {
  const wanted = new Map<number, Set<number>>();
  const want = (v: number, i: number) => {
    if (!wanted.has(v)) wanted.set(v, new Set());
    wanted.get(v)!.add(i);
  };
  for (const [v, i] of start.buffer.items) want(v, i);
  if (start.partial) want(start.partial[0], start.partial[1]);
  const found = new Map<string, Visited>();
  const keep = (item: Visited) => {
    if (wanted.get(item.visit)?.has(item.sample.index)) {
      found.set(`${item.visit}:${item.sample.index}`, item);
    }
  };
  let v = 0;
  for (
    const { epoch, shard } of trainShardVisits(
      cfg.shards.length,
      cfg.shuffleSeed,
      cfg.slice,
      cfg.epochs,
    )
  ) {
    if (v > start.visit || v === start.visit && !start.exhausted) break;
    const need = wanted.get(v);
    if (need) {
      const url = cfg.shards[shard];
      const last = Math.max(...need);
      try {
        for await (const sample of readShard(url, cfg.open, signal)) {
          keep({ visit: v, epoch, shard, url, sample });
          if (sample.index >= last) break;
        }
      } catch (e) {
        if (!(e instanceof ShardError)) throw e;
        stats.skip(e.reason, e.message);
      }
    }
    v++;
  }
  return {
    buffer: start.buffer,
    partial: start.partial,
    keep,
    lookup(visit: number, index: number): Visited {
      const item = found.get(`${visit}:${index}`);
      if (!item) {
        throw new Error(
          `cannot restore the data position: sample ${index} of visit ${visit} could not be read again`,
        );
      }
      return item;
    },
  };
}

async function* validProducer(
  cfg: ValidProducerConfig,
  signal?: AbortSignal,
): AsyncGenerator<ProducerMessage> {
  const transform = await loadTransform(cfg.transform);
  const size = transformImageSize(cfg.transform);
  const stats = new StatsAccumulator();
  for (const { shard, rank } of cfg.assigned) {
    const url = cfg.shards[shard];
    let chunk = new BatchBuilder(cfg.chunkSize, size, 1, cfg.withKeys);
    let shardSamples = 0, mine = 0, usable = 0;
    try {
      for await (const sample of readShard(url, cfg.open, signal)) {
        shardSamples++;
        if (
          cfg.owner &&
          sampleOwner(shard, sample.index, cfg.owner.processCount) !== cfg.owner.processIndex
        ) {
          continue;
        }
        mine++;
        const item = { visit: 0, epoch: 0, shard, url, sample };
        const decoded = await decodeSample(sample, stats, cfg, url);
        const img = decoded &&
          applyTransform(transform, decoded.image, undefined, size, item, stats, cfg.strict);
        if (!decoded || img === null) {
          yield { type: "stats", stats: stats.take() };
          continue;
        }
        usable++;
        chunk.add(img, decoded.label, sample.key);
        if (chunk.full) {
          yield {
            type: "chunk",
            rank,
            batch: chunk.finish(),
            last: false,
            shardSamples: 0,
            stats: stats.take(),
          };
          chunk = new BatchBuilder(cfg.chunkSize, size, 1, cfg.withKeys);
        }
      }
      stats.shard("whole");
    } catch (e) {
      if (!(e instanceof ShardError) || cfg.strict) throw e;
      stats.shard(shardSamples > 0 ? "partial" : "failed");
      stats.skip(e.reason, e.message);
    }
    if (mine > 0 && usable === 0) stats.unusableShard();
    yield {
      type: "chunk",
      rank,
      batch: chunk.finish(),
      last: true,
      shardSamples,
      stats: stats.take(),
    };
  }
}

interface Visited {
  /** Index of the visit in the worker's shard order. */
  visit: number;
  epoch: number;
  shard: number;
  url: string;
  sample: RawSample;
}

/**
 * Samples of the visited shards; null after a shard failed (so the caller can report). Starts at
 * `from`: earlier visits are skipped by index without opening them, and the first `read` samples
 * of visit `from.visit` are skipped without decoding (handed to `keep`, which may hold some).
 */
async function* readVisits(
  visits: Iterable<{ epoch: number; shard: number }>,
  cfg: TrainProducerConfig,
  stats: StatsAccumulator,
  from: { visit: number; read: number; keep?: (item: Visited) => void },
  signal?: AbortSignal,
): AsyncGenerator<Visited | null> {
  let consecutiveFailures = 0, everRead = from.visit > 0 || from.read > 0;
  let lastError = "";
  let visit = -1;
  for (const { epoch, shard } of visits) {
    if (++visit < from.visit) continue;
    const url = cfg.shards[shard];
    const skip = visit === from.visit ? from.read : 0;
    let n = 0;
    try {
      for await (const sample of readShard(url, cfg.open, signal)) {
        n++;
        const item = { visit, epoch, shard, url, sample };
        if (sample.index < skip) from.keep?.(item);
        else yield item;
      }
      stats.shard("whole");
      consecutiveFailures = 0;
      everRead = true;
    } catch (e) {
      if (!(e instanceof ShardError) || cfg.strict) throw e;
      stats.shard(n > 0 ? "partial" : "failed");
      stats.skip(e.reason, e.message);
      lastError = e.message;
      if (n > 0) {
        consecutiveFailures = 0;
        everRead = true;
      } else if (
        !everRead &&
        ++consecutiveFailures >= Math.min(cfg.shards.length, MAX_CONSECUTIVE_SHARD_FAILURES)
      ) {
        throw new DataError(
          `no shard could be read: the first ${consecutiveFailures} shards this worker tried ` +
            `all failed; the last: ${lastError}`,
        );
      }
      yield null;
    }
  }
}

/** Decoded image and label, or null after counting the skip (throws when strict). */
async function decodeSample(
  sample: RawSample,
  stats: StatsAccumulator,
  { strict, labels }: { strict: boolean; labels?: number },
  url: string,
): Promise<{ image: RGBImage; label: number } | null> {
  let reason: SkipReason;
  let message: string;
  try {
    if (sample.problem) throw new SampleError("duplicate_member", sample.problem);
    requireParts(sample);
    const label = parseLabel(sample, labels);
    const [ext, bytes] = imageBytes(sample);
    try {
      const image = await decodeImage(bytes);
      stats.sample();
      return { image, label };
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      throw new SampleError("image_decode", `sample "${sample.key}": ".${ext}" ${e.message}`);
    }
  } catch (e) {
    if (!(e instanceof SampleError)) throw e;
    reason = e.reason;
    message = `${url}: ${e.message}`;
    // Members lost to the shard's own failure, which is counted (and raised when strict).
    if (sample.cutShort && (reason === "missing_label" || reason === "missing_image")) return null;
  }
  if (strict) throw new DataError(message);
  stats.skip(reason, message);
  return null;
}

function applyTransform(
  transform: SampleTransform | undefined,
  img: RGBImage,
  rng: Rng | undefined,
  size: number,
  item: Visited,
  stats: StatsAccumulator,
  strict: boolean,
): RGBImage | undefined | null {
  if (!transform) return undefined;
  let message: string;
  try {
    const out = transform(img, rng ?? Rng.fromSeed(0));
    if (out.width === size && out.height === size) return out;
    message = `transform gave ${out.width}x${out.height}, expected ${size}x${size}`;
  } catch (e) {
    message = `transform failed: ${(e as Error).message}`;
  }
  message = `${item.url}: sample "${item.sample.key}": ${message}`;
  if (strict) throw new DataError(message);
  stats.skip("transform", message);
  return null;
}
