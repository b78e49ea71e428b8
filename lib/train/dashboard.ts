/**
 * The live dashboard of `deno task dashboard`: every run under a directory (each folder with a
 * `metrics.jsonl`), their curves overlaid, served on 127.0.0.1 and refreshed while they train.
 *
 * The server renders the charts (the SVG of `charts.ts`, the same as `metrics.html`); the page
 * polls `/view` every two seconds and swaps in the new charts when a metrics file changed.
 * `/api/runs` lists the runs as JSON.
 */
import { CHART_CSS, esc, type MetricEvent, renderCharts, RUN_COLORS } from "./charts.ts";

export interface RunData {
  name: string;
  dir: string;
  events: MetricEvent[];
  /** The metrics file's modification time (ms since the epoch). */
  updated: number;
}

export interface RunSummary {
  name: string;
  dir: string;
  events: number;
  step: number;
  lastAcc1?: number;
  bestAcc1?: number;
  updated: number;
}

/** Reads the runs under `root` incrementally: each file is read from where it was left. */
export class RunStore {
  readonly #files = new Map<string, { offset: number; rest: string; events: MetricEvent[] }>();

  constructor(readonly root: string, readonly maxDepth = 4) {}

  /** Finds the runs and reads what was appended since the last call. */
  async refresh(): Promise<RunData[]> {
    const found = await findRunDirs(this.root, this.maxDepth);
    const runs = [];
    for (const dir of found) {
      const path = `${dir}/metrics.jsonl`;
      let stat: Deno.FileInfo;
      try {
        stat = await Deno.stat(path);
      } catch {
        continue;
      }
      let entry = this.#files.get(path);
      if (!entry || stat.size < entry.offset) {
        // New, or rewritten shorter: read from the start.
        entry = { offset: 0, rest: "", events: [] };
        this.#files.set(path, entry);
      }
      if (stat.size > entry.offset) {
        using file = await Deno.open(path);
        await file.seek(entry.offset, Deno.SeekMode.Start);
        const buf = new Uint8Array(stat.size - entry.offset);
        let n = 0;
        while (n < buf.length) {
          const r = await file.read(buf.subarray(n));
          if (r === null) break;
          n += r;
        }
        entry.offset += n;
        const text = entry.rest + new TextDecoder().decode(buf.subarray(0, n));
        const lines = text.split("\n");
        entry.rest = lines.pop() ?? ""; // a line still being written
        for (const line of lines) {
          if (!line.trim()) continue;
          try {
            const e = JSON.parse(line);
            if (typeof e.step === "number") entry.events.push(e);
          } catch {
            // a corrupt line: skipped, the rest of the run still shows
          }
        }
      }
      const name = relativeName(this.root, dir);
      runs.push({ name, dir, events: entry.events, updated: stat.mtime?.getTime() ?? 0 });
    }
    return runs.sort((a, b) => a.name.localeCompare(b.name));
  }
}

/** Folders under `root` (itself included) that hold a metrics.jsonl, down to `maxDepth`. */
export async function findRunDirs(root: string, maxDepth = 4): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, depth: number) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return;
    }
    if (entries.some((e) => e.isFile && e.name === "metrics.jsonl")) out.push(dir);
    if (depth >= maxDepth) return;
    for (const e of entries) {
      if (e.isDirectory && !e.name.startsWith(".") && e.name !== "node_modules") {
        await walk(`${dir}/${e.name}`, depth + 1);
      }
    }
  };
  await walk(root.replace(/\/+$/, "") || "/", 0);
  return out;
}

export function summarize(run: RunData): RunSummary {
  const evals = run.events.filter((e) => typeof e["val/acc1"] === "number");
  const last = evals.at(-1);
  return {
    name: run.name,
    dir: run.dir,
    events: run.events.length,
    step: run.events.reduce((m, e) => Math.max(m, e.step), 0),
    lastAcc1: last?.["val/acc1"] as number | undefined,
    bestAcc1: evals.length
      ? Math.max(...evals.map((e) => (e["val/best_acc1"] ?? e["val/acc1"]) as number))
      : undefined,
    updated: run.updated,
  };
}

