/**
 * Multi-host jobs (a TPU pod slice, several GPU hosts): which process this is, how many there
 * are, and a small key-value store that process 0 serves, through which the processes agree
 * before they start (same resume step, same config).
 *
 * The topology comes from flags (`--num-processes`, `--process-id`, `--coordinator HOST:PORT`)
 * or, on a Cloud TPU VM, from the environment its runtime sets, as JAX's cloud-TPU cluster
 * detection reads it: `TPU_WORKER_ID` (or `CLOUD_TPU_TASK_ID`) and `TPU_WORKER_HOSTNAMES`
 * (comma-separated; the coordinator is the first worker, port 8476). Each process then reads
 * its own 1/P of the data (lib/data/order.ts: positions of the shuffled, cycled shard list go to
 * hosts as `slice(process_index, None, process_count)`), and only process 0 writes.
 */
import { ProcessSum } from "../backend/cpu/cross_process.ts";
import type { Config } from "../config/mod.ts";

/** JAX's default coordinator port on Cloud TPU. */
export const COORDINATOR_PORT = 8476;

export interface Topology {
  processIndex: number;
  processCount: number;
  /** HOST:PORT of process 0's key-value store; null for one process. */
  coordinator: string | null;
  /** Where the values came from. */
  source: "flags" | "cloud-tpu" | "single";
}

