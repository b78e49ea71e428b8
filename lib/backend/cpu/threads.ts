/**
 * A pool of worker threads for the CPU backend. A job (one large matmul or fused loop) is cut
 * into chunks (task records, task_records.ts); the calling thread and the workers claim chunks from a
 * shared counter until none is left, all on the same shared wasm memory. Claiming keeps a busy
 * or descheduled worker from holding up the caller: it simply does more chunks itself, so on a
 * loaded machine the pool costs little. Workers are unref'd, so an idle pool never keeps the
 * process alive.
 *
 * Thread count: DEIT3_CPU_THREADS, else navigator.hardwareConcurrency (at most 8); 1 disables
 * the pool.
 */
import { Worker } from "node:worker_threads";
import { MAX_CHUNKS, TASK_INTS } from "./task_records.ts";

/** Control block layout (i32 words); chunk records follow from C.records. */
export const C = {
  /** Bumped per job; workers wait on it. */
  seq: 0,
  /** The claim word of the current job: tag, chunk count, next index (packClaim). */
  claim: 1,
  /** Chunks finished (by anyone) in the current job. */
  completed: 2,
  /** Set when a worker's chunk threw. */
  error: 3,
  memory: 4,
  records: 8,
} as const;

/**
 * A job's claim word: its tag (the low 18 bits of its seq), its chunk count and the index of
 * the next unclaimed chunk, 7 bits each. A worker claims with one compare-and-swap on this word
 * alone, so a worker that wakes late, while the caller is already laying out the next job, can
 * never claim a chunk of a job it did not see whole (the cause of issue 11's stalls: workers
 * read the chunk count from a separate word, which the next job had already changed, and claimed
 * a chunk past the end of an exhausted job, whose completion then made the next job's count
 * overshoot; the caller waited for an exact count until the 5-minute timeout).
 */
export function packClaim(tag: number, chunks: number, next: number): number {
  return (((tag & TAG_MASK) << 14) | (chunks << 7) | next) | 0;
}

/** Tags are the low 18 bits of the job seq. */
export const TAG_MASK = 0x3ffff;

/** Wait this long for the last chunk before declaring a worker lost. */
const JOB_TIMEOUT_MS = 300_000;
/** A step pauses splitting while its split runs take this fraction of its whole runs or more. */
const PAUSE_ABOVE = 0.9;
/** Calls of a step run whole during a pause. */
const PAUSE_JOBS = 20;
/** Every this many calls a step runs whole once, timed, to compare with its split runs. */
const PROBE_EVERY = 16;
/** The caller polls the completion count this long before it blocks on it. */
const SPIN_MS = 1;
/** Wait this long for workers to load a memory. */
const REGISTER_TIMEOUT_MS = 30_000;

export class WorkerPool {
  static #shared: WorkerPool | null | undefined;

