import { assert, assertEquals } from "../assert.ts";
import { findRunDirs, runColumns, RunStore, serveDashboard } from "../../lib/report/dashboard.ts";
import { main } from "../../tasks/dashboard.ts";
import { writeSyntheticRun } from "../../bench/dashboard_runs.ts";

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

Deno.test("dashboard: reads appended lines, keeps a half-written line and a cut character", async () => {
  const root = await Deno.makeTempDir();
  try {
    const file = `${root}/r/metrics.jsonl`;
    await Deno.mkdir(`${root}/r`);
    await Deno.writeTextFile(file, '{"step":1,"time":0,"train/loss":2}\n{"step":2,"ti');
    const store = new RunStore(root);
    let runs = await store.refresh();
    assertEquals(runs.map((r) => [r.name, r.events.length]), [["r", 1]]);
    // "é" is two bytes in UTF-8; the first one ends this write.
    const note = new TextEncoder().encode('me":0,"train/loss":1,"note":"é"}\nnot json\n');
    const cut = note.indexOf(0xc3) + 1;
    await Deno.writeFile(file, note.subarray(0, cut), { append: true });
    runs = await store.refresh();
    assertEquals(runs[0].events.length, 1);
    await Deno.writeFile(file, note.subarray(cut), { append: true });
    runs = await store.refresh();
    assertEquals(runs[0].events.map((e) => [e["train/loss"], e.note]), [[2, undefined], [1, "é"]]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("dashboard: a metrics file replaced by a resume is read again from the start", async () => {
  const root = await Deno.makeTempDir();
  try {
    const file = `${root}/r/metrics.jsonl`;
    await Deno.mkdir(`${root}/r`);
    const line = (s: number) => JSON.stringify({ step: s, time: s, "train/loss": 1 / s }) + "\n";
    await Deno.writeTextFile(file, line(1) + line(2) + line(3));
    const store = new RunStore(root);
    const before = (await store.refresh())[0];
    // What truncateMetrics does: a new file (rename) with the kept rows, then the run appends
    // past the old length before the next refresh.
    await Deno.writeTextFile(`${file}.tmp`, line(1) + line(2) + line(3) + line(4) + line(5));
    await Deno.rename(`${file}.tmp`, file);
    const after = (await store.refresh())[0];
    assert(after.gen !== before.gen, "a new generation");
    assertEquals(after.events.map((e) => e.step), [1, 2, 3, 4, 5]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("dashboard: columns of the charted metrics, sparse where mostly empty, none if empty", () => {
  const cols = runColumns([
    { step: 1, time: 10, "train/loss": 2 },
    { step: 1, time: 11, "val/acc1": 0.5, "val/samples": 20, tag: "x" },
    { step: 2, time: 12, "train/loss": NaN, "train/lr": 1e-3 },
    { step: 3, time: 13, "train/loss": 1, "train/lr": 2e-3 },
  ], 1);
  assertEquals(cols, {
    step: [1, 2, 3],
    time: [11, 12, 13],
    "val/acc1": { i: [0], v: [0.5] },
    "train/loss": { i: [2], v: [1] },
    "train/lr": [null, 1e-3, 2e-3],
  });
});

const get = async (url: string, init?: RequestInit) => {
  const r = await fetch(url, init);
  const text = await r.text();
  return { status: r.status, text, headers: r.headers };
};

Deno.test("dashboard: serves the page, uPlot from its npm package, the runs, and only what changed", async () => {
  const root = await Deno.makeTempDir();
  const server = serveDashboard(root, 0);
  try {
    let data = JSON.parse((await get(`${server.url}api/data`)).text);
    assertEquals(data.runs, []);
    writeSyntheticRun(`${root}/a`, 1);
    writeSyntheticRun(`${root}/b`, 2);
    await Deno.writeTextFile(`${root}/b/config.json`, '{"criterion": "bce"}');
    const page = await get(server.url);
    assert(page.text.includes('src="/assets/uPlot.iife.min.js"'), "uPlot loaded from the server");
    assert(!/https?:\/\/(?!127\.0\.0\.1)/.test(page.text), "nothing from another site");
    const uplot = await get(`${server.url}assets/uPlot.iife.min.js`);
    assertEquals(uplot.status, 200);
    const pkg = Deno.readTextFileSync(
      new URL("../../node_modules/uplot/dist/uPlot.iife.min.js", import.meta.url),
    );
    assertEquals(uplot.text, pkg, "the npm package's file, as it is");
    assertEquals((await get(`${server.url}assets/dashboard.js`)).status, 200);
    assertEquals((await get(`${server.url}assets/../dashboard.ts`)).status, 404);

    data = JSON.parse((await get(`${server.url}api/data`)).text);
    assertEquals(data.runs.map((r: { name: string; count: number }) => [r.name, r.count]), [
      ["a", 8],
      ["b", 8],
    ]);
    assertEquals(data.lossUnit, "loss (bce, by run)");
    assertEquals(data.runs[1].summary.criterion, "bce");
    assertEquals(data.runs[0].cols.step.slice(0, 3), [20, 40, 60]);
    const have = (d: typeof data) =>
      encodeURIComponent(
        JSON.stringify(d.runs.map((r: { name: string; gen: number; count: number }) => [
          r.name,
          r.gen,
          r.count,
        ])),
      );
    const same = await get(`${server.url}api/data?have=${have(data)}`);
    assertEquals([same.status, JSON.parse(same.text)], [200, { unchanged: true }]);
    await Deno.writeTextFile(
      `${root}/a/metrics.jsonl`,
      JSON.stringify({ step: 140, time: 0, "train/loss": 0.1 }) + "\n",
      { append: true },
    );
    const moved = JSON.parse((await get(`${server.url}api/data?have=${have(data)}`)).text);
    assertEquals(moved.runs.map((r: { from: number; count: number }) => [r.from, r.count]), [
      [8, 9],
      [8, 8],
    ]);
    assertEquals(moved.runs[0].cols, { step: [140], time: [0], "train/loss": [0.1] });
    const runs = JSON.parse((await get(`${server.url}api/runs`)).text);
    assertEquals(runs.map((r: { name: string; step: number }) => [r.name, r.step]), [
      ["a", 140],
      ["b", 120],
    ]);
    assertEquals((await get(`${server.url}nothing`)).status, 404);
  } finally {
    await server.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("dashboard: other methods get 405, a foreign Host is refused (DNS rebinding)", async () => {
  const root = await Deno.makeTempDir();
  const server = serveDashboard(root, 0, { allowHosts: ["tunnel.example:9000"] });
  try {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "BREW"]) {
      const r = await get(`${server.url}api/runs`, { method });
      assertEquals(r.status, 405, method);
      assertEquals(r.headers.get("allow"), "GET, HEAD");
    }
    const withHost = async (host: string) => {
      // fetch sets Host from the URL; a raw request says what a rebinding page's browser sends.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(
        new TextEncoder().encode(
          `GET /api/runs HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
        ),
      );
      const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
      return Number(text.split(" ")[1]);
    };
    assertEquals(await withHost("evil.example"), 403);
    assertEquals(await withHost(`evil.example:${server.port}`), 403);
    assertEquals(await withHost("127.0.0.1:1"), 403);
    assertEquals(await withHost(`127.0.0.1:${server.port}`), 200);
    assertEquals(await withHost(`LOCALHOST:${server.port}`), 200);
    assertEquals(await withHost("tunnel.example:9000"), 200);
  } finally {
    await server.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "dashboard: 2,000 requests at concurrency 20 while a run appends: all 200, no event lost",
  // The writer is another process, as a training run is.
  fn: async () => {
    const root = await Deno.makeTempDir();
    await Deno.mkdir(`${root}/live`);
    const file = `${root}/live/metrics.jsonl`;
    await Deno.writeTextFile(file, "");
    const server = serveDashboard(root, 0);
    const EVENTS = 600;
    // Each line in two writes, cut in the middle, with pauses: readers see partial lines.
    const writer = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const f = await Deno.open(${JSON.stringify(file)}, { append: true });
         const enc = new TextEncoder();
         for (let s = 1; s <= ${EVENTS}; s++) {
           const line = enc.encode(JSON.stringify({ step: s, time: s, "train/loss": 1 / s }) + "\\n");
           const cut = 1 + (s * 7) % (line.length - 1);
           await f.write(line.subarray(0, cut));
           if (s % 3 === 0) await new Promise((r) => setTimeout(r, 1));
           await f.write(line.subarray(cut));
           if (s % 5 === 0) await new Promise((r) => setTimeout(r, 2));
         }
         f.close();`,
      ],
      stdout: "null",
    }).spawn();
    const statuses = new Map<string, number>();
    let sawGrowth = 0;
    try {
      let next = 0;
      const worker = async () => {
        // Each worker is a page: it merges incremental answers and checks they join up.
        let gen = -1, steps: number[] = [];
        while (next < 2000) {
          const i = next++;
          // Kinds: 0, 1: a page's incremental poll; 2: everything; 3: the run list.
          const kind = i % 4;
          const known = kind === 2 || gen < 0 ? [] : [["live", gen, steps.length]];
          const url = kind === 3
            ? `${server.url}api/runs`
            : `${server.url}api/data?have=${encodeURIComponent(JSON.stringify(known))}`;
          const r = await fetch(url);
          const key = `${kind < 2 ? "poll" : kind === 2 ? "all" : "runs"} ${r.status}`;
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          if (r.status !== 200) {
            await r.body?.cancel();
            continue;
          }
          const body = await r.json();
          if (kind === 3 || body.unchanged) continue;
          const run = body.runs[0];
          if (kind === 2) {
            assertEquals(run.from, 0);
            assertEquals(run.cols.step, Array.from({ length: run.count }, (_, k) => k + 1));
            continue;
          }
          if (run.from === 0) steps = [];
          assertEquals(run.from, steps.length, "an answer starts where the page stopped");
          steps.push(...run.cols.step);
          gen = run.gen;
          assertEquals(steps.length, run.count);
          for (let k = 0; k < steps.length; k++) {
            if (steps[k] !== k + 1) throw new Error(`event ${k + 1} lost: got step ${steps[k]}`);
          }
          if (steps.length > 0 && steps.length < EVENTS) sawGrowth++;
        }
      };
      await Promise.all(Array.from({ length: 20 }, worker));
      assertEquals(await writer.status.then((s) => s.code), 0);
      const bad = [...statuses].filter(([k]) => !k.endsWith(" 200"));
      assertEquals(bad, [], JSON.stringify([...statuses]));
      assertEquals([...statuses.values()].reduce((a, b) => a + b), 2000);
      const all = await (await fetch(`${server.url}api/data`)).json();
      assertEquals(all.runs[0].cols.step, Array.from({ length: EVENTS }, (_, k) => k + 1));
      assert(sawGrowth > 0, "the requests overlapped the writes");
    } finally {
      try {
        writer.kill();
      } catch {
        // already exited
      }
      await writer.status;
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("dashboard task: --help, bad port and missing directory", async () => {
  const out: string[] = [];
  const log = console.log, err = console.error;
  console.log = (s: string) => out.push(s);
  console.error = (s: string) => out.push(s);
  try {
    assertEquals(await main(["--help"]), 0);
    assert(out.join("\n").includes("--port N"));
    assert(out.join("\n").includes("--allow-host"));
    assertEquals(await main(["runs", "--port", "http"]), 2);
    assert(out.at(-1)!.includes('--port must be an integer in [0, 65535], got "http"'));
    assertEquals(await main(["/nonexistent/dir"]), 2);
    assert(out.at(-1)!.includes('RUNS_DIR "/nonexistent/dir" is not a readable directory'));
  } finally {
    console.log = log;
    console.error = err;
  }
});
