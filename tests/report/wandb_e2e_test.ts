/**
 * W&B and TensorBoard end to end, as a user runs them: `deno task train` with WANDB_API_KEY and
 * WANDB_BASE_URL pointing at the fake server, 60 steps; the W&B environment variables; a SIGTERM
 * (preempting, exit 75) and its resume; a kill -9 while the server cannot take history, and a
 * resume that sends every row metrics.jsonl has; the server down.
 */
import { assert, assertEquals } from "../assert.ts";
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import { makeDataset, tinyConfig } from "../train/e2e_helpers.ts";
import { FAKE_ENTITY, type FakeWandb, startFakeWandb } from "./fake_wandb.ts";

const KEY = "a1b2c3d4e5".repeat(4);
const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;

async function writeConfig(dir: string, extra: Record<string, unknown> = {}) {
  const data = await makeDataset(dir);
  const cfg = {
    ...tinyConfig(dir, data, 60),
    "log-interval": 20,
    "eval-interval": 30,
    "project": "deit3-e2e",
    "mixup": 0,
    "cutmix": 0,
    ...extra,
  };
  await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
}

/** Runs the train task; with `kill`, sends its signal once the output matches its pattern. */
async function runTrain(
  dir: string,
  env: Record<string, string>,
  kill?: { when: RegExp; signal: Deno.Signal },
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, `${dir}/cfg.json`],
    // WANDB_MODE: deno task test turns W&B off for every other test (no run of a developer's key).
    env: { ...env, WANDB_MODE: "online", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errText = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "", killed = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
    if (kill && !killed && kill.when.test(out)) {
      child.kill(kill.signal);
      killed = true;
    }
  }
  const status = await child.status;
  return { code: status.code, text: out + (await errText) };
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

function onlyRun(fake: FakeWandb) {
  assertEquals(fake.runs.size, 1);
  return [...fake.runs.values()][0];
}