/** The topology from the config's flags, else the Cloud TPU environment, else one process. */
export function processTopology(
  config: Pick<Config, "num-processes" | "process-id" | "coordinator">,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Topology {
  const flagCount = config["num-processes"], flagId = config["process-id"];
  const hostnames = (env("TPU_WORKER_HOSTNAMES") ?? "").split(",").map((h) => h.trim())
    .filter((h) => h);
  const workerId = env("TPU_WORKER_ID") ?? env("CLOUD_TPU_TASK_ID");
  const fromFlags = flagCount > 0 || flagId >= 0 || config.coordinator !== null;
  let t: Topology;
  if (fromFlags) {
    const count = flagCount > 0 ? flagCount : 1;
    const index = flagId >= 0 ? flagId : 0;
    t = {
      processIndex: index,
      processCount: count,
      coordinator: config.coordinator,
      source: "flags",
    };
    if (count > 1 && flagId < 0) {
      throw new Error(`--num-processes ${count} needs --process-id (0..${count - 1})`);
    }
  } else if (hostnames.length > 0 && workerId !== undefined) {
    const index = Number(workerId);
    t = {
      processIndex: index,
      processCount: hostnames.length,
      coordinator: `${hostnames[0]}:${COORDINATOR_PORT}`,
      source: "cloud-tpu",
    };
    if (!Number.isInteger(index)) {
      throw new Error(`TPU_WORKER_ID must be an integer, got "${workerId}"`);
    }
  } else {
    return { processIndex: 0, processCount: 1, coordinator: null, source: "single" };
  }
  if (t.processIndex >= t.processCount) {
    throw new Error(
      `process-id ${t.processIndex} is not below num-processes ${t.processCount}` +
        (t.source === "cloud-tpu" ? " (TPU_WORKER_ID vs TPU_WORKER_HOSTNAMES)" : ""),
    );
  }
  if (t.processCount > 1 && !t.coordinator) {
    throw new Error(
      `--num-processes ${t.processCount} needs --coordinator HOST:PORT (process 0's address)`,
    );
  }
  if (t.coordinator !== null && !/^[^\s:]+:\d+$/.test(t.coordinator)) {
    throw new Error(`--coordinator must be HOST:PORT, got "${t.coordinator}"`);
  }
  return t;
}

/**
 * The key-value store of a job: process 0 serves it on the coordinator's port; every process
 * (process 0 too) talks to it over HTTP. Values are strings. `get` waits for a key to appear.
 */
export class KvStore implements AsyncDisposable {
  private constructor(
    readonly base: string,
    readonly topology: Topology,
    private readonly server: Deno.HttpServer | null,
  ) {}

  /** Process 0 starts the server; the others wait until it answers (up to `timeoutMs`). */
  static async connect(t: Topology, timeoutMs = 120_000): Promise<KvStore> {
    if (!t.coordinator) throw new Error("the key-value store needs a coordinator HOST:PORT");
    const [host, port] = [
      t.coordinator.replace(/:\d+$/, ""),
      Number(/:(\d+)$/.exec(t.coordinator)![1]),
    ];
    let server: Deno.HttpServer | null = null;
    if (t.processIndex === 0) server = serveKv(port, host);
    const store = new KvStore(`http://${host}:${port}`, t, server);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = await fetch(`${store.base}/health`);
        await r.body?.cancel();
        if (r.ok) return store;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) {
        throw new Error(`coordinator ${t.coordinator} did not answer within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async delete(key: string): Promise<void> {
    const r = await fetch(`${this.base}/kv/${encodeURIComponent(key)}`, { method: "DELETE" });
    await r.body?.cancel();
    if (!r.ok) throw new Error(`kv delete ${key}: HTTP ${r.status}`);
  }

  async put(key: string, value: string): Promise<void> {
    const r = await fetch(`${this.base}/kv/${encodeURIComponent(key)}`, {
      method: "PUT",
      body: value,
    });
    await r.body?.cancel();
    if (!r.ok) throw new Error(`kv put ${key}: HTTP ${r.status}`);
  }

  /** The value of `key`, waiting up to `timeoutMs` for some process to put it. */
  async get(key: string, timeoutMs = 60_000): Promise<string> {
    const r = await fetch(`${this.base}/kv/${encodeURIComponent(key)}?wait_ms=${timeoutMs}`);
    const text = await r.text();
    if (r.status === 404) {
      const e = new Error(`kv get ${key}: no process put it within ${timeoutMs} ms`);
      e.name = "TimeoutError"; // pjrt/kv_bridge.ts maps it to DEADLINE_EXCEEDED / "not found"
      throw e;
    }
    if (!r.ok) throw new Error(`kv get ${key}: HTTP ${r.status} ${text}`);
    return text;
  }

  /**
   * Every process puts its `value` under `name`; returns all processes' values in process
   * order (a barrier: it returns once every process has arrived).
   */
  async allGather(name: string, value: string, timeoutMs = 600_000): Promise<string[]> {
    const { processIndex, processCount } = this.topology;
    await this.put(`${name}/${processIndex}`, value);
    return await Promise.all(
      Array.from({ length: processCount }, (_, p) => this.get(`${name}/${p}`, timeoutMs)),
    );
  }

  /**
   * Leaves the job: the other processes say so; process 0 waits (up to `timeoutMs`) until they
   * have, so that nobody loses the store mid-request, then stops serving.
   */
  async close(timeoutMs = 60_000): Promise<void> {
    const { processIndex, processCount } = this.topology;
    if (processIndex !== 0) {
      await this.put(`left/${processIndex}`, "1").catch(() => {});
      return;
    }
    try {
      await Promise.all(
        Array.from({ length: processCount - 1 }, (_, p) => this.get(`left/${p + 1}`, timeoutMs)),
      );
    } finally {
      await this.server?.shutdown();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * All processes must start from the same step: gathers each one's resume step and throws,
 * naming them, when they differ.
 */
export async function agreeOnStep(kv: KvStore, step: number): Promise<void> {
  const steps = (await kv.allGather("resume-step", String(step))).map(Number);
  if (steps.some((s) => s !== steps[0])) {
    throw new Error(
      `the processes disagree on the step to resume from (${
        steps.map((s, p) => `process ${p}: ${s}`).join(", ")
      }); they must all read the same output-dir`,
    );
  }
}

/**
 * Every host's data position, for process 0's saves (each host reads its own 1/P of the shard
 * stream, so each resumes from its own position). The other processes publish theirs after
 * every step, in order and without waiting; process 0 reads them when it saves that step. Steps
 * run in lockstep (a step's all-reduce needs every process), so while process 0 saves step s no
 * other process is past s: keys two steps old can go.
 */
export class PositionExchange<T> {
  #chain: Promise<void> = Promise.resolve();
  #warned = false;

  constructor(readonly kv: KvStore, readonly log: (line: string) => void = () => {}) {}

  /** This process's position after `step` (process 0 keeps its own). */
  publish(step: number, position: T | null | undefined): void {
    const p = this.kv.topology.processIndex;
    if (p === 0) return;
    this.#chain = this.#chain.then(async () => {
      await this.kv.put(`position/${p}/${step}`, JSON.stringify(position ?? null));
      if (step >= 2) await this.kv.delete(`position/${p}/${step - 2}`);
    }).catch((e) => {
      if (this.#warned) return;
      this.#warned = true;
      this.log(`process ${p} could not publish its data position: ${(e as Error).message}`);
    });
  }

  /**
   * Every process's position after `step`, in process order (`own` for process 0). A process
   * that did not publish within `timeoutMs` gets null: it replays its batches on resume.
   */
  async gather(
    step: number,
    own: T | null | undefined,
    timeoutMs = 60_000,
  ): Promise<(T | null)[]> {
    const P = this.kv.topology.processCount;
    return await Promise.all(Array.from({ length: P }, async (_, p) => {
      if (p === 0) return own ?? null;
      try {
        return JSON.parse(await this.kv.get(`position/${p}/${step}`, timeoutMs)) as T | null;
      } catch (e) {
        this.log(
          `process ${p}'s data position of step ${step} is missing (${(e as Error).message}): ` +
            "saved without it, so on resume that process replays its batches",
        );
        return null;
      }
    }));
  }

  /** Waits for the publishes in flight. */
  async flush(): Promise<void> {
    await this.#chain;
  }
}

