/**
 * Interruption and failure: SIGTERM after the first evaluation then a resume ends with the same
 * -last and -best files as an uninterrupted run; an interruption while the loop waits for data
 * or for an evaluation ends the run within seconds with the state saved; a step that throws
 * keeps the last periodic save.
 */
import type { Backend, DeviceArray, Executable } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import type { Graph } from "../../lib/ir/graph.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { train } from "../../lib/train/loop.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { config, makeDataset, tinyConfig, withDir } from "./e2e_helpers.ts";

const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;

/** Runs the train task; with `killAfter`, sends SIGTERM once stdout matches it. */
async function runTask(path: string, killAfter?: RegExp): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, path],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const errText = new Response(child.stderr).text();
  let out = "", killed = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
    if (killAfter && !killed && killAfter.test(out)) {
      child.kill("SIGTERM");
      killed = true;
    }
  }
  const status = await child.status;
  return { code: status.code, out: out + (await errText) };
}

Deno.test("train task: SIGTERM after the first eval, then resume: -last and -best as uninterrupted", async () => {
  await withDir("deit3-interrupt-", async (dir) => {
    const data = await makeDataset(dir);
    const make = async (sub: string) => {
      const cfg = tinyConfig(`${dir}/${sub}`, data, 60);
      cfg["eval-interval"] = 10;
      cfg["log-interval"] = 1;
      await Deno.mkdir(`${dir}/${sub}`);
      const path = `${dir}/${sub}.json`;
      await Deno.writeTextFile(path, JSON.stringify(cfg));
      return path;
    };
    const reference = await runTask(await make("a"));
    assertEquals(reference.code, 0, reference.out);
    // The check means something only if a later eval was not a new best.
    const evals = (await Deno.readTextFile(`${dir}/a/out/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((e) => "val/acc1" in e);
    assert(
      evals.slice(1).some((e, i) => e["val/acc1"] <= evals[i]["val/best_acc1"]),
      JSON.stringify(evals),
    );
    const path = await make("b");
    const first = await runTask(path, /eval at step 10:/);
    assertEquals(first.code, 75, first.out);
    const stopped = await loadTrainingState(`${dir}/b/out/tiny-state.msgpack`);
    assert(stopped.step >= 10 && stopped.step < 60, `stopped at ${stopped.step}: ${first.out}`);
    const second = await runTask(path);
    assertEquals(second.code, 0, second.out);
    assert(second.out.includes(`resumed from`), second.out);
    for (const f of ["tiny-last.msgpack", "tiny-best.msgpack"]) {
      assertEquals(
        await Deno.readFile(`${dir}/b/out/${f}`),
        await Deno.readFile(`${dir}/a/out/${f}`),
        f,
      );
    }
  });
});

/** A local HTTP server whose shard requests hang until released (a stalled data source). */
function stallingServer(shard: Uint8Array, onRequest: () => void) {
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  let stalled = true;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    onRequest();
    if (stalled) await released;
    return new Response(shard as Uint8Array<ArrayBuffer>);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/shard.tar`,
    unstall() {
      stalled = false;
      release();
    },
    async close() {
      release();
      await server.shutdown();
    },
  };
}

Deno.test("train: an interruption while waiting for training data ends the run in seconds", async () => {
  await withDir("deit3-interrupt-", async (dir) => {
    const data = await makeDataset(dir);
    const controller = new AbortController();
    let t0 = 0;
    const server = stallingServer(await Deno.readFile(`${dir}/train-0.tar`), () => {
      t0 = performance.now();
      setTimeout(() => controller.abort(), 300);
    });
    try {
      const cfg = tinyConfig(dir, data, 50);
      cfg["train-dataset-shards"] = server.url;
      const r = await train(config(cfg), { signal: controller.signal });
      const seconds = (performance.now() - t0) / 1000;
      assert(r.interrupted, "not interrupted");
      assert(seconds < 10, `took ${seconds.toFixed(1)} s after the signal`);
      // Nothing was trained, so nothing is saved; a later step would have been.
      assertEquals(r.step, 0);
      await assertRejects(() => Deno.stat(`${dir}/out/tiny-state.msgpack`), /No such file/);
    } finally {
      await server.close();
    }
  });
});

Deno.test("train: an interruption during an evaluation saves it as pending; the resume runs it first", async () => {
  await withDir("deit3-interrupt-", async (dir) => {
    const data = await makeDataset(dir);
    const controller = new AbortController();
    const server = stallingServer(await Deno.readFile(`${dir}/valid-0.tar`), () => {
      if (!controller.signal.aborted) setTimeout(() => controller.abort(), 200);
    });
    try {
      const cfg = tinyConfig(dir, data, 4);
      cfg["valid-dataset-shards"] = server.url;
      cfg["eval-interval"] = 2;
      const t = performance.now();
      const r = await train(config(cfg), { signal: controller.signal });
      assert(r.interrupted && r.step === 2, `step ${r.step}`);
      assert(performance.now() - t < 60_000);
      const saved = await loadTrainingState(`${dir}/out/tiny-state.msgpack`);
      assertEquals([saved.step, saved.data.eval_pending], [2, true]);
      server.unstall();
      const again = await train(config(cfg));
      assertEquals(again.step, 4);
      const evals = (await Deno.readTextFile(`${dir}/out/metrics.jsonl`)).trim().split("\n")
        .map((l) => JSON.parse(l)).filter((e) => "val/acc1" in e).map((e) => e.step);
      assertEquals(evals, [2, 4]);
    } finally {
      await server.close();
    }
  });
});

/** The CPU backend, except that the `failAt`-th run of the first compiled program throws. */
class FailingBackend implements Backend {
  readonly name = "cpu";
  readonly description = "CPU that fails a step";
  readonly devices = 1;
  readonly replicas = 1;
  #inner = new CpuBackend();
  #compiled = 0;
  constructor(readonly failAt: number) {}
  async compile(graph: Graph, opts?: { donate?: readonly boolean[] }): Promise<Executable> {
    const exe = await (this.#inner as Backend).compile(graph, opts);
    if (this.#compiled++ > 0) return exe;
    let runs = 0;
    return {
      execute: (args, o) => {
        if (++runs === this.failAt) {
          return Promise.reject(new Error("cpu: a worker thread did not finish its chunk"));
        }
        return exe.execute(args, o);
      },
      dispose: () => exe.dispose(),
    };
  }
  fromHost(t: HostTensor) {
    return this.#inner.fromHost(t);
  }
  fromHostPerDevice(ts: readonly HostTensor[]) {
    return this.#inner.fromHostPerDevice(ts);
  }
  toHost(a: DeviceArray) {
    return this.#inner.toHost(a);
  }
  toHostPerDevice(a: DeviceArray) {
    return this.#inner.toHostPerDevice(a);
  }
  free(a: DeviceArray) {
    this.#inner.free(a);
  }
  dispose() {
    this.#inner.dispose();
  }
}

Deno.test("train: a step that throws keeps the last periodic save (save-interval, save-minutes)", async () => {
  await withDir("deit3-interrupt-", async (dir) => {
    const data = await makeDataset(dir);
    for (
      const [flags, saved] of [
        [{ "save-interval": 2 }, 4],
        [{ "save-minutes": 1e-9 }, 5],
      ] as const
    ) {
      const out = `${dir}/out-${saved}`;
      const cfg = { ...tinyConfig(dir, data, 20), ...flags, "output-dir": out, "eval-interval": 0 };
      const backend = new FailingBackend(6);
      try {
        await assertRejects(
          () => train(config(cfg), { backend }),
          new RegExp(
            `step 6 failed: cpu: a worker thread did not finish its chunk\\. The last ` +
              `saved state \\(.*, step ${saved}\\) is intact`,
          ),
        );
      } finally {
        backend.dispose();
      }
      assertEquals((await loadTrainingState(`${out}/tiny-state.msgpack`)).step, saved);
    }
  });
});
