/**
 * The W&B client against the fake server (fake_wandb.ts), row by row of what the official client
 * (wandb 0.30) was recorded sending: run identity, history and summary, NaN/Infinity, uploads
 * (wandb-metadata.json, config.yaml, output.log), system metrics, heartbeats while the caller's
 * thread is busy, preempting, resume from the server's history, outages, offline + sync.
 */
import { assert, assertEquals } from "../assert.ts";
import {
  netrcPassword,
  offlineRunDirs,
  syncOfflineRun,
  WandbRun,
  wandbRunFromEnv,
  type WandbRunOptions,
  type WandbSettings,
  wandbSettingsFromEnv,
} from "../../lib/report/wandb.ts";
import { configYaml, parseWandbJson, wandbJson } from "../../lib/report/wandb_format.ts";
import { FAKE_ENTITY, type FakeRun, startFakeWandb } from "./fake_wandb.ts";

const KEY = "0123456789abcdef0123456789abcdef01234567";
const FAST = { tickMs: 20, flushMs: 20, heartbeatMs: 60_000, statsMs: 0 };

function envOf(vars: Record<string, string>) {
  return (n: string) => vars[n];
}

function settingsFor(url: string, key = KEY): WandbSettings {
  return { mode: "online", baseUrl: url, apiKey: key };
}