/** The body of the page below its header: the run table and every chart. */
export function renderView(
  runs: RunData[],
  root: string,
): string {
  if (runs.length === 0) {
    return `<p id="empty">no runs under ${esc(root)} yet (a run is a folder with metrics.jsonl); ` +
      `this page updates when one starts</p>`;
  }
  const pct = (v: number | undefined) => v === undefined ? "-" : `${(v * 100).toFixed(2)}%`;
  const rows = runs.map((r, i) => {
    const s = summarize(r);
    return `<tr class="run" data-run="${esc(r.name)}"><td><span class="swatch" style="background:${
      RUN_COLORS[i % RUN_COLORS.length]
    }"></span>${esc(r.name)}</td><td>${s.step}</td><td>${pct(s.lastAcc1)}</td><td>${
      pct(s.bestAcc1)
    }</td><td>${new Date(s.updated).toISOString().replace("T", " ").slice(0, 19)} UTC</td></tr>`;
  });
  const table = `<table id="runs"><thead><tr><th>run</th><th>step</th><th>val acc1</th>` +
    `<th>best acc1</th><th>updated</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
  const charts = renderCharts(runs);
  return table + (charts.length ? charts.join("\n") : "<p>no metrics logged yet</p>");
}

export function renderPage(root: string, view: string, version: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>deit3-deno runs: ${
    esc(root)
  }</title><style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}` +
    `table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}` +
    `.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}` +
    `#status{color:#888}${CHART_CSS}</style></head><body>` +
    `<h2>Runs under ${esc(root)}</h2><p id="status">live: refreshed every 2 s</p>` +
    `<div id="view" data-version="${esc(version)}">${view}</div>` +
    `<script>${POLL_SCRIPT}</script></body></html>\n`;
}

/** Polls /view with the version it shows; the server answers 204 when nothing changed. */
const POLL_SCRIPT = `(() => {
  const view = document.getElementById("view"), status = document.getElementById("status");
  async function poll() {
    try {
      const r = await fetch("/view?version=" + encodeURIComponent(view.dataset.version));
      if (r.status === 200) {
        view.innerHTML = await r.text();
        view.dataset.version = r.headers.get("x-version") || "";
      }
      status.textContent = "live: updated " + new Date().toLocaleTimeString();
    } catch (e) {
      status.textContent = "dashboard server unreachable; retrying";
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();`;

export interface DashboardServer {
  url: string;
  port: number;
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

/** Serves the dashboard of the runs under `root` on 127.0.0.1:`port` (0: any free port). */
export function serveDashboard(root: string, port: number): DashboardServer {
  const store = new RunStore(root);
  const current = async () => {
    const runs = await store.refresh();
    const version = runs.map((r) => `${r.name}:${r.events.length}:${r.updated}`).join("|");
    return { runs, version };
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const headers = { "cache-control": "no-store" };
    if (url.pathname === "/") {
      const { runs, version } = await current();
      return new Response(renderPage(root, renderView(runs, root), version), {
        headers: { ...headers, "content-type": "text/html; charset=utf-8" },
      });
    }
    if (url.pathname === "/view") {
      const { runs, version } = await current();
      if (url.searchParams.get("version") === version) return new Response(null, { status: 204 });
      return new Response(renderView(runs, root), {
        headers: { ...headers, "content-type": "text/html; charset=utf-8", "x-version": version },
      });
    }
    if (url.pathname === "/api/runs") {
      const { runs } = await current();
      return Response.json(runs.map(summarize), { headers });
    }
    return new Response("not found", { status: 404 });
  });
  const actual = server.addr.port;
  return {
    url: `http://127.0.0.1:${actual}/`,
    port: actual,
    finished: server.finished,
    shutdown: () => server.shutdown(),
  };
}

function relativeName(root: string, dir: string): string {
  const r = root.replace(/\/+$/, "");
  if (dir === r) return r.split("/").pop() || ".";
  return dir.startsWith(r + "/") ? dir.slice(r.length + 1) : dir;
}