  /** The process-wide pool, or null on one core (or when workers cannot start). */
  static shared(): WorkerPool | null {
    if (WorkerPool.#shared === undefined) WorkerPool.#shared = WorkerPool.#create();
    return WorkerPool.#shared;
  }

  /** Threads that run chunks: the caller plus the workers. */
  readonly threads: number;
  readonly #workers: Worker[];
  readonly #control: Int32Array;
  #nextId = 1;
  #broken: string | null = null;
  /** Chunks run so far, and how many of them by the calling thread (for profiles). */
  readonly counts = {
    jobs: 0,
    chunks: 0,
    caller: 0,
    pausedJobs: 0,
    wallMs: 0,
    unsplitMs: 0,
    notifyMs: 0,
  };
  /** Per registering memory: called with true per worker ack, false when a worker is lost. */
  readonly #acks = new Map<number, (ok: boolean) => void>();

  private constructor(workers: Worker[]) {
    this.#workers = workers;
    this.threads = workers.length + 1;
    this.#control = new Int32Array(
      new SharedArrayBuffer(4 * (C.records + MAX_CHUNKS * TASK_INTS)),
    );
    workers.forEach((w, i) => {
      w.on("message", (m: { type: string; id: number }) => {
        if (m.type === "registered") this.#acks.get(m.id)?.(true);
      });
      const lost = (why: string) => {
        this.#broken ??= why;
        for (const ack of [...this.#acks.values()]) ack(false);
      };
      w.on(
        "error",
        (e: unknown) => lost(`worker thread failed: ${e instanceof Error ? e.message : e}`),
      );
      w.on("exit", () => lost("a worker thread exited"));
      // worker i is thread i + 1 (it packs GEMM panels in scratch i + 1)
      w.postMessage({ type: "start", control: this.#control.buffer, thread: i + 1 });
    });
  }

  static #create(): WorkerPool | null {
    const threads = threadCount();
    if (threads <= 1) return null;
    try {
      const url = new URL("./worker.ts", import.meta.url);
      const workers = Array.from({ length: threads - 1 }, () => {
        const w = new Worker(url);
        w.unref();
        return w;
      });
      // Stop the workers in order when this isolate finishes, rather than at process exit.
      globalThis.addEventListener("unload", () => {
        for (const w of workers) void w.terminate();
      });
      return new WorkerPool(workers);
    } catch {
      return null; // no permission to start workers, or no worker support
    }
  }

  /**
   * Loads the GEMM, fused-loop and attention modules on `memory` in every worker (`native`: the GEMM is
   * the native BLAS, as on the calling thread). Resolves to the
   * memory's id once all have them, or to null if they fail to (then run everything on the
   * calling thread).
   */
  register(
    memory: WebAssembly.Memory,
    gemm: WebAssembly.Module,
    fused: WebAssembly.Module | null,
    native: boolean,
    attention: WebAssembly.Module | null = null,
  ): Promise<number | null> {
    const id = this.#nextId++;
    let left = this.#workers.length;
    if (this.#broken) return Promise.resolve(null);
    return new Promise((resolve) => {
      const finish = (result: number | null) => {
        clearTimeout(timer);
        this.#acks.delete(id);
        resolve(result);
      };
      const timer = setTimeout(() => finish(null), REGISTER_TIMEOUT_MS);
      this.#acks.set(id, (ok) => {
        if (!ok) finish(null);
        else if (--left === 0) finish(this.#broken ? null : id);
      });
      for (const w of this.#workers) {
        w.postMessage({ type: "register", id, memory, gemm, fused, native, attention });
      }
    });
  }

  unregister(id: number): void {
    for (const w of this.#workers) w.postMessage({ type: "unregister", id });
  }

  /**
   * Runs one call of a step (`site`): split into `chunks` on the pool, or `whole` on this
   * thread, as the site's timings say. Every PROBE_EVERY calls (the first included) the step
   * runs whole and timed; the other calls run split and timed, notify included. When its split
   * runs take PAUSE_ABOVE of its whole runs or more (the other cores are busy with other
   * processes, or the job is too small for a hand-off to pay), the step runs whole for
   * PAUSE_JOBS calls, then tries again. Each step decides for itself, and results never depend
   * on the choice (a native GEMM runs the same chunks either way).
   */
  job(
    id: number,
    site: SplitSite,
    chunks: Int32Array[],
    local: (chunk: Int32Array) => void,
    whole: () => void,
  ): void {
    const t0 = performance.now();
    if (site.paused > 0 || site.calls++ % PROBE_EVERY === 0) {
      if (site.paused > 0) {
        site.paused--;
        this.counts.pausedJobs++;
      }
      whole();
      site.whole = ema(site.whole, performance.now() - t0);
      return;
    }
    this.run(id, chunks, local);
    site.split = ema(site.split, performance.now() - t0);
    if (site.split >= PAUSE_ABOVE * site.whole) {
      site.paused = PAUSE_JOBS;
      site.split = NaN; // start afresh when trying again
    }
  }

  /**
   * Runs the chunks (task records, at most MAX_CHUNKS) of one job for the memory registered as
   * `id`: this thread claims and runs chunks with `local` alongside the workers, then waits
   * for the chunks the workers claimed.
   */
  run(id: number, chunks: Int32Array[], local: (chunk: Int32Array) => void): void {
    const t = this.#control;
    const n = chunks.length;
    if (n > MAX_CHUNKS) throw new Error(`cpu: ${n} chunks in one job (at most ${MAX_CHUNKS})`);
    // The previous job's claim word is exhausted (its index reached its own count), so no
    // worker can claim anything while the records are rewritten.
    t[C.memory] = id;
    chunks.forEach((c, i) => t.set(c, C.records + i * TASK_INTS));
    t[C.error] = 0;
    Atomics.store(t, C.completed, 0);
    const seq = (t[C.seq] + 1) | 0, tag = seq & TAG_MASK;
    Atomics.store(t, C.claim, packClaim(tag, n, 0));
    Atomics.store(t, C.seq, seq);
    const tn = performance.now();
    Atomics.notify(t, C.seq);
    const t0 = performance.now();
    this.counts.notifyMs += t0 - tn;
    let mine = 0, expected = n;
    let failure: unknown = null;
    try {
      for (;;) {
        const i = claim(t, tag);
        if (i < 0) break;
        local(chunks[i]);
        mine++;
        Atomics.add(t, C.completed, 1);
      }
    } catch (e) {
      // Stop the workers claiming more, and wait for the chunks they hold before throwing, so
      // that none of them finishes into the next job's count.
      failure = e;
      expected = exhaust(t, tag) - 1; // this thread's failed chunk never completes
    }
    const start = performance.now();
    // the workers' last chunks are usually microseconds away: poll a little before blocking
    spinUntil(() => Atomics.load(t, C.completed) === expected, SPIN_MS);
    for (;;) {
      const done = Atomics.load(t, C.completed);
      if (done === expected) break;
      if (done > expected) {
        throw new Error(`cpu: worker pool counted ${done} finished chunks of ${expected} (bug)`);
      }
      Atomics.wait(t, C.completed, done, 50);
      if (performance.now() - start > JOB_TIMEOUT_MS) {
        throw new Error(`cpu: ${this.#broken ?? "a worker thread did not finish its chunk"}`);
      }
    }
    if (failure !== null) throw failure;
    if (t[C.error]) throw new Error("cpu: a worker thread failed on its chunk");
    this.counts.jobs++;
    this.counts.chunks += n;
    this.counts.caller += mine;
    if (mine > 0) {
      this.counts.wallMs += performance.now() - t0;
      this.counts.unsplitMs += ((start - t0) / mine) * n;
    }
  }
}

/** The splitting state of one step (see WorkerPool.job). */
export class SplitSite {
  calls = 0;
  /** Calls left to run whole before trying threads again. */
  paused = 0;
  /** Moving averages of its split and whole run times (ms; NaN before the first). */
  split = NaN;
  whole = NaN;
}

function ema(avg: number, x: number): number {
  return Number.isNaN(avg) ? x : 0.7 * avg + 0.3 * x;
}

/** Polls until `done()`, for at most `ms`; whether it was done. */
export function spinUntil(done: () => boolean, ms: number): boolean {
  const until = performance.now() + ms;
  for (;;) {
    for (let k = 0; k < 256; k++) if (done()) return true;
    if (performance.now() >= until) return done();
  }
}

/**
 * Claims the next chunk of the job tagged `tag`: its index, or -1 when the job has none left
 * (or is no longer the current one).
 */
export function claim(t: Int32Array, tag: number): number {
  for (;;) {
    const v = Atomics.load(t, C.claim);
    if (v >>> 14 !== (tag & TAG_MASK)) return -1;
    const chunks = (v >>> 7) & 0x7f, i = v & 0x7f;
    if (i >= chunks) return -1;
    if (Atomics.compareExchange(t, C.claim, v, v + 1) === v) return i;
  }
}

/** Marks the job tagged `tag` as having no chunks left; returns how many had been claimed. */
export function exhaust(t: Int32Array, tag: number): number {
  for (;;) {
    const v = Atomics.load(t, C.claim);
    const chunks = (v >>> 7) & 0x7f, i = v & 0x7f;
    if (v >>> 14 !== (tag & TAG_MASK) || i >= chunks) return Math.min(i, chunks);
    if (Atomics.compareExchange(t, C.claim, v, packClaim(tag, chunks, chunks)) === v) return i;
  }
}

/** Threads the pool uses (the caller included), from DEIT3_CPU_THREADS or the core count. */
export function threadCount(): number {
  let env: string | undefined;
  try {
    env = Deno.env.get("DEIT3_CPU_THREADS");
  } catch {
    env = undefined; // no --allow-env
  }
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`DEIT3_CPU_THREADS must be a positive integer, got "${env}"`);
    }
    return n;
  }
  return Math.min(8, navigator.hardwareConcurrency || 1);
}
