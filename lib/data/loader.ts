/**
 * The data loaders the training loop iterates.
 *
 * Train (`createTrainLoader`): endless, shuffled, augmented batches. Each of `workers` Deno
 * Workers reads its own slice of the shards (per host, then per worker), shuffles samples in a
 * buffer, decodes, augments `augmentRepeats` copies of each sample and builds whole batches,
 * which it transfers without copying. Batches are taken from the workers round-robin, as
 * PyTorch's DataLoader does, so the order is fixed by the seed and the worker count. Each
 * augmented copy draws from `Rng(augmentSeed).child(2, epoch, shard, sample, copy)`, so a sample
 * is augmented the same way whatever the worker or host count.
 *
 * Valid (`createValidLoader`): one pass in shard order, every sample once across hosts, the
 * last batch padded (label -1, mask 0), every host yielding the same number of batches.
 *
 * Bad input in training is skipped and counted by reason (`stats()`, and the `log` callback);
 * the loader fails when more than `maxSkipFraction` of samples or shards are bad, or when no
 * shard can be read. Validation is strict unless `strict: false`.
 */
import type { Batch } from "./batch.ts";
import type { OpenOptions } from "./open.ts";
import { checkLocalShards } from "./open_file.ts";
import { adoptPipeGroup, killPipeGroup, releasePipeGroup } from "./open_pipe.ts";
import { hostShards, ownedCount } from "./order.ts";
import {
  type ProducerConfig,
  type ProducerMessage,
  runProducer,
  type TrainCursor,
} from "./producer.ts";
import { expandShardSpec } from "./spec.ts";
import {
  addDelta,
  DataError,
  DEFAULT_MAX_BAD_FRACTION,
  emptyStats,
  formatStats,
  judgeStats,
  type LoaderStats,
  type StatsDelta,
} from "./stats.ts";
import { transformImageSize, type TransformSpec } from "./transform.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

export interface LoaderOptions {
  /** A shard spec (braces, `::`, `$VARS`) or the expanded list. */
  shards: string | string[];
  /** Per-host batch size. */
  batchSize: number;
  transform: TransformSpec;
  /** Worker threads; 0 runs everything in the calling thread. Default 1. */
  workers?: number;
  processIndex?: number;
  processCount?: number;
  open?: OpenOptions;
  /** Bad samples are an error instead of a counted skip. Default: false (train), true (valid). */
  strict?: boolean;
  /**
   * Fail when more than this fraction of samples, or of shard visits, is bad (a shard cut short
   * counts). Default `DEFAULT_MAX_BAD_FRACTION` (0.01, the `max-bad-fraction` default).
   */
  maxSkipFraction?: number;
  /** Class count: labels outside `[0, labels)` are skipped as `bad_label`. */
  labels?: number;
  /** ... but only once this many samples were seen (or at the end of a pass). Default 1000. */
  minSamplesForFraction?: number;
  /** Batches in flight per worker (train; default 2), or 64-sample chunks (valid; default 16). */
  prefetch?: number;
  /** Put sample keys in the batches. */
  withKeys?: boolean;
  /** Where skip reports and summaries go (default: console.warn). */
  log?: (line: string) => void;
}

export interface TrainLoaderOptions extends LoaderOptions {
  shuffleSeed?: number;
  /** Seed of the augmentation draws; default `shuffleSeed`. */
  augmentSeed?: number;
  augmentRepeats?: number;
  shuffleBuffer?: number;
  shuffleInitial?: number;
  /** Passes over the data; default Infinity (cycle forever). A last partial batch is padded. */
  epochs?: number;
  /** Continue right after the batch this position was taken at (`DataLoader.position()`). */
  start?: TrainPosition;
}

/**
 * Where a train loader stands: each worker's cursor after the last batch taken from it, and
 * which worker gives the next batch. Plain data (JSON-safe), saved in the training state. The
 * batch order depends on the worker count (workers take turns), so a position holds only for
 * the same worker count, shard list, seeds, batch size and augmentation repeats.
 */