Deno.test("train + W&B: the run, its rows, files and environment, as the official client shows it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-wandb-" });
  const fake = startFakeWandb(KEY);
  try {
    await writeConfig(dir, { project: null });
    const r = await runTrain(dir, {
      WANDB_API_KEY: KEY,
      WANDB_BASE_URL: fake.url,
      WANDB_PROJECT: "env-project",
      WANDB_NAME: "shown name",
      WANDB_TAGS: "deit3,tiny",
      WANDB_RUN_GROUP: "sweep-1",
      WANDB_NOTES: "an e2e run",
      WANDB_DIR: `${dir}/wandb-dir`,
    });
    assertEquals(r.code, 0, r.text);
    const run = onlyRun(fake);
    assertEquals(
      [run.entity, run.project, run.displayName, run.tags, run.group, run.notes],
      [FAKE_ENTITY, "env-project", "shown name", ["deit3", "tiny"], "sweep-1", "an e2e run"],
    );
    assertEquals((run.config!["log-interval"] as { value: number }).value, 20);
    const trainSteps = run.history.filter((h) => "train/loss" in h).map((h) => h._step);
    const valSteps = run.history.filter((h) => "val/acc1" in h).map((h) => h._step);
    assertEquals(trainSteps, [20, 40, 60]);
    assertEquals(valSteps, [30, 60]);
    // One row per step, as the official client makes them: step 60 holds train and val metrics.
    assertEquals(run.history.map((h) => h._step), [20, 30, 40, 60]);
    assert(run.history.every((h) => typeof h._timestamp === "number"));
    assert(typeof run.summary["val/acc1"] === "number");
    assertEquals([run.complete, run.exitcode, run.preempting], [true, 0, false]);
    // Logs, Files and Overview tabs: output.log streamed and uploaded, metadata, config.yaml.
    assert(run.output.some((l) => / step 20: loss /.test(l)), run.output.join("\n"));
    assert(run.files.get("output.log")!.includes("eval at step 60"));
    const meta = JSON.parse(run.files.get("wandb-metadata.json")!);
    assertEquals([meta.backend, meta.devices], ["cpu", 1]);
    assert(meta.args.some((a: string) => a.endsWith("cfg.json")), JSON.stringify(meta.args));
    assert(meta.deno.startsWith(`Deno ${Deno.version.deno}`));
    assert(run.files.get("config.yaml")!.includes("log-interval:\n    value: 20"));
    assert(run.host && run.program?.endsWith("train.ts"));
    // WANDB_DIR holds the local copies.
    const wandbDir = `${dir}/wandb-dir/wandb/run-${run.id}/files`;
    assert(Deno.statSync(`${wandbDir}/wandb-metadata.json`).isFile);
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

Deno.test("train + W&B: SIGTERM is preempting (exit 75), and the resumed run completes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-wandb-" });
  const fake = startFakeWandb(KEY);
  try {
    await writeConfig(dir);
    const env = { WANDB_API_KEY: KEY, WANDB_BASE_URL: fake.url };
    const first = await runTrain(dir, env, { when: /eval at step 30/, signal: "SIGTERM" });
    assertEquals(first.code, 75, first.text);
    const run = onlyRun(fake);
    assertEquals([run.preempting, run.complete, run.exitcode], [true, true, 75]);
    const p = run.posts.findIndex((x) => x.preempting);
    assert(p >= 0 && p < run.posts.length - 1, "preempting before the final post");
    const second = await runTrain(dir, env);
    assertEquals(second.code, 0, second.text);
    assertEquals(onlyRun(fake), run, "the same W&B run");
    assertEquals(run.history.map((h) => h._step), [20, 30, 40, 60]);
    assertEquals([run.complete, run.exitcode], [true, 0]);
    // TensorBoard: one event file per session.
    const events = [...Deno.readDirSync(`${dir}/out`)].filter((e) => e.name.includes("tfevents"));
    assertEquals(events.length, 2);
  } finally {
    await fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train + W&B: kill -9, then resume: no history row is lost, runtime and summary go on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-wandb-" });
  const fake = startFakeWandb(KEY);
  try {
    await writeConfig(dir, { "log-interval": 10 });
    const env = { WANDB_API_KEY: KEY, WANDB_BASE_URL: fake.url };
    // The server takes the run but no history: every row is still unsent when the kill comes.
    fake.failStreamWith = 503;
    const first = await runTrain(dir, env, { when: /step 40: loss/, signal: "SIGKILL" });
    assert(first.code !== 0, first.text);
    const run = onlyRun(fake);
    assertEquals(run.history.length, 0);
    fake.failStreamWith = null;
    const second = await runTrain(dir, env);
    assertEquals(second.code, 0, second.text);
    assertEquals(onlyRun(fake), run, "the same W&B run");
    // Steps 10 to 30 come from metrics.jsonl (the state of step 30), the rest from the resumed run.
    assertEquals(run.history.map((h) => h._step), [10, 20, 30, 40, 50, 60]);
    const metrics = (await Deno.readTextFile(`${dir}/out/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    for (const m of metrics) {
      const row = run.history.find((h) => h._step === m.step)!;
      for (const [k, v] of Object.entries(m)) {
        if (k !== "step" && k !== "time") assertEquals(row[k], v, `${k} at step ${m.step}`);
      }
    }
    const runtimes = run.history.map((h) => h._runtime as number);
    assert(runtimes.every((t, i) => i === 0 || t >= runtimes[i - 1]), `runtime: ${runtimes}`);
    assert(typeof run.summary["train/loss"] === "number" && "val/acc1" in run.summary);
    assertEquals([run.complete, run.exitcode], [true, 0]);
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
    await writeConfig(dir);
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

Deno.test("train + W&B: a WANDB_RUN_ID W&B would refuse stops the run with a message naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-wandb-" });
  try {
    await writeConfig(dir);
    const r = await runTrain(dir, {
      WANDB_API_KEY: KEY,
      WANDB_BASE_URL: "http://127.0.0.1:9",
      WANDB_RUN_ID: "bad/id",
    });
    assertEquals(r.code, 1, r.text);
    assert(r.text.includes('WANDB_RUN_ID: "bad/id" is not a W&B run id'), r.text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
