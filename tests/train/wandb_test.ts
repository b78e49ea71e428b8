import { assert, assertEquals } from "../assert.ts";
import {
  netrcPassword,
  offlineRunDirs,
  syncOfflineRun,
  WandbRun,
  type WandbSettings,
  wandbSettingsFromEnv,
} from "../../lib/train/wandb.ts";
import { FAKE_ENTITY, startFakeWandb } from "./fake_wandb.ts";

const KEY = "0123456789abcdef0123456789abcdef01234567";

function envOf(vars: Record<string, string>) {
  return (n: string) => vars[n];
}

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

function settingsFor(url: string, key = KEY): WandbSettings {
  return { mode: "online", baseUrl: url, apiKey: key };
}

Deno.test("wandb run: created with project, name and config; rows with steps; completed", async () => {
  const fake = startFakeWandb(KEY);
  const lines: string[] = [];
  try {
    const run = new WandbRun(settingsFor(fake.url), {
      project: "deit3",
      name: "mnist-vit-tiny",
      config: { "learning-rate": 0.001, name: "mnist-vit-tiny" },
      log: (l) => lines.push(l),
      flushIntervalMs: 20,
    });
    run.log({ "train/loss": 2.5 }, 10);
    run.log({ "train/loss": 2.0 }, 20);
    run.log({ "val/acc1": 0.5 }, 20); // same step: the same row
    await new Promise((r) => setTimeout(r, 200));
    run.log({ "train/loss": 1.5 }, 30);
    await run.finish();
    const r = fake.runs.get(`${FAKE_ENTITY}/deit3/${run.id}`)!;
    assert(r, "the run was created");
    assertEquals(r.displayName, "mnist-vit-tiny");
    assertEquals((r.config!["learning-rate"] as { value: number }).value, 0.001);
    assertEquals(r.history.map((h) => h._step), [10, 20, 30]);
    assertEquals(r.history[1]["val/acc1"], 0.5);
    assertEquals(r.summary["train/loss"], 1.5);
    assertEquals([r.complete, r.exitcode], [true, 0]);
    assertEquals(fake.unauthorized, 0);
    for (const text of [...fake.bodies, ...lines]) assert(!text.includes(KEY), "key leaked");
  } finally {
    await fake.close();
  }
});

Deno.test("wandb run: an outage warns once, keeps the rows and sends them when it ends", async () => {
  const fake = startFakeWandb(KEY);
  const lines: string[] = [];
  try {
    fake.failWith = 503;
    const run = new WandbRun(settingsFor(fake.url), {
      project: "p",
      name: "n",
      config: {},
      log: (l) => lines.push(l),
      flushIntervalMs: 10,
    });
    for (let s = 1; s <= 5; s++) {
      const t = performance.now();
      run.log({ "train/loss": 1 / s }, s);
      assert(performance.now() - t < 5, "log never waits on the network");
      await new Promise((r) => setTimeout(r, 30));
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
  const run = new WandbRun(settingsFor(url), {
    project: "p",
    name: "n",
    config: {},
    log: (l) => lines.push(l),
    flushIntervalMs: 10,
    maxBufferedRows: 3,
  });
  for (let s = 1; s <= 7; s++) run.log({ x: s }, s);
  assertEquals(run.pending.length, 3, "the buffer is bounded (row 7 is still open)");
  const t = performance.now();
  await run.finish(0, 600);
  assert(performance.now() - t < 2000, `finish took ${performance.now() - t} ms`);
  assert(lines.some((l) => l.includes("3 rows were not sent")), lines.join("\n"));
});

Deno.test("wandb run: a resumed run continues the same run after its history", async () => {
  const fake = startFakeWandb(KEY);
  try {
    const opts = { project: "p", name: "n", config: {}, log: () => {}, flushIntervalMs: 10 };
    const first = new WandbRun(settingsFor(fake.url), opts);
    first.log({ x: 1 }, 1);
    first.log({ x: 2 }, 2);
    await first.finish();
    const second = new WandbRun(settingsFor(fake.url), { ...opts, id: first.id });
    second.log({ x: 3 }, 3);
    await second.finish();
    assertEquals(fake.runs.size, 1);
    const r = [...fake.runs.values()][0];
    assertEquals(r.history.map((h) => h._step), [1, 2, 3]);
    assertEquals(r.upserts, 2);
  } finally {
    await fake.close();
  }
});

Deno.test("wandb run: a wrong key is reported without the key and training goes on", async () => {
  const fake = startFakeWandb(KEY);
  const lines: string[] = [];
  try {
    const wrong = "f".repeat(40);
    const run = new WandbRun(settingsFor(fake.url, wrong), {
      project: "p",
      name: "n",
      config: {},
      log: (l) => lines.push(l),
      flushIntervalMs: 10,
    });
    run.log({ x: 1 }, 1);
    await run.finish(0, 300);
    assert(fake.unauthorized > 0);
    assert(lines.some((l) => l.includes("HTTP 401")), lines.join("\n"));
    assert(lines.every((l) => !l.includes(wrong)));
  } finally {
    await fake.close();
  }
});

Deno.test("wandb run: offline mode writes the history under the run directory", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const run = new WandbRun({ mode: "offline", baseUrl: "http://127.0.0.1:9", apiKey: "" }, {
      project: "p",
      name: "n",
      config: { a: 1 },
      dir,
      log: () => {},
    });
    run.log({ x: 1 }, 5);
    await run.finish();
    const base = `${dir}/wandb/offline-run-${run.id}`;
    const rows = Deno.readTextFileSync(`${base}/wandb-history.jsonl`).trim().split("\n");
    assertEquals(JSON.parse(rows[0])._step, 5);
    assertEquals(JSON.parse(Deno.readTextFileSync(`${base}/config.json`)).config, { a: 1 });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("wandb sync: an offline run uploads as the same run, once", async () => {
  const dir = Deno.makeTempDirSync();
  const fake = startFakeWandb(KEY);
  try {
    const offline = new WandbRun({ mode: "offline", baseUrl: fake.url, apiKey: "" }, {
      project: "p",
      name: "n",
      config: { a: 1 },
      dir: `${dir}/runs/n`,
      log: () => {},
    });
    offline.log({ x: 1 }, 10);
    offline.log({ x: 2 }, 20);
    offline.log({ y: 3 }, 20);
    await offline.finish();
    const dirs = offlineRunDirs(`${dir}/runs`);
    assertEquals(dirs, [`${dir}/runs/n/wandb/offline-run-${offline.id}`]);
    const lines: string[] = [];
    assertEquals(await syncOfflineRun(dirs[0], settingsFor(fake.url), (l) => lines.push(l)), 0);
    const r = fake.runs.get(`${FAKE_ENTITY}/p/${offline.id}`)!;
    assertEquals([r.displayName, (r.config!.a as { value: number }).value], ["n", 1]);
    assertEquals(r.history.map((h) => [h._step, h.x, h.y]), [[10, 1, undefined], [20, 2, 3]]);
    assert(r.complete);
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
    const offline = new WandbRun({ mode: "offline", baseUrl: "http://127.0.0.1:9", apiKey: "" }, {
      project: "p",
      name: "n",
      config: {},
      dir,
      log: () => {},
    });
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