export interface TrainPosition {
  workers: number;
  /** The worker whose batch comes next. */
  next: number;
  /** Per worker: its cursor after its last batch taken, or null when none was taken yet. */
  cursors: (TrainCursor | null)[];
}

export interface ValidLoaderOptions extends LoaderOptions {
  /**
   * How hosts share the validation set. `samples` (default): every host reads every shard and
   * keeps samples round-robin; hosts know each other's counts, so all yield the same number of
   * batches without talking. `shards`: hosts read disjoint shards (less reading); the batch
   * count can then differ between hosts unless `steps` is given.
   */
  hostSplit?: "samples" | "shards";
  /** Yield exactly this many batches, padding with empty ones (error if the data needs more). */
  steps?: number;
}

export interface DataLoader extends AsyncIterable<Batch>, AsyncDisposable {
  /** Totals so far: samples read, skips by reason, shards. */
  stats(): LoaderStats;
  /** Stops the workers. Safe to call twice. */
  close(): Promise<void>;
  /** Image side length of the batches (0 when decoding without a transform). */
  readonly imageSize: number;
  /** The expanded shard list. */
  readonly shards: readonly string[];
  /** Train loaders: the position right after the last batch taken (see TrainPosition). */
  position(): TrainPosition | undefined;
}

export function createTrainLoader(o: TrainLoaderOptions): DataLoader {
  const shards = shardList(o.shards);
  const workers = workerCount(o.workers);
  const shuffleSeed = o.shuffleSeed ?? 0;
  checkBatchSize(o.batchSize);
  const n = Math.max(1, workers);
  const start = o.start;
  if (start && (start.workers !== n || start.cursors.length !== n || !(start.next < n))) {
    throw new Error(
      `the data position was saved with ${start.workers} loader worker(s), this loader has ${n}: ` +
        "the batch order depends on the worker count, so it cannot continue from there",
    );
  }
  const configs: ProducerConfig[] = Array.from({ length: n }, (_, w) => ({
    mode: "train",
    shards,
    slice: {
      processIndex: o.processIndex ?? 0,
      processCount: o.processCount ?? 1,
      workerIndex: w,
      workerCount: Math.max(1, workers),
    },
    shuffleSeed,
    augmentSeed: o.augmentSeed ?? shuffleSeed,
    batchSize: o.batchSize,
    augmentRepeats: o.augmentRepeats ?? 1,
    shuffleBuffer: o.shuffleBuffer ?? 1000,
    shuffleInitial: o.shuffleInitial ?? 100,
    epochs: o.epochs ?? Infinity,
    transform: o.transform,
    open: o.open ?? {},
    withKeys: o.withKeys ?? false,
    strict: o.strict ?? false,
    labels: o.labels,
    start: start?.cursors[w] ?? undefined,
  }));
  const run = new Run(o, shards, configs, workers === 0, Math.max(1, o.prefetch ?? 2));
  const position: TrainPosition = start
    ? structuredClone(start)
    : { workers: n, next: 0, cursors: Array(n).fill(null) };
  return run.loader(() => trainBatches(run, position), () => structuredClone(position));
}

