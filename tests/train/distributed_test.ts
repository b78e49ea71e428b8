/**
 * Multi-host logic with 2 and 3 real processes on this machine (tests/train/distributed_worker.ts
 * talking to process 0's key-value store on 127.0.0.1): disjoint and complete shard split, batch
 * split, who writes, validation samples counted exactly once, the rendezvous, and the refusal
 * to start when processes disagree on the resume step. Plus the topology rules.
 */
import { resolveConfig } from "../../lib/config/mod.ts";
import { processTopology } from "../../lib/train/distributed.ts";
import { batchPlan } from "../../lib/train/run_config.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";

const WORKER = new URL("./distributed_worker.ts", import.meta.url).pathname;

async function job(processes: number, steps: number[]) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const runs = Array.from({ length: processes }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        WORKER,
        "--num-processes",
        String(processes),
        "--process-id",
        String(i),
        "--coordinator",
        `127.0.0.1:${port}`,
        "--step",
        String(steps[i]),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output());
  return await Promise.all(runs.map(async (r, i) => {
    const out = await r;
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(`process ${i} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return JSON.parse(text.trim().split("\n").at(-1)!);
  }));
}

for (const P of [2, 3]) {
  Deno.test(`distributed: ${P} processes split the data and meet at process 0`, async () => {
    const results = await job(P, Array(P).fill(40));
    assertEquals(results.map((r) => r.topology.processIndex), [...Array(P).keys()]);
    // Train: each shard position of the two passes goes to exactly one host.
    const seen = results.flatMap((r) =>
      r.visits.map((v: { epoch: number; shard: number }) => `${v.epoch}/${v.shard}`)
    );
    assertEquals(seen.length, 2 * 7);
    assertEquals(new Set(seen).size, 2 * 7);
    const counts = results.map((r) => r.visits.length);
    assert(Math.max(...counts) - Math.min(...counts) <= 1, `uneven split ${counts}`);
    // Valid: every sample of every shard counted once over the hosts.
    [5, 9, 4].forEach((n, s) =>
      assertEquals(results.reduce((sum, r) => sum + r.valid[s], 0), n, `valid shard ${s}`)
    );
    // Batch 48 over P hosts x 2 devices; only process 0 writes.
    for (const r of results) assertEquals(r.batch, { perHost: 48 / P, perDevice: 24 / P });
    assertEquals(results.map((r) => r.writes), [true, ...Array(P - 1).fill(false)]);
    const hello = [...Array(P).keys()].map((i) => `process ${i}`);
    for (const r of results) {
      assertEquals(r.gathered, hello);
      assertEquals(r.agreed, "ok");
    }
  });
}

Deno.test("distributed: processes that disagree on the resume step all refuse", async () => {
  const results = await job(3, [40, 40, 20]);
  for (const r of results) {
    assertEquals(
      r.agreed,
      "the processes disagree on the step to resume from (process 0: 40, process 1: 40, " +
        "process 2: 20); they must all read the same output-dir",
    );
  }
});

Deno.test("distributed: topology from flags, the Cloud TPU environment, or one process", () => {
  const cfg = (argv: string[]) => resolveConfig({ labels: 10 }, "<t>", argv);
  const none = () => undefined;
  assertEquals(processTopology(cfg([]), none), {
    processIndex: 0,
    processCount: 1,
    coordinator: null,
    source: "single",
  });
  assertEquals(
    processTopology(
      cfg(["--num-processes", "4", "--process-id", "2", "--coordinator", "h0:1234"]),
      none,
    ),
    { processIndex: 2, processCount: 4, coordinator: "h0:1234", source: "flags" },
  );
  const tpu: Record<string, string> = { TPU_WORKER_ID: "3", TPU_WORKER_HOSTNAMES: "w0,w1,w2,w3" };
  assertEquals(processTopology(cfg([]), (n) => tpu[n]), {
    processIndex: 3,
    processCount: 4,
    coordinator: "w0:8476",
    source: "cloud-tpu",
  });
  assertThrows(
    () => processTopology(cfg(["--num-processes", "2", "--coordinator", "h:1"]), none),
    "--num-processes 2 needs --process-id",
  );
  assertThrows(
    () => processTopology(cfg(["--num-processes", "2", "--process-id", "1"]), none),
    "needs --coordinator HOST:PORT",
  );
  assertThrows(
    () =>
      processTopology(
        cfg(["--num-processes", "2", "--process-id", "2", "--coordinator", "h:1"]),
        none,
      ),
    "process-id 2 is not below num-processes 2",
  );
  assertThrows(
    () =>
      processTopology(
        cfg(["--num-processes", "2", "--process-id", "0", "--coordinator", "h"]),
        none,
      ),
    '--coordinator must be HOST:PORT, got "h"',
  );
  const plan = batchPlan(
    cfg(["--train-batch-size", "48", "--grad-accum", "2", "--valid-batch-size", "12"]),
    { processes: 2, devices: 3 },
  );
  assertEquals(plan, { global: 48, accum: 2, perReplica: 4, perHost: 12, validPerHost: 6 });
  assertThrows(
    () => batchPlan(cfg(["--train-batch-size", "48"]), { processes: 1, devices: 5 }),
    "train-batch-size: 48 images do not split over 1 process(es) x 5 device(s); use a multiple " +
      "of 5",
  );
  assertThrows(
    () =>
      batchPlan(
        cfg([
          "--train-batch-size",
          "12",
          "--valid-dataset-shards",
          "v.tar",
          "--valid-batch-size",
          "10",
        ]),
        {
          processes: 2,
          devices: 3,
        },
      ),
    "valid-batch-size: 10 does not split over 2 process(es) x 3 device(s); use a multiple of 6",
  );
});
