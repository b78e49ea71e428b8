/**
 * Multi-process training on the CPU backend for real: P processes on this machine
 * (tests/train/distributed_train_worker.ts), their replicas summed over 127.0.0.1 at each
 * all-reduce (lib/backend/cpu/cross_process.ts). Every process ends with the same evaluation,
 * only process 0 writes, and a job stopped at step 3 and resumed ends with the parameters of an
 * uninterrupted one, bit for bit: each process resumes from its own data position. On data
 * whose samples are all alike (so that how hosts split the stream does not change a batch), a
 * 2-process job with global batch 48 ends as one process does: bit for bit with 2 devices,
 * within 1e-4 with 1 (another summation order).
 */
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { leavesWithPaths } from "../../lib/ir/pytree.ts";
import { assert, assertAllClose, assertEquals } from "../assert.ts";
import { buildShard, jpeg } from "../data/helpers.ts";
import { makeDataset, SIZE, tinyConfig } from "./e2e_helpers.ts";

const WORKER = new URL("./distributed_train_worker.ts", import.meta.url).pathname;

const root = await Deno.makeTempDir({ prefix: "deit3-dist-train-" });
const data = await makeDataset(root);
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));

async function job(
  P: number,
  dir: string,
  stopAt?: number,
  // Mixup, CutMix and drop-path on: each replica draws its own masks from its own key.
  cfg: Record<string, unknown> = {
    ...tinyConfig(dir, data, 6),
    "train-batch-size": 12,
    "valid-batch-size": 6,
  },
) {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
  const port = 20000 + Math.floor(Math.random() * 20000);
  return await Promise.all(Array.from({ length: P }, async (_, i) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        ...["run", "-A", WORKER, `${dir}/cfg.json`],
        ...["--num-processes", String(P), "--process-id", String(i)],
        ...["--coordinator", `127.0.0.1:${port}`],
        ...(stopAt ? ["--stop-at", String(stopAt)] : []),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout);
    if (!r.success) {
      throw new Error(`process ${i} failed: ${out}\n${new TextDecoder().decode(r.stderr)}`);
    }
    return { log: out, result: JSON.parse(out.trim().split("\n").at(-1)!) };
  }));
}

async function params(dir: string) {
  const state = await loadTrainingState(`${dir}/out/tiny-state.msgpack`);
  return leavesWithPaths<HostTensor>(state.params).map(([p, t]) => [p, Array.from(t.data)]);
}

for (const P of [2, 3]) {
  Deno.test(`train --backend cpu with ${P} processes: one job, resumed bit for bit`, async () => {
    const whole = await job(P, `${root}/p${P}-whole`);
    for (const { result } of whole) {
      assertEquals(result.step, 6);
      assertEquals(result.lastEval, whole[0].result.lastEval);
      assertEquals(result.lastEval["val/samples"], 20); // each validation sample once
    }
    assert(whole[0].log.includes(`(x ${P} processes, all-reduce over TCP)`), whole[0].log);
    for (const { log } of whole.slice(1)) assert(log.includes("writes no files"), log);

    const cut = `${root}/p${P}-cut`;
    const first = await job(P, cut, 3);
    assertEquals(first.map((r) => r.result.step), Array(P).fill(3));
    const rest = await job(P, cut);
    for (const { log, result } of rest) {
      assertEquals(result.step, 6);
      assert(!log.includes("replaying"), log);
    }
    assertEquals(await params(cut), await params(`${root}/p${P}-whole`));
  });
}

Deno.test("train --backend cpu, 2 processes, batch 48: as one process on alike samples", async () => {
  const image = await jpeg(SIZE, SIZE, 7);
  const shard = await buildShard(
    Array.from({ length: 40 }, (_, i) => ({ key: `same${i}`, parts: { jpg: image, cls: "1" } })),
  );
  const alike = `${root}/alike`;
  await Deno.mkdir(alike);
  for (const s of [0, 1]) await Deno.writeFile(`${alike}/train-${s}.tar`, shard);
  const cfg = (dir: string, devices: number) => ({
    ...tinyConfig(dir, { train: `${alike}/train-{0..1}.tar`, valid: data.valid }, 4),
    // Nothing random in the step or the augmentation: every batch is the same batch.
    "mixup": 0,
    "cutmix": 0,
    "droppath": 0,
    "hflip": false,
    "random-erasing": 0,
    "train-batch-size": 48,
    "valid-batch-size": 10,
    "devices": devices,
  });
  const two = `${root}/alike-p2`, oneD2 = `${root}/alike-d2`, oneD1 = `${root}/alike-d1`;
  await job(2, two, undefined, cfg(two, 1));
  await job(1, oneD2, undefined, cfg(oneD2, 2));
  await job(1, oneD1, undefined, cfg(oneD1, 1));
  const [p2, d2, d1] = await Promise.all([params(two), params(oneD2), params(oneD1)]);
  assertEquals(p2, d2);
  assert(
    JSON.stringify(p2) !== JSON.stringify(d1),
    "1 device gave what 2 processes gave, bit for bit",
  );
  p2.forEach(([path, v], i) =>
    assertAllClose(v as number[], d1[i][1] as number[], { atol: 1e-4, msg: `${path}` })
  );
});