export function createValidLoader(o: ValidLoaderOptions): DataLoader {
  const shards = shardList(o.shards);
  const workers = workerCount(o.workers);
  checkBatchSize(o.batchSize);
  const H = o.processCount ?? 1, h = o.processIndex ?? 0;
  if (!(Number.isInteger(h) && h >= 0 && h < H)) {
    throw new Error(`process index ${h} is not in [0, ${H})`);
  }
  const split = H > 1 ? o.hostSplit ?? "samples" : "shards";
  const mine = split === "shards" ? hostShards(shards.length, h, H) : shards.map((_, i) => i);
  const n = Math.max(1, workers);
  const configs: ProducerConfig[] = Array.from({ length: n }, (_, w) => ({
    mode: "valid",
    shards,
    assigned: mine.map((shard, rank) => ({ shard, rank }))
      .filter(({ rank }) => workers === 0 || rank % n === w),
    owner: split === "samples" && H > 1 ? { processIndex: h, processCount: H } : undefined,
    chunkSize: Math.max(1, Math.min(o.batchSize, 64)),
    transform: o.transform,
    open: o.open ?? {},
    withKeys: o.withKeys ?? false,
    strict: o.strict ?? true,
    labels: o.labels,
  }));
  // Chunks in flight per worker: enough for workers to read their shards side by side.
  const run = new Run(o, shards, configs, workers === 0, Math.max(16, o.prefetch ?? 0));
  return run.loader(() => validBatches(run, o, mine, split));
}

// ---------------------------------------------------------------------------------------------

/** Batches from the workers in turn; `position` follows the batches handed on. */
async function* trainBatches(run: Run, position: TrainPosition): AsyncGenerator<Batch> {
  const live = run.sources.slice();
  for (let i = position.next; live.length > 0;) {
    const source = live[i];
    const msg = await source.next();
    if (msg === null) {
      live.splice(i, 1);
      if (i >= live.length) i = 0;
      continue;
    }
    source.credit();
    i = (i + 1) % live.length;
    if (msg.type === "batch") {
      position.cursors[run.sources.indexOf(source)] = msg.position;
      position.next = run.sources.indexOf(live[i] ?? source);
    }
    yield msg.batch;
  }
  run.finishPass();
}

async function* validBatches(
  run: Run,
  o: ValidLoaderOptions,
  mine: number[],
  split: "samples" | "shards",
): AsyncGenerator<Batch> {
  const B = o.batchSize, size = run.imageSize, px = 3 * size * size;
  const H = o.processCount ?? 1;
  const shardTotals = new Map<number, number>();
  let batch = newValidBatch(B, px, o.withKeys);
  let yielded = 0;
  const take = (): Batch => {
    const out = batch;
    batch = newValidBatch(B, px, o.withKeys);
    yielded++;
    if (o.steps !== undefined && yielded > o.steps) {
      throw new Error(`validation data needs more than steps = ${o.steps} batches of ${B}`);
    }
    return out;
  };
  for (let rank = 0; rank < mine.length; rank++) {
    const source = run.sources.length === 1
      ? run.sources[0]
      : run.sources[rank % run.sources.length];
    for (;;) {
      const msg = await source.next();
      if (msg === null || msg.type !== "chunk" || msg.rank !== rank) {
        throw new Error(
          `validation loader: shard ${mine[rank]} (${run.shards[mine[rank]]}) went missing`,
        );
      }
      source.credit();
      const chunk = msg.batch;
      for (let r = 0; r < chunk.count; r++) {
        const i = batch.count++;
        batch.labels[i] = chunk.labels[r];
        batch.mask![i] = 1;
        if (px) batch.images.set(chunk.images.subarray(r * px, (r + 1) * px), i * px);
        if (batch.keys) batch.keys[i] = chunk.keys![r];
        if (batch.count === B) yield take();
      }
      if (msg.last) {
        shardTotals.set(mine[rank], msg.shardSamples);
        break;
      }
    }
  }
  if (batch.count > 0) yield take();
  run.finishPass();
  // Every host computes every host's count from the shard sizes, so all agree on the length.
  let steps = o.steps ?? yielded;
  if (o.steps === undefined && split === "samples" && H > 1) {
    let most = 0;
    for (let host = 0; host < H; host++) {
      let c = 0;
      for (const [shard, n] of shardTotals) c += ownedCount(shard, n, host, H);
      most = Math.max(most, c);
    }
    steps = Math.ceil(most / B);
  }
  while (yielded < steps) yield take();
}

