/**
 * Sample order: which shards a loader worker reads, and the shuffle buffer.
 *
 * Train: epoch e visits the shards in the order `Rng(seed).child(0, e).permutation(S)` (a new
 * order every epoch). Positions of the endless sequence epoch 0, epoch 1, ... are dealt to hosts
 * round-robin, and each host's positions to its workers round-robin, so every host and worker
 * sees every shard over time whatever the counts. The original shuffles the list once, cycles it
 * and passes the stream of names through webdataset's `detshuffle` buffer (1000, initial 100)
 * before slicing; its order is random over time too, but resuming it would need that buffer's
 * state, where a position here resumes in O(1) (README, "Order and randomness").
 */
import { Rng } from "../ir/rng.ts";

export interface ShardVisit {
  epoch: number;
  /** Index of the shard in the expanded shard list. */
  shard: number;
}

export interface Slice {
  processIndex: number;
  processCount: number;
  workerIndex: number;
  workerCount: number;
}

/** The shards one worker of one host reads, in order, for `epochs` epochs (default: forever). */
export function* trainShardVisits(
  shardCount: number,
  seed: number,
  slice: Slice,
  epochs = Infinity,
): Generator<ShardVisit> {
  const { processIndex: h, processCount: H, workerIndex: w, workerCount: W } = slice;
  checkSlice(slice);
  if (shardCount < 1) return;
  const root = Rng.fromSeed(seed);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = root.child(0, epoch).permutation(shardCount);
    for (let pos = 0; pos < shardCount; pos++) {
      const g = epoch * shardCount + pos;
      if (g % H !== h || Math.floor(g / H) % W !== w) continue;
      yield { epoch, shard: order[pos] };
    }
  }
}

/** The shard positions (in list order) a host reads in validation with `hostSplit: "shards"`. */
export function hostShards(
  shardCount: number,
  processIndex: number,
  processCount: number,
): number[] {
  const out: number[] = [];
  for (let s = processIndex; s < shardCount; s += processCount) out.push(s);
  return out;
}

/**
 * Owner host of sample `index` of shard `shard` with `hostSplit: "samples"`: round-robin within
 * the shard, starting one host further for each shard so that remainders spread out.
 */
export function sampleOwner(shard: number, index: number, processCount: number): number {
  return (shard + index) % processCount;
}

/** How many of a shard's `n` samples host `h` owns under `sampleOwner`. */
export function ownedCount(shard: number, n: number, h: number, processCount: number): number {
  const first = ((h - shard) % processCount + processCount) % processCount;
  return first >= n ? 0 : Math.floor((n - 1 - first) / processCount) + 1;
}

/** What restores a ShuffleBuffer: its held items in order, its draws so far, its fill phase. */
export interface ShuffleState<T> {
  items: T[];
  draws: number;
  pending: boolean;
}

/**
 * webdataset's shuffle buffer: items go in; once `initial` are held, each new item lets one
 * random held item out; at the end the rest come out in random order. Holds at most `size`.
 */
export class ShuffleBuffer<T> {
  #items: T[] = [];
  #rng: Rng;
  #size: number;
  #initial: number;
  #pending = false;

  constructor(rng: Rng, size: number, initial = Math.min(size, 100)) {
    if (!(size >= 1)) throw new Error(`shuffle buffer size must be >= 1, got ${size}`);
    this.#rng = rng;
    this.#size = size;
    this.#initial = Math.max(1, Math.min(initial, size));
  }

  /** A buffer in the state `state()` gave, holding `items` (the state's items, looked up). */
  static restore<T>(
    rng: Rng,
    size: number,
    initial: number,
    state: ShuffleState<unknown>,
    items: T[],
  ): ShuffleBuffer<T> {
    const b = new ShuffleBuffer<T>(Rng.fromKey(rng.key, state.draws), size, initial);
    if (items.length !== state.items.length || items.length > size) {
      throw new Error(
        `shuffle buffer state holds ${state.items.length} items, got ${items.length}`,
      );
    }
    b.#items = items.slice();
    b.#pending = state.pending;
    return b;
  }

  /** The state to restore this buffer from, with each held item mapped by `id`. */
  state<U>(id: (item: T) => U): ShuffleState<U> {
    return { items: this.#items.map(id), draws: this.#rng.counter, pending: this.#pending };
  }

  /** Adds an item; returns one to pass on, or undefined while still filling. */
  push(item: T): T | undefined {
    this.#items.push(item);
    // While below `size`, webdataset reads two items per one it lets out, so the buffer grows.
    if (this.#items.length < this.#size && !this.#pending) {
      this.#pending = true;
      return undefined;
    }
    this.#pending = false;
    return this.#items.length >= this.#initial ? this.#take() : undefined;
  }

  /** Takes the remaining items in random order. */
  *drain(): Generator<T> {
    while (this.#items.length) yield this.#take();
  }

  get length(): number {
    return this.#items.length;
  }

  #take(): T {
    const items = this.#items;
    const i = Math.floor(this.#rng.uniform() * items.length);
    const out = items[i];
    items[i] = items[items.length - 1];
    items.pop();
    return out;
  }
}

function checkSlice(s: Slice): void {
  const ok = (i: number, n: number) =>
    Number.isInteger(n) && n >= 1 && Number.isInteger(i) && i >= 0 && i < n;
  if (!ok(s.processIndex, s.processCount)) {
    throw new Error(`process index ${s.processIndex} is not in [0, ${s.processCount})`);
  }
  if (!ok(s.workerIndex, s.workerCount)) {
    throw new Error(`worker index ${s.workerIndex} is not in [0, ${s.workerCount})`);
  }
}
