/**
 * A process of a 2-process CPU job killed with SIGKILL: the other stops within 15 s, saying
 * which process died, whichever one it was (not after the key-value store's 60 s timeouts).
 */
import { assert } from "../assert.ts";
import { makeDataset, tinyConfig, withDir } from "./e2e_helpers.ts";

const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;

for (const victim of [1, 0]) {
  Deno.test(`2-process cpu job: kill -9 of process ${victim} stops the other within 15 s, naming it`, async () => {
    await withDir("deit3-peer-death-", async (dir) => {
      const data = await makeDataset(dir);
      const cfg = {
        ...tinyConfig(`${dir}/run`, data, 100_000),
        "train-batch-size": 12,
        "log-interval": 1,
        "eval-interval": 100_000,
      };
      await Deno.mkdir(`${dir}/run`);
      await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
      const port = 20000 + Math.floor(Math.random() * 20000);
      const procs = [0, 1].map((i) => {
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            ...["run", "-A", TASK, `${dir}/cfg.json`, "--backend", "cpu"],
            ...["--num-processes", "2", "--process-id", String(i)],
            ...["--coordinator", `127.0.0.1:${port}`],
          ],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const text = { out: "" };
        const done = (async () => {
          const dec = new TextDecoderStream();
          const merged = [child.stdout, child.stderr].map(async (s) => {
            for await (const chunk of s.pipeThrough(new TextDecoderStream())) text.out += chunk;
          });
          void dec;
          await Promise.all(merged);
          return await child.status;
        })();
        return { child, text, done };
      });
      try {
        // Both are training: process 0 logged a few steps.
        const end = Date.now() + 120_000;
        while (!/step 3:/.test(procs[0].text.out)) {
          if (Date.now() > end) throw new Error(`no step 3 in 120 s:\n${procs[0].text.out}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const survivor = procs[1 - victim];
        procs[victim].child.kill("SIGKILL");
        const t0 = performance.now();
        const status = await survivor.done;
        const seconds = (performance.now() - t0) / 1000;
        const out = survivor.text.out;
        assert(
          seconds < 15,
          `process ${1 - victim} stopped ${seconds.toFixed(1)} s later:\n${out}`,
        );
        assert(status.code !== 0, out);
        assert(out.includes(`process ${victim}`), out);
        assert(!out.includes("no process put it"), out);
      } finally {
        for (const p of procs) {
          try {
            p.child.kill("SIGKILL");
          } catch {
            // exited
          }
          await p.done;
        }
      }
    });
  });
}

const DISTRIBUTED = new URL("../../lib/train/distributed.ts", import.meta.url).href;

// Process 0 waits in the key-value store (no all-reduce under way) when process 1 dies
// (SIGKILL: its connection closes) or hangs (SIGSTOP: its heartbeats stop).
for (const signal of ["SIGKILL", "SIGSTOP"] as const) {
  Deno.test(`kv store: a get waiting when process 1 gets ${signal} fails in seconds, naming it`, async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const topology = (i: number) => ({
      processIndex: i,
      processCount: 2,
      coordinator: `127.0.0.1:${port}`,
      source: "flags" as const,
    });
    const { KvStore, PeerLostError } = await import(DISTRIBUTED);
    const connecting = KvStore.connect(topology(0));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const { KvStore } = await import(${JSON.stringify(DISTRIBUTED)});
         const kv = await KvStore.connect(${JSON.stringify(topology(1))});
         await kv.put("ready", "1");
         await new Promise(() => {});`,
      ],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const kv = await connecting;
    try {
      await kv.get("ready", 60_000);
      const waiting = kv.get("never-put", 60_000).then(() => null, (e: Error) => e);
      // Let a heartbeat be under way before the process goes.
      await new Promise((r) => setTimeout(r, 500));
      child.kill(signal);
      const t0 = performance.now();
      const err = await waiting;
      const seconds = (performance.now() - t0) / 1000;
      assert(err instanceof PeerLostError, String(err));
      assert(err.message.includes("process 1 is lost"), err.message);
      assert(seconds < (signal === "SIGKILL" ? 3 : 15), `${seconds.toFixed(1)} s`);
    } finally {
      if (signal === "SIGSTOP") child.kill("SIGKILL");
      await child.status;
      // Process 1 never said it left: close does not wait for it, nor throw.
      await kv.close();
    }
  });
}

Deno.test("kv store: a process whose main thread is busy for 10 s is not taken for lost", async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const topology = (i: number) => ({
    processIndex: i,
    processCount: 2,
    coordinator: `127.0.0.1:${port}`,
    source: "flags" as const,
  });
  const { KvStore } = await import(DISTRIBUTED);
  const connecting = KvStore.connect(topology(0));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const { KvStore } = await import(${JSON.stringify(DISTRIBUTED)});
       const kv = await KvStore.connect(${JSON.stringify(topology(1))});
       await new Promise((r) => setTimeout(r, 500));
       const end = Date.now() + 10_000;
       while (Date.now() < end) {} // a long synchronous step
       await kv.put("done", "1");
       await kv.close();`,
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const kv = await connecting;
  try {
    assert((await kv.get("done", 60_000)) === "1");
  } finally {
    await child.status;
    await kv.close();
  }
});