function newValidBatch(B: number, px: number, withKeys?: boolean): Batch {
  return {
    images: new Uint8Array(B * px),
    labels: new Int32Array(B).fill(-1),
    mask: new Uint8Array(B),
    count: 0,
    keys: withKeys ? new Array(B).fill("") : undefined,
  };
}

/** The running state of one loader: its sources (workers or inline producer) and its stats. */
class Run {
  readonly sources: Source[];
  readonly imageSize: number;
  #stats = emptyStats();
  #logged = 0;
  #lastSkip: string | undefined;
  #held: string[] = [];
  #fatal: Error | undefined;
  #opts: LoaderOptions;
  #log: (line: string) => void;

  constructor(
    o: LoaderOptions,
    readonly shards: string[],
    configs: ProducerConfig[],
    inline: boolean,
    prefetch: number,
  ) {
    this.#opts = o;
    this.#log = o.log ?? ((line) => console.warn(line));
    this.imageSize = transformImageSize(o.transform);
    const onStats = (d: StatsDelta) => this.#onStats(d);
    this.sources = inline
      ? [new InlineSource(configs[0], onStats)]
      : configs.map((c, i) => new WorkerSource(c, i, prefetch, onStats));
  }

  loader(
    batches: () => AsyncGenerator<Batch>,
    position: () => TrainPosition | undefined = () => undefined,
  ): DataLoader {
    let started: AsyncGenerator<Batch> | undefined;
    const close = async () => {
      // Sources first: a worker's pending batch then rejects, so a waiting iterator can finish.
      for (const s of this.sources) s.close();
      await started?.return(undefined).catch(() => {});
    };
    return {
      imageSize: this.imageSize,
      shards: this.shards,
      stats: () => structuredClone(this.#stats),
      position,
      close,
      [Symbol.asyncDispose]: close,
      [Symbol.asyncIterator]: () => {
        if (started) throw new Error("a data loader can be iterated only once");
        started = this.#guard(batches());
        return started;
      },
    };
  }

  /** At the end of a finite pass the bad fraction is checked whatever the sample count. */
  finishPass(): void {
    this.#check(true);
    if (this.#fatal) throw this.#fatal;
  }

  async *#guard(inner: AsyncGenerator<Batch>): AsyncGenerator<Batch> {
    try {
      for (;;) {
        const r = await inner.next();
        if (this.#fatal) throw this.#fatal;
        if (r.done) return;
        yield r.value;
      }
    } finally {
      await inner.return(undefined).catch(() => {});
      for (const s of this.sources) s.close();
    }
  }

  #onStats(d: StatsDelta): void {
    addDelta(this.#stats, d);
    if (d.messages.length) this.#lastSkip = d.messages[d.messages.length - 1];
    this.#held.push(...d.messages);
    this.#check(false);
    if (this.#fatal) {
      for (const s of this.sources) s.fail(this.#fatal);
      return;
    }
    // Until some shard gives a sample, skips are held back: when none ever does, the one
    // "no shard could be read" error (quoting the last) says it, not a line per shard.
    const s = this.#stats;
    if (s.shardsOk + s.shardsPartial === 0 && s.samples === 0) return;
    const lines = this.#held.splice(0);
    for (const m of lines) {
      if (this.#logged < 50) this.#log(m);
      else if (this.#logged === 50) this.#log("further skips are counted but not logged");
      this.#logged++;
    }
    if (lines.length) this.#log(`data: ${formatStats(s)}`);
  }

  #check(atEnd: boolean): void {
    if (this.#fatal) return;
    const problem = judgeStats(this.#stats, {
      maxBadFraction: this.#opts.maxSkipFraction ?? DEFAULT_MAX_BAD_FRACTION,
      minSamples: this.#opts.minSamplesForFraction ?? 1000,
      shardCount: this.shards.length,
      atEnd,
      lastSkip: this.#lastSkip,
    });
    if (problem) this.#fatal = new DataError(problem);
  }
}

type Output = Extract<ProducerMessage, { batch: Batch }>;

interface Source {
  /** The next batch or chunk; null at the end. Rejects on a worker error. */
  next(): Promise<Output | null>;
  /** Lets the source build one more. */
  credit(): void;
  fail(error: Error): void;
  close(): void;
}

/** The producer run in this thread: pulling is the backpressure. */
class InlineSource implements Source {
  #producer: AsyncGenerator<ProducerMessage>;
  #onStats: (d: StatsDelta) => void;
  #error: Error | undefined;
  // Stops a read under way: the producer may be waiting on a stalled shard, where `return()`
  // would wait too.
  #abort = new AbortController();

  constructor(config: ProducerConfig, onStats: (d: StatsDelta) => void) {
    this.#producer = runProducer(config, this.#abort.signal);
    this.#onStats = onStats;
  }

  async next(): Promise<Output | null> {
    for (;;) {
      if (this.#error) throw this.#error;
      const { value, done } = await this.#producer.next();
      if (done) return null;
      this.#onStats(value.stats);
      if (this.#error) throw this.#error;
      if (value.type !== "stats") return value;
    }
  }

  credit(): void {}

  fail(error: Error): void {
    this.#error = error;
  }

  close(): void {
    this.#abort.abort();
    this.#producer.return(undefined).catch(() => {});
  }
}

/** A producer in a Deno Worker; its messages queue here until taken. */
class WorkerSource implements Source {
  #worker: Worker;
  #queue: (Output | null)[] = [];
  #waiting: { resolve: (m: Output | null) => void; reject: (e: Error) => void } | undefined;
  #error: Error | undefined;
  #closed = false;
  #pipeGroups = new Set<number>();

  constructor(
    config: ProducerConfig,
    readonly index: number,
    prefetch: number,
    onStats: (d: StatsDelta) => void,
  ) {
    this.#worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      if (m.type === "error") {
        return this.fail(new DataError(`loader worker ${index}: ${m.message}`));
      }
      if (m.type === "end") return this.#push(null);
      if (m.type === "pipe") {
        if (m.live) {
          this.#pipeGroups.add(m.pid);
          adoptPipeGroup(m.pid);
        } else {
          this.#pipeGroups.delete(m.pid);
          releasePipeGroup(m.pid);
        }
        return;
      }
      onStats(m.stats);
      if (m.type !== "stats") this.#push(m);
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.fail(new Error(`loader worker ${index} crashed: ${e.message}`));
    };
    this.#post({ type: "start", config, credits: prefetch });
  }

  next(): Promise<Output | null> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#queue.length) return Promise.resolve(this.#queue.shift()!);
    return new Promise((resolve, reject) => this.#waiting = { resolve, reject });
  }

  credit(): void {
    this.#post({ type: "credit", n: 1 });
  }

  fail(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    this.#waiting?.reject(error);
    this.#waiting = undefined;
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
    this.#pipeGroups.forEach(killPipeGroup);
    this.#waiting?.reject(new Error(`loader worker ${this.index}: closed`));
    this.#waiting = undefined;
  }

  #push(m: Output | null): void {
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = undefined;
      w.resolve(m);
    } else {
      this.#queue.push(m);
    }
  }

  #post(m: ToWorker): void {
    if (!this.#closed) this.#worker.postMessage(m);
  }
}

function shardList(shards: string | string[]): string[] {
  const list = typeof shards === "string" ? expandShardSpec(shards) : shards.slice();
  if (list.length === 0) throw new Error("the shard list is empty");
  checkLocalShards(list, typeof shards === "string" ? shards : undefined);
  return list;
}

function workerCount(n: number | undefined): number {
  const w = n ?? 1;
  if (!Number.isInteger(w) || w < 0) throw new Error(`workers must be an integer >= 0, got ${n}`);
  return w;
}

function checkBatchSize(b: number): void {
  if (!Number.isInteger(b) || b < 1) {
    throw new Error(`batch size must be a positive integer, got ${b}`);
  }
}
