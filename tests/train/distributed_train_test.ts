/**
 * Multi-process training on the CPU backend for real: P processes on this machine
 * (tests/train/distributed_train_worker.ts), their replicas summed over 127.0.0.1 at each
 * all-reduce (lib/backend/cpu/cross_process.ts). Every process ends with the same evaluation,
 * only process 0 writes, and a job stopped at step 3 and resumed ends with the parameters of an
 * uninterrupted one, bit for bit: each process resumes from its own data position.
 */
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { leavesWithPaths } from "../../lib/ir/pytree.ts";
import { assert, assertEquals } from "../assert.ts";
import { makeDataset, tinyConfig } from "./e2e_helpers.ts";

const WORKER = new URL("./distributed_train_worker.ts", import.meta.url).pathname;

const root = await Deno.makeTempDir({ prefix: "deit3-dist-train-" });
const data = await makeDataset(root);
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));

async function job(P: number, dir: string, stopAt?: number) {
  await Deno.mkdir(dir, { recursive: true });
  // Mixup, CutMix and drop-path on: each replica draws its own masks from its own key.
  const cfg = { ...tinyConfig(dir, data, 6), "train-batch-size": 12, "valid-batch-size": 6 };
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
