import { assert, assertEquals } from "../assert.ts";
import { findRunDirs, RunStore, serveDashboard } from "../../lib/train/dashboard.ts";
import { main } from "../../tasks/dashboard.ts";
import { writeSyntheticRun } from "./dashboard_helpers.ts";

Deno.test("dashboard: finds every folder with a metrics.jsonl", async () => {
  const root = await Deno.makeTempDir();
  try {
    writeSyntheticRun(`${root}/a`, 1);
    writeSyntheticRun(`${root}/group/b`, 2);
    await Deno.mkdir(`${root}/empty`);
    const dirs = (await findRunDirs(root)).map((d) => d.slice(root.length + 1)).sort();
    assertEquals(dirs, ["a", "group/b"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("dashboard: reads appended lines, keeps a half-written one for later", async () => {
  const root = await Deno.makeTempDir();
  try {
    const file = `${root}/r/metrics.jsonl`;
    await Deno.mkdir(`${root}/r`);
    await Deno.writeTextFile(file, '{"step":1,"time":0,"train/loss":2}\n{"step":2,"ti');
    const store = new RunStore(root);
    let runs = await store.refresh();
    assertEquals(runs.map((r) => [r.name, r.events.length]), [["r", 1]]);
    await Deno.writeTextFile(file, 'me":0,"train/loss":1}\nnot json\n', { append: true });
    runs = await store.refresh();
    assertEquals(runs[0].events.map((e) => e["train/loss"]), [2, 1]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("dashboard: serves the page, the run list, and a new view only when a run moved", async () => {
  const root = await Deno.makeTempDir();
  const server = serveDashboard(root, 0);
  try {
    let page = await (await fetch(server.url)).text();
    assert(page.includes("no runs under"), "empty directory");
    writeSyntheticRun(`${root}/a`, 1);
    writeSyntheticRun(`${root}/b`, 2);
    page = await (await fetch(server.url)).text();
    assert(page.includes('data-run="a"') && page.includes('data-run="b"'));
    const version = page.match(/data-version="([^"]*)"/)![1];
    const runs = await (await fetch(`${server.url}api/runs`)).json();
    assertEquals(runs.map((r: { name: string; step: number }) => [r.name, r.step]), [
      ["a", 120],
      ["b", 120],
    ]);
    const same = await fetch(`${server.url}view?version=${encodeURIComponent(version)}`);
    await same.body?.cancel();
    assertEquals(same.status, 204);
    await Deno.writeTextFile(
      `${root}/a/metrics.jsonl`,
      JSON.stringify({ step: 140, time: 0, "train/loss": 0.1 }) + "\n",
      { append: true },
    );
    const moved = await fetch(`${server.url}view?version=${encodeURIComponent(version)}`);
    assertEquals(moved.status, 200);
    assert((await moved.text()).includes("<td>140</td>"));
    const missing = await fetch(`${server.url}nothing`);
    await missing.body?.cancel();
    assertEquals(missing.status, 404);
  } finally {
    await server.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("dashboard task: --help, bad port and missing directory", async () => {
  const out: string[] = [];
  const log = console.log, err = console.error;
  console.log = (s: string) => out.push(s);
  console.error = (s: string) => out.push(s);
  try {
    assertEquals(await main(["--help"]), 0);
    assert(out.join("\n").includes("--port N"));
    assertEquals(await main(["runs", "--port", "http"]), 2);
    assert(out.at(-1)!.includes('--port must be an integer in [0, 65535], got "http"'));
    assertEquals(await main(["/nonexistent/dir"]), 2);
    assert(out.at(-1)!.includes('RUNS_DIR "/nonexistent/dir" is not a readable directory'));
  } finally {
    console.log = log;
    console.error = err;
  }
});