function start(url: string, opts: Partial<WandbRunOptions> = {}, key = KEY) {
  return WandbRun.start(settingsFor(url, key), {
    project: "p",
    name: "n",
    config: {},
    log: () => {},
    inProcess: true,
    timing: FAST,
    ...opts,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("wandb settings: on with a key, off without one or when disabled", () => {
  assertEquals(wandbSettingsFromEnv(envOf({})), null);
  assertEquals(wandbSettingsFromEnv(envOf({ WANDB_API_KEY: KEY, WANDB_MODE: "disabled" })), null);
  assertEquals(wandbSettingsFromEnv(envOf({ WANDB_API_KEY: KEY })), {
    mode: "online",
    baseUrl: "https://api.wandb.ai",
    apiKey: KEY,
    entity: undefined,
  });
  const s = wandbSettingsFromEnv(envOf({
    WANDB_API_KEY: KEY,
    WANDB_BASE_URL: "http://127.0.0.1:1234/",
    WANDB_ENTITY: "team",
  }))!;
  assertEquals([s.baseUrl, s.entity], ["http://127.0.0.1:1234", "team"]);
  assertEquals(wandbSettingsFromEnv(envOf({ WANDB_MODE: "offline" }))?.mode, "offline");
});

Deno.test("wandb settings: the key from ~/.netrc as wandb login writes it", () => {
  const home = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(
      `${home}/.netrc`,
      `machine other.example\n  login user\n  password nope\n# comment\nmachine 127.0.0.1:8080\n  login user\n  password ${KEY}\n`,
    );
    assertEquals(netrcPassword("http://127.0.0.1:8080", home), KEY);
    assertEquals(netrcPassword("https://api.wandb.ai", home), undefined);
    const s = wandbSettingsFromEnv(envOf({ HOME: home, WANDB_BASE_URL: "http://127.0.0.1:8080" }));
    assertEquals(s?.apiKey, KEY);
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});

Deno.test("wandb env: WANDB_PROJECT, NAME, RUN_ID, TAGS, RUN_GROUP, NOTES, DIR; a bad id is named", () => {
  assertEquals(
    wandbRunFromEnv(envOf({
      WANDB_PROJECT: "proj",
      WANDB_NAME: "nice name",
      WANDB_RUN_ID: "my-run_1",
      WANDB_TAGS: "a, b,,c",
      WANDB_RUN_GROUP: "g",
      WANDB_NOTES: "why: this",
      WANDB_DIR: "/tmp/w",
    })),
    {
      project: "proj",
      name: "nice name",
      id: "my-run_1",
      tags: ["a", "b", "c"],
      group: "g",
      notes: "why: this",
      dir: "/tmp/w",
    },
  );
  let message = "";
  try {
    wandbRunFromEnv(envOf({ WANDB_RUN_ID: "a/b" }));
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.startsWith('WANDB_RUN_ID: "a/b" is not a W&B run id'), message);
});

Deno.test("wandb format: NaN and Infinity as the official client writes them; config.yaml", () => {
  const text = wandbJson({ loss: NaN, grad: Infinity, neg: -Infinity, s: "NaN", ok: 1 });
  // Recorded from wandb 0.30: {"loss":NaN,"grad":Infinity,"neg":-Infinity}
  assertEquals(text, '{"loss":NaN,"grad":Infinity,"neg":-Infinity,"s":"NaN","ok":1}');
  const back = parseWandbJson(text);
  assert(Number.isNaN(back.loss) && back.grad === Infinity && back.neg === -Infinity);
  assertEquals(back.s, "NaN");
  // As the official client's config.yaml: key, then "value:" 4 spaces in, lists with dashes.
  assertEquals(
    configYaml({ lr: 0.001, nested: { a: 1, b: [1, 2] }, model: "vit_tiny", empty: null }),
    "empty:\n    value: null\nlr:\n    value: 0.001\nmodel:\n    value: vit_tiny\n" +
      "nested:\n    value:\n        a: 1\n        b:\n            - 1\n            - 2\n",
  );
});

Deno.test("wandb run: identity, rows, summary, uploads and completion as the official client", async () => {
  const fake = startFakeWandb(KEY);
  const lines: string[] = [];
  const dir = Deno.makeTempDirSync();
  try {
    const run = await start(fake.url, {
      project: null,
      name: "mnist-vit-tiny",
      config: { "learning-rate": 0.001, name: "mnist-vit-tiny" },
      env: { project: "env-proj", tags: ["t1", "t2"], group: "grp", notes: "some notes", dir },
      dir: "/nonexistent",
      backend: { name: "cpu", description: "test cpu", devices: 2, replicas: 2 },
      log: (l) => lines.push(l),
    });
    run.log({ "train/loss": 2.5 }, 10);
    run.log({ "train/loss": 2.0 }, 20);
    run.log({ "val/acc1": 0.5 }, 20); // same step: the same row
    await sleep(200);
    run.log({ "train/loss": NaN, "train/grad": Infinity }, 30);
    assertEquals((await run.finish()).ok, true);
    const r = fake.runs.get(`${FAKE_ENTITY}/env-proj/${run.id}`)!;
    assert(r, "WANDB_PROJECT is the project when the config has none");
    assertEquals(
      [r.displayName, r.tags, r.group, r.notes],
      ["mnist-vit-tiny", ["t1", "t2"], "grp", "some notes"],
    );
    assertEquals((r.config!["learning-rate"] as { value: number }).value, 0.001);
    assertEquals(r.history.map((h) => h._step), [10, 20, 30]);
    assertEquals(r.history[1]["val/acc1"], 0.5);
    assert(
      r.history.every((h) => typeof h._runtime === "number" && typeof h._timestamp === "number"),
    );
    // NaN and Infinity went as tokens, not null.
    assert(Number.isNaN(r.history[2]["train/loss"]) && r.history[2]["train/grad"] === Infinity);
    assert(fake.bodies.some((b) => b.includes('"train/loss":NaN')));
    assert(Number.isNaN(r.summary["train/loss"]));
    assertEquals(typeof (r.summary._wandb as { runtime: number }).runtime, "number");
    assertEquals([r.complete, r.exitcode], [true, 0]);
    // Files through CreateRunFiles and PUT, then named in `uploaded`.
    for (const f of ["wandb-metadata.json", "config.yaml", "output.log", "wandb-summary.json"]) {
      assert(r.files.has(f), `${f} uploaded`);
      assert(r.uploaded.includes(f), `${f} in uploaded`);
    }
    const meta = JSON.parse(r.files.get("wandb-metadata.json")!);
    for (const k of ["os", "host", "args", "program", "deno", "startedAt", "executable"]) {
      assert(k in meta, `metadata has ${k}`);
    }
    assertEquals([meta.backend, meta.devices], ["cpu", 2]);
    assert(r.files.get("config.yaml")!.includes("learning-rate:\n    value: 0.001"));
    // WANDB_DIR: local copies of the files.
    assert(Deno.statSync(`${dir}/wandb/run-${run.id}/files/config.yaml`).isFile);
    assert(["UpsertBucket", "CreateRunFiles"].every((op) => fake.ops.includes(op)));
    assertEquals(fake.unauthorized, 0);
    for (const text of [...fake.bodies, ...lines]) assert(!text.includes(KEY), "key leaked");
  } finally {
    await fake.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("wandb run: output.log is streamed, redacted, and uploaded", async () => {
  const fake = startFakeWandb(KEY);
  const secret = "s3cr3t-value-for-the-test";
  Deno.env.set("DEIT3_TEST_TOKEN", secret);
  try {
    const run = await start(fake.url, { captureOutput: true });
    console.log(`hello from the run, token ${secret}`);
    console.error("a warning line");
    await sleep(150);
    await run.finish();
    const r = [...fake.runs.values()][0];
    const hello = r.output.find((l) => l.includes("hello from the run"))!;
    assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6} hello/.test(hello), hello);
    assert(hello.endsWith("token ${DEIT3_TEST_TOKEN}"), hello);
    assert(r.output.some((l) => /^ERROR \S+ a warning line$/.test(l)), r.output.join("\n"));
    assert(r.files.get("output.log")!.includes("hello from the run, token ${DEIT3_TEST_TOKEN}\n"));
    assert(fake.bodies.every((b) => !b.includes(secret)));
  } finally {
    Deno.env.delete("DEIT3_TEST_TOKEN");
    await fake.close();
  }
});

Deno.test("wandb run: system metrics as wandb-events.jsonl rows, GPUs from nvidia-smi", async () => {
  const fake = startFakeWandb(KEY);
  const bin = Deno.makeTempDirSync();
  try {
    // A stand-in for nvidia-smi: its CSV for the two queries the client makes (2 GPUs).
    const smi = `${bin}/nvidia-smi`;
    Deno.writeTextFileSync(
      smi,
      `#!/bin/sh
case "$1" in
  --query-gpu=name,*) printf 'NVIDIA H100 80GB HBM3, 81559\\nNVIDIA H100 80GB HBM3, 81559\\n' ;;
  *) printf '0, 87, 40, 20390, 81559, 61, 350.5, 700.00\\n1, 0, 0, 4, 81559, 30, [N/A], 700.00\\n' ;;
esac
`,
    );
    Deno.chmodSync(smi, 0o755);
    const run = await start(fake.url, { timing: { ...FAST, statsMs: 100, nvidiaSmi: smi } });
    await sleep(450);
    await run.finish();
    const r = [...fake.runs.values()][0];
    assert(r.events.length >= 3, `${r.events.length} system rows`);
    const last = r.events.at(-1)!;
    assertEquals(last._wandb, true);
    for (
      const k of ["system.memory_percent", "system.proc.memory.rssMB", "_runtime", "_timestamp"]
    ) {
      assertEquals(typeof last[k], "number", k);
    }
    if (Deno.build.os === "linux") {
      assertEquals(typeof last["system.cpu"], "number");
      assertEquals(typeof last["system.cpu.0.cpu_percent"], "number");
    }
    assertEquals(
      [last["system.gpu.0.gpu"], last["system.gpu.0.memory"], last["system.gpu.0.temp"]],
      [87, 40, 61],
    );
    assertEquals(last["system.gpu.0.memoryAllocatedBytes"], 20390 * 2 ** 20);
    assertEquals(last["system.gpu.0.powerWatts"], 350.5);
    assertEquals(last["system.gpu.0.powerPercent"], 50.07142857142857);
    assertEquals(last["system.gpu.1.gpu"], 0);
    assert(!("system.gpu.1.powerWatts" in last), "[N/A] is left out");
    const meta = JSON.parse([...fake.runs.values()][0].files.get("wandb-metadata.json")!);
    assertEquals([meta.gpu, meta.gpu_count], ["NVIDIA H100 80GB HBM3", 2]);
    assertEquals(meta.gpu_nvidia[0].memoryTotal, String(81559 * 2 ** 20));
  } finally {
    await fake.close();
    Deno.removeSync(bin, { recursive: true });
  }
});

Deno.test("wandb run: heartbeats keep coming while the caller's thread is blocked", async () => {
  const fake = startFakeWandb(KEY);
  try {
    // A child process whose main thread blocks for 3 s after logging one row (a compile, say);
    // the server here keeps answering and notes when each post arrives.
    const child = new URL("./wandb_busy_child.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", child, fake.url, KEY, "3000"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, text);
    const r = [...fake.runs.values()][0];
    const blocked = text.match(/blocked (\d+) (\d+)/)!.slice(1).map(Number);
    const during = r.posts.filter((p) => p.at > blocked[0] && p.at < blocked[1]);
    assert(during.filter((p) => p.heartbeat).length >= 3, JSON.stringify(r.posts));
    // At most a heartbeat interval (500 ms) and a tick between two posts.
    const times = r.posts.map((p) => p.at);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert(Math.max(...gaps) < 1200, `gaps ${gaps}`);
    assert(r.complete);
  } finally {
    await fake.close();
  }
});

Deno.test("wandb run: an interruption sends preempting, then completes with exit code 75", async () => {
  const fake = startFakeWandb(KEY);
  try {
    const run = await start(fake.url);
    run.log({ x: 1 }, 1);
    run.preempting();
    await run.finish(75);
    const r = [...fake.runs.values()][0];
    assert(r.preempting);
    const p = r.posts.findIndex((x) => x.preempting);
    assert(p >= 0 && p < r.posts.length - 1, "preempting before the final post");
    assertEquals([r.complete, r.exitcode], [true, 75]);
  } finally {
    await fake.close();
  }
});

function seed(r: FakeRun, steps: number[], runtimeEach = 50) {
  r.history = steps.map((s, i) => ({
    _step: s,
    loss: 1 / s,
    _runtime: runtimeEach * (i + 1),
    _timestamp: 1_000 + runtimeEach * (i + 1),
  }));
  r.summary = { ...r.history.at(-1), old_key: 7, _wandb: { runtime: runtimeEach * steps.length } };
  r.output = ["line 1", "line 2"];
}

Deno.test("wandb resume: the server's history decides; rows it lacks come from metrics.jsonl", async () => {
  const fake = startFakeWandb(KEY);
  try {
    const first = await start(fake.url);
    await first.finish(255);
    const r = [...fake.runs.values()][0];
    // The server got steps 10 and 20 (t = 1050, 1100); metrics.jsonl has 30 and 40 too (the
    // kill came before they were sent).
    seed(r, [10, 20]);
    const history = [10, 20, 30, 40].map((s, i) => ({
      step: s,
      time: 1_050 + 50 * i,
      loss: 1 / s,
    }));
    const lines: string[] = [];
    const second = await start(fake.url, { id: first.id, history, log: (l) => lines.push(l) });
    second.log({ loss: 0.02 }, 50);
    await second.finish(0);
    assertEquals(r.history.map((h) => h._step), [10, 20, 30, 40, 50]);
    const runtimes = r.history.map((h) => h._runtime as number);
    assertEquals(runtimes.slice(0, 4), [50, 100, 150, 200]);
    assert(runtimes[4] >= 200, `runtime continues: ${runtimes}`);
    assertEquals(r.summary.old_key, 7, "the summary continues");
    assertEquals(r.summary.loss, 0.02);
    assert((r.summary._wandb as { runtime: number }).runtime >= 200);
    assert(fake.ops.indexOf("RunResumeStatus") < fake.ops.lastIndexOf("UpsertBucket"));
    assertEquals(r.output.slice(0, 2), ["line 1", "line 2"], "output.log continues after");
    assert(lines.some((l) => l.includes("sending 2 more from metrics.jsonl")), lines.join("\n"));
    assertEquals([r.complete, r.exitcode], [true, 0]);
  } finally {
    await fake.close();
  }
});

Deno.test("wandb resume: steps the server has already are not sent twice", async () => {
  const fake = startFakeWandb(KEY);
  try {
    const first = await start(fake.url);
    await first.finish(255);
    const r = [...fake.runs.values()][0];
    seed(r, [10, 20, 30]);
    // Resumed from a state of step 20: step 30 runs again.
    const history = [10, 20].map((s, i) => ({ step: s, time: 1_050 + 50 * i, loss: 1 / s }));
    const second = await start(fake.url, { id: first.id, history });
    second.log({ loss: 0.5 }, 30);
    second.log({ loss: 0.4 }, 40);
    await second.finish(0);
    assertEquals(r.history.map((h) => [h._step, h.loss]), [
      [10, 0.1],
      [20, 0.05],
      [30, 1 / 30],
      [40, 0.4],
    ]);
  } finally {
    await fake.close();
  }
});

Deno.test("wandb run: an outage warns once, keeps the rows and sends them when it ends", async () => {
  const fake = startFakeWandb(KEY);
  const lines: string[] = [];
  try {
    fake.failWith = 503;
    const run = await start(fake.url, { log: (l) => lines.push(l) });
    for (let s = 1; s <= 5; s++) {
      const t = performance.now();
      run.log({ "train/loss": 1 / s }, s);
      assert(performance.now() - t < 5, "log never waits on the network");
      await sleep(30);
    }
    assertEquals(lines.filter((l) => l.includes("unreachable")).length, 1);
    assert(lines.every((l) => !l.includes(KEY)));
    fake.failWith = null;
    await run.finish(0, 5000);
    const r = [...fake.runs.values()][0];
    assertEquals(r.history.map((h) => h._step), [1, 2, 3, 4, 5]);
    assert(r.complete);
  } finally {
    await fake.close();
  }
});

Deno.test("wandb run: a server that is down costs at most the finish deadline", async () => {
  const fake = startFakeWandb(KEY);
  const url = fake.url;
  await fake.close(); // nothing listens there now
  const lines: string[] = [];
  const run = await start(url, {
    log: (l) => lines.push(l),
    timing: { ...FAST, maxBufferedRows: 3 },
  });
  for (let s = 1; s <= 7; s++) run.log({ x: s }, s);
  const t = performance.now();
  const r = await run.finish(0, 600);
  assert(performance.now() - t < 2000, `finish took ${performance.now() - t} ms`);
  assertEquals(r.ok, false);
  assert(lines.some((l) => /\d+ rows were not sent/.test(l)), lines.join("\n"));
});

Deno.test("wandb run: a wrong key is reported without the key and training goes on", async () => {
  const fake = startFakeWandb(KEY);
  const lines: string[] = [];
  try {
    const wrong = "f".repeat(40);
    const run = await start(fake.url, { log: (l) => lines.push(l) }, wrong);
    run.log({ x: 1 }, 1);
    await run.finish(0, 300);
    assert(fake.unauthorized > 0);
    assert(lines.some((l) => l.includes("HTTP 401")), lines.join("\n"));
    assert(lines.every((l) => !l.includes(wrong)));
  } finally {
    await fake.close();
  }
});

Deno.test("wandb sync: an offline run uploads as the same run, once", async () => {
  const dir = Deno.makeTempDirSync();
  const fake = startFakeWandb(KEY);
  try {
    const offline = await WandbRun.start({ mode: "offline", baseUrl: fake.url, apiKey: "" }, {
      project: "p",
      name: "n",
      config: { a: 1 },
      env: { tags: ["x"] },
      dir: `${dir}/runs/n`,
      log: () => {},
      timing: FAST,
    });
    offline.log({ x: 1 }, 10);
    offline.log({ x: 2 }, 20);
    offline.log({ y: NaN }, 20);
    await offline.finish(75);
    const dirs = offlineRunDirs(`${dir}/runs`);
    assertEquals(dirs, [`${dir}/runs/n/wandb/offline-run-${offline.id}`]);
    const lines: string[] = [];
    assertEquals(await syncOfflineRun(dirs[0], settingsFor(fake.url), (l) => lines.push(l)), 0);
    const r = fake.runs.get(`${FAKE_ENTITY}/p/${offline.id}`)!;
    assertEquals([r.displayName, (r.config!.a as { value: number }).value], ["n", 1]);
    assertEquals(r.tags, ["x"]);
    assertEquals(r.history.map((h) => [h._step, h.x]), [[10, 1], [20, 2]]);
    assert(Number.isNaN(r.history[1].y));
    assertEquals([r.complete, r.exitcode], [true, 75]);
    assert(r.files.has("wandb-metadata.json") && r.files.has("config.yaml"));
    // A second sync skips it.
    assertEquals(await syncOfflineRun(dirs[0], settingsFor(fake.url), (l) => lines.push(l)), 0);
    assertEquals(r.upserts, 1);
    assert(lines.at(-1)!.endsWith("already synced"));
  } finally {
    await fake.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("wandb sync: a server that is down leaves the run unsynced", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const offline = await WandbRun.start(
      { mode: "offline", baseUrl: "http://127.0.0.1:9", apiKey: "" },
      { project: "p", name: "n", config: {}, dir, log: () => {}, timing: FAST },
    );
    offline.log({ x: 1 }, 1);
    await offline.finish();
    const [run] = offlineRunDirs(dir);
    const fake = startFakeWandb(KEY);
    const url = fake.url;
    await fake.close();
    const unsent = await syncOfflineRun(run, settingsFor(url), () => {});
    assert(unsent > 0);
    let marked = true;
    try {
      Deno.statSync(`${run}/synced`);
    } catch {
      marked = false;
    }
    assertEquals(marked, false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("wandb offline: a resumed offline run continues its history without repeating a step", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const settings: WandbSettings = { mode: "offline", baseUrl: "http://127.0.0.1:9", apiKey: "" };
    const opts = { project: "p", name: "n", config: {}, dir, log: () => {}, timing: FAST };
    const first = await WandbRun.start(settings, opts);
    first.log({ x: 10 }, 10);
    first.log({ x: 20 }, 20);
    await first.finish(75);
    // The resumed session: metrics.jsonl has step 30 too (logged after the state was saved).
    const history = [10, 20, 30].map((s) => ({ step: s, time: 1_000 + s, x: s }));
    const second = await WandbRun.start(settings, { ...opts, id: first.id, history });
    second.log({ x: 40 }, 40);
    await second.finish(0);
    const rows = Deno.readTextFileSync(`${dir}/wandb/offline-run-${first.id}/wandb-history.jsonl`)
      .trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(rows.map((r) => [r._step, r.x]), [[10, 10], [20, 20], [30, 30], [40, 40]]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
