/**
 * A pool of worker threads for the CPU backend. Large matmuls are cut into slices (batch
 * items, or rows / columns), large fused loops into ranges; the calling thread runs the
 * first slice while each worker runs one more, all on the same shared wasm memory. Workers are unref'd, so an idle pool never
 * keeps the process alive. Thread count: DEIT3_CPU_THREADS, else navigator.hardwareConcurrency
 * (at most 8); 1 disables the pool.
 */
import { Worker } from "node:worker_threads";
import { F, TASK_INTS } from "./tasks.ts";

/** Wait this long for a slice before declaring the worker lost. */
const TASK_TIMEOUT_MS = 300_000;
/** Wait this long for workers to load a memory. */
const REGISTER_TIMEOUT_MS = 30_000;

export class WorkerPool {
  static #shared: WorkerPool | null | undefined;

  /** The process-wide pool, or null on one core (or when workers cannot start). */
  static shared(): WorkerPool | null {
    if (WorkerPool.#shared === undefined) WorkerPool.#shared = WorkerPool.#create();
    return WorkerPool.#shared;
  }

  /** Threads that run slices: the caller plus the workers. */
  readonly threads: number;
  readonly #workers: Worker[];
  readonly #control: Int32Array;
  #nextId = 1;
  #broken: string | null = null;
  readonly #acks = new Map<number, () => void>();

  private constructor(workers: Worker[]) {
    this.#workers = workers;
    this.threads = workers.length + 1;
    this.#control = new Int32Array(new SharedArrayBuffer(4 * TASK_INTS * workers.length));
    workers.forEach((w, slot) => {
      w.on("message", (m: { type: string; id: number }) => {
        if (m.type === "registered") this.#acks.get(m.id)?.();
      });
      w.on("error", (e: unknown) => {
        this.#broken = `worker thread failed: ${e instanceof Error ? e.message : e}`;
      });
      w.postMessage({ type: "start", control: this.#control.buffer, slot });
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
      return new WorkerPool(workers);
    } catch {
      return null; // no permission to start workers, or no worker support
    }
  }

  /**
   * Loads the GEMM and fused-loop modules on `memory` in every worker. Resolves to the
   * memory's id once all have them, or to null if they fail to (then run everything on the
   * calling thread).
   */
  register(
    memory: WebAssembly.Memory,
    gemm: WebAssembly.Module,
    fused: WebAssembly.Module | null,
  ): Promise<number | null> {
    const id = this.#nextId++;
    let left = this.#workers.length;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#acks.delete(id);
        resolve(null);
      }, REGISTER_TIMEOUT_MS);
      this.#acks.set(id, () => {
        if (--left > 0) return;
        clearTimeout(timer);
        this.#acks.delete(id);
        resolve(this.#broken ? null : id);
      });
      for (const w of this.#workers) w.postMessage({ type: "register", id, memory, gemm, fused });
    });
  }

  unregister(id: number): void {
    for (const w of this.#workers) w.postMessage({ type: "unregister", id });
  }

  /**
   * Runs slice 0 on this thread (with `local`) and slice i on worker i-1, and returns when all
   * are done. Slices are task records (tasks.ts) for the memory registered as `id`.
   */
  run(id: number, slices: Int32Array[], local: (slice: Int32Array) => void): void {
    const t = this.#control;
    const seqs: number[] = [];
    for (let i = 1; i < slices.length; i++) {
      const o = (i - 1) * TASK_INTS;
      for (let f = F.memory; f < TASK_INTS; f++) t[o + f] = slices[i][f];
      t[o + F.memory] = id;
      seqs.push(Atomics.add(t, o + F.seq, 1) + 1);
      Atomics.notify(t, o + F.seq);
    }
    local(slices[0]);
    for (let i = 1; i < slices.length; i++) {
      const o = (i - 1) * TASK_INTS;
      const start = performance.now();
      for (;;) {
        const done = Atomics.load(t, o + F.done);
        if (done === seqs[i - 1]) break;
        Atomics.wait(t, o + F.done, done, 100);
        if (this.#broken || performance.now() - start > TASK_TIMEOUT_MS) {
          throw new Error(`cpu: ${this.#broken ?? "a worker thread did not answer"}`);
        }
      }
      if (t[o + F.error]) throw new Error("cpu: a worker thread failed on its slice");
    }
  }
}

function threadCount(): number {
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
