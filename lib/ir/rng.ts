import { threefry2x32 } from "./threefry.ts";

/**
 * A seeded, splittable host random generator built on threefry2x32.
 *
 * `Rng.fromSeed(seed).child(a, b, ...)` derives an independent stream for a path of integers,
 * e.g. (epoch, sample index), so that the same path always reproduces the same draws regardless
 * of which worker or in which order samples are processed.
 */
export class Rng {
  #k0: number;
  #k1: number;
  #counter = 0;

  private constructor(k0: number, k1: number) {
    this.#k0 = k0 >>> 0;
    this.#k1 = k1 >>> 0;
  }

  /** As `jax.random.PRNGKey(seed)`: key (hi32(seed), lo32(seed)). */
  static fromSeed(seed: number): Rng {
    if (!Number.isSafeInteger(seed)) {
      throw new Error(`Rng.fromSeed: seed must be an integer, got ${seed}`);
    }
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    return new Rng(hi, seed >>> 0);
  }

  /** The stream of `key`, positioned after `counter` draws (see `counter`). */
  static fromKey(key: readonly [number, number], counter = 0): Rng {
    const r = new Rng(key[0], key[1]);
    if (!Number.isSafeInteger(counter) || counter < 0) {
      throw new Error(`Rng.fromKey: counter must be a non-negative integer, got ${counter}`);
    }
    r.#counter = counter;
    return r;
  }

  get key(): [number, number] {
    return [this.#k0, this.#k1];
  }

  /** Draws made so far: `Rng.fromKey(r.key, r.counter)` continues this stream. */
  get counter(): number {
    return this.#counter;
  }

  /** An independent stream for `path` (as repeated jax.random.fold_in). Does not advance this one. */
  child(...path: number[]): Rng {
    let k0 = this.#k0, k1 = this.#k1;
    for (const p of path) {
      if (!Number.isSafeInteger(p) || p < 0) {
        throw new Error(`Rng.child: path must be non-negative integers, got ${p}`);
      }
      // fold_in: key' = threefry(key, threefry_seed(p)), threefry_seed(p) = (hi32(p), lo32(p)).
      [k0, k1] = threefry2x32(k0, k1, Math.floor(p / 2 ** 32) >>> 0, p >>> 0);
    }
    return new Rng(k0, k1);
  }

  /** A fresh key for a traced computation; advances this stream. */
  nextKey(): [number, number] {
    return this.#next();
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const [a, b] = this.#next();
    return ((a >>> 5) * 67108864 + (b >>> 6)) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniformRange(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Integer uniform in [lo, hi] (both inclusive, as Python's random.randint). */
  randint(lo: number, hi: number): number {
    if (hi < lo) throw new Error(`Rng.randint: empty range [${lo}, ${hi}]`);
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }

  /** Gamma(shape, 1) by Marsaglia-Tsang. */
  gamma(shape: number): number {
    if (shape <= 0) throw new Error(`Rng.gamma: shape must be > 0, got ${shape}`);
    if (shape < 1) {
      return this.gamma(shape + 1) * Math.pow(this.uniform() || Number.MIN_VALUE, 1 / shape);
    }
    const d = shape - 1 / 3, c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.uniform();
      if (u < 1 - 0.0331 * x ** 4) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Beta(a, b). */
  beta(a: number, b: number): number {
    const x = this.gamma(a), y = this.gamma(b);
    return x / (x + y);
  }

  /** One element chosen uniformly, or by `weights` when given. */
  choice<T>(items: readonly T[], weights?: readonly number[]): T {
    if (items.length === 0) throw new Error("Rng.choice: no items");
    if (!weights) return items[Math.floor(this.uniform() * items.length)];
    const total = weights.reduce((s, w) => s + w, 0);
    let r = this.uniform() * total;
    for (let i = 0; i < items.length; i++) {
      r -= weights[i];
      if (r < 0) return items[i];
    }
    return items[items.length - 1];
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  #next(): [number, number] {
    const c = this.#counter++;
    return threefry2x32(this.#k0, this.#k1, Math.floor(c / 2 ** 32) >>> 0, c >>> 0);
  }
}