/** Process 0 writes checkpoints, metrics and logs; the others only compute. */
export function writesOutputs(t: Topology): boolean {
  return t.processIndex === 0;
}

function serveKv(port: number, hostname: string): Deno.HttpServer {
  const values = new Map<string, string>();
  const waiters = new Map<string, ((v: string) => void)[]>();
  return Deno.serve({ port, hostname, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/health") return new Response("ok");
    const m = /^\/kv\/(.+)$/.exec(url.pathname);
    if (!m) return new Response("not found", { status: 400 });
    const key = decodeURIComponent(m[1]);
    if (req.method === "DELETE") {
      values.delete(key);
      return new Response("ok");
    }
    if (req.method === "PUT") {
      const v = await req.text();
      values.set(key, v);
      for (const w of waiters.get(key) ?? []) w(v);
      waiters.delete(key);
      return new Response("ok");
    }
    const have = values.get(key);
    if (have !== undefined) return new Response(have);
    const wait = Math.min(Number(url.searchParams.get("wait_ms") ?? 0) || 0, 3_600_000);
    const v = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), wait);
      const list = waiters.get(key) ?? [];
      list.push((value) => {
        clearTimeout(timer);
        resolve(value);
      });
      waiters.set(key, list);
    });
    return v === undefined ? new Response("missing", { status: 404 }) : new Response(v);
  });
}

/**
 * The CPU backend's all-reduce across the processes of a job (cpu/cross_process.ts): process
 * 0 listens on a free port of the coordinator's host and says where in the key-value store; the
 * others connect. Every process calls it, before the backend is created.
 */
export async function cpuProcessSum(kv: KvStore, timeoutMs = 120_000): Promise<ProcessSum> {
  const { processIndex, processCount, coordinator } = kv.topology;
  if (processIndex === 0) {
    const server = ProcessSum.serve(coordinator!.replace(/:\d+$/, ""), processCount);
    await kv.put("cpu-all-reduce", `${coordinator!.replace(/:\d+$/, "")}:${server.port}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        server.ready,
        new Promise((_, reject) =>
          timer = setTimeout(
            () =>
              reject(new Error(`not every process joined the cpu all-reduce in ${timeoutMs} ms`)),
            timeoutMs,
          )
        ),
      ]);
    } catch (e) {
      server.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return server;
  }
  const address = await kv.get("cpu-all-reduce", timeoutMs);
  return await ProcessSum.connect(address, processIndex, processCount);
}
