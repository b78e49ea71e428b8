/**
 * W&B end to end, as a user runs it: `deno task train` with WANDB_API_KEY and WANDB_BASE_URL
 * pointing at the fake server, 60 steps, log interval 20, eval interval 30; then the same run
 * with the server down.
 */
import { assert, assertEquals } from "../assert.ts";
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import { makeDataset, tinyConfig } from "./e2e_helpers.ts";
import { FAKE_ENTITY, startFakeWandb } from "./fake_wandb.ts";

const KEY = "a1b2c3d4e5".repeat(4);
const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;

async function runTrain(dir: string, env: Record<string, string>) {
  const data = await makeDataset(dir);
  const cfg = {
    ...tinyConfig(dir, data, 60),
    "log-interval": 20,
    "eval-interval": 30,
    "project": "deit3-e2e",
    "mixup": 0,
    "cutmix": 0,
  };
  await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, `${dir}/cfg.json`],
    // WANDB_MODE: deno task test turns W&B off for every other test (no run of a developer's key).
    env: { ...env, WANDB_MODE: "online", NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text, seconds: (performance.now() - t) / 1000 };
}

async function filesContain(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  const bytes = new TextEncoder().encode(needle);
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) hits.push(...await filesContain(path, needle));
    else if (e.isFile) {
      const data = await Deno.readFile(path);
      outer: for (let i = 0; i + bytes.length <= data.length; i++) {
        for (let j = 0; j < bytes.length; j++) if (data[i + j] !== bytes[j]) continue outer;
        hits.push(path);
        break;
      }
    }
  }
  return hits;
}

Deno.test("train + W&B: the run is created, gets train and val rows with steps, and completes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-wandb-" });
  const fake = startFakeWandb(KEY);
  try {
    const r = await runTrain(dir, { WANDB_API_KEY: KEY, WANDB_BASE_URL: fake.url });
    assertEquals(r.code, 0, r.text);
    assertEquals(fake.runs.size, 1);
    const run = [...fake.runs.values()][0];
    assertEquals([run.entity, run.project, run.displayName], [FAKE_ENTITY, "deit3-e2e", "tiny"]);
    assertEquals((run.config!["log-interval"] as { value: number }).value, 20);
    const trainSteps = run.history.filter((h) => "train/loss" in h).map((h) => h._step);
    const valSteps = run.history.filter((h) => "val/acc1" in h).map((h) => h._step);
    assertEquals(trainSteps, [20, 40, 60]);
    assertEquals(valSteps, [30, 60]);
    // One row per step, as the Python SDK makes them: step 60 holds the train and the val metrics.
    assertEquals(run.history.map((h) => h._step), [20, 30, 40, 60]);
    assert(run.history.every((h) => typeof h._timestamp === "number"));
    assert(typeof run.summary["val/acc1"] === "number");
    assertEquals([run.complete, run.exitcode], [true, 0]);
    // The run id is in the training state, for resume.
    const state = await loadTrainingState(`${dir}/out/tiny-state.msgpack`);
    assertEquals(state.data.wandb_run_id, run.id);
    // The key is nowhere: not in the output, the run's files, nor echoed into a request body.
    assert(!r.text.includes(KEY), "key in the output");
    assertEquals(await filesContain(dir, KEY), []);
    assert(fake.bodies.every((b) => !b.includes(KEY)));
  } finally {
    await fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train + W&B: with the server down the run still finishes, with one warning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-wandb-" });
  const fake = startFakeWandb(KEY);
  const url = fake.url;
  await fake.close(); // nothing answers there now
  try {
    const r = await runTrain(dir, { WANDB_API_KEY: KEY, WANDB_BASE_URL: url });
    assertEquals(r.code, 0, r.text);
    assert(/done: step 60/.test(r.text), r.text);
    assertEquals(r.text.match(/is unreachable/g)?.length, 1, r.text);
    assert(/rows were not sent \(metrics\.jsonl has them all\)/.test(r.text), r.text);
    assert(!r.text.includes(KEY));
    const events = (await Deno.readTextFile(`${dir}/out/metrics.jsonl`)).trim().split("\n");
    assertEquals(events.length, 5, "3 log rows and 2 evals, all kept locally");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
