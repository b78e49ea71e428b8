/**
 * The live dashboard of `deno task dashboard`: every run under a directory (each folder with a
 * `metrics.jsonl`), their curves overlaid, served on 127.0.0.1 and updated while they train.
 *
 * The server reads the runs (`RunStore`) and hands their numbers to the page as JSON
 * (`/api/data`, incrementally); the page (`dashboard_assets/`) draws them with uPlot, served from
 * its npm package. The static per-run `metrics.html` stays SVG (`charts.ts`).
 */
import { createRequire } from "node:module";
import { CHARTS, esc, lossUnit, type MetricEvent, RUN_COLORS } from "./charts.ts";

export interface RunData {
  name: string;
  dir: string;
  events: MetricEvent[];
  /** The same events as columns, for the page. */
  columns: Columns;
  /** Changes whenever the metrics file was replaced or rewritten shorter (read from the start). */
  gen: number;
  /** The run's `criterion` from its config.json ("ce", "bce"), when it says. */
  criterion?: string;
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
  criterion?: string;
  updated: number;
}

interface FileState {
  ino: number | null;
  offset: number;
  /** Decodes across reads: a multi-byte character cut by a read is completed by the next one. */
  decoder: TextDecoder;
  /** The text after the last newline: a line still being written. */
  rest: string;
  events: MetricEvent[];
  columns: Columns;
  gen: number;
  config?: { mtime: number; criterion?: string };
}

let generations = 0;

/**
 * Reads the runs under `root` incrementally: each file from where the last read stopped. One
 * refresh runs at a time; callers that arrive while one runs share the next one, so each caller
 * sees everything written before it called, and no two reads ever race on a file's offset.
 */
export class RunStore {
  readonly #files = new Map<string, FileState>();
  #running: Promise<RunData[]> | null = null;
  #queued: Promise<RunData[]> | null = null;

  constructor(readonly root: string, readonly maxDepth = 4) {}

  /** Finds the runs and reads what was appended since the last call. */
  refresh(): Promise<RunData[]> {
    if (!this.#running) {
      this.#running = this.#read().finally(() => (this.#running = null));
      return this.#running;
    }
    // One is reading: it may have passed what this caller needs, so share the next one.
    this.#queued ??= this.#running.catch(() => {}).then(() => {
      this.#queued = null;
      return this.refresh();
    });
    return this.#queued;
  }

  async #read(): Promise<RunData[]> {
    const found = await findRunDirs(this.root, this.maxDepth);
    const runs: RunData[] = [];
    const seen = new Set<string>();
    for (const dir of found) {
      const path = `${dir}/metrics.jsonl`;
      seen.add(path);
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path);
      } catch {
        continue; // removed since the directory was listed
      }
      let entry: FileState;
      let stat: Deno.FileInfo;
      try {
        stat = await file.stat();
        entry = this.#files.get(path) ?? newFile();
        if (entry.ino !== stat.ino || stat.size < entry.offset) {
          // New, replaced (a resume truncates it by writing a new file) or rewritten shorter.
          entry = newFile(stat.ino);
        }
        this.#files.set(path, entry);
        await readAppended(file, entry);
      } finally {
        file.close();
      }
      entry.config = await readCriterion(dir, entry.config);
      runs.push({
        name: relativeName(this.root, dir),
        dir,
        events: entry.events,
        columns: entry.columns,
        gen: entry.gen,
        criterion: entry.config?.criterion,
        updated: stat.mtime?.getTime() ?? 0,
      });
    }
    for (const path of this.#files.keys()) if (!seen.has(path)) this.#files.delete(path);
    return runs.sort((a, b) => a.name.localeCompare(b.name));
  }
}

function newFile(ino: number | null = null): FileState {
  return {
    ino,
    offset: 0,
    decoder: new TextDecoder(),
    rest: "",
    events: [],
    columns: new Columns(),
    gen: ++generations,
  };
}

/** Reads `file` from `entry.offset` to its end, keeping a last line without its newline. */
async function readAppended(file: Deno.FsFile, entry: FileState): Promise<void> {
  await file.seek(entry.offset, Deno.SeekMode.Start);
  const buf = new Uint8Array(1 << 16);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    entry.offset += n;
    const lines = (entry.rest + entry.decoder.decode(buf.subarray(0, n), { stream: true }))
      .split("\n");
    entry.rest = lines.pop()!;
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        const e = JSON.parse(line);
        if (typeof e.step !== "number") continue;
        entry.events.push(e);
        entry.columns.push(e);
      } catch {
        // a corrupt line: skipped, the rest of the run still shows
      }
    }
  }
}

/** The run's criterion from its config.json, read again only when the file changed. */
async function readCriterion(
  dir: string,
  known: FileState["config"],
): Promise<FileState["config"]> {
  try {
    const stat = await Deno.stat(`${dir}/config.json`);
    const mtime = stat.mtime?.getTime() ?? 0;
    if (known && known.mtime === mtime) return known;
    const c = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    return { mtime, criterion: typeof c.criterion === "string" ? c.criterion : undefined };
  } catch {
    return known; // no config.json (yet), or one being written
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
  let step = 0, lastAcc1: number | undefined, bestAcc1: number | undefined;
  for (const e of run.events) {
    step = Math.max(step, e.step);
    const acc = e["val/acc1"];
    if (typeof acc !== "number") continue;
    lastAcc1 = acc;
    const best = (e["val/best_acc1"] ?? acc) as number;
    bestAcc1 = bestAcc1 === undefined ? best : Math.max(bestAcc1, best);
  }
  return {
    name: run.name,
    dir: run.dir,
    events: run.events.length,
    step,
    lastAcc1,
    bestAcc1,
    criterion: run.criterion,
    updated: run.updated,
  };
}

/** The metrics the charts draw: only these (with step and time) are sent to the page. */
const CHARTED = new Set(["step", "time", ...CHARTS.flatMap((k) => k.metrics.map((m) => m.key))]);

/** A column as sent: every row, or (mostly empty) the rows that have a value and their values. */
export type SentColumn = (number | null)[] | { i: number[]; v: (number | null)[] };

/**
 * A run's charted metrics as columns: `step`, `time` and each metric, null where an event lacks
 * it or holds a non-finite value. Kept as the events are read, so that a page's request costs a
 * slice, not a pass over every event.
 */
export class Columns {
  readonly cols: Record<string, (number | null)[]> = { step: [], time: [] };
  length = 0;

  push(e: MetricEvent): void {
    const n = this.length++;
    for (const k in e) {
      const v = e[k];
      if (typeof v !== "number" || !CHARTED.has(k)) continue;
      const col = this.cols[k] ??= new Array(n).fill(null);
      col.push(Number.isFinite(v) ? v : null);
    }
    for (const k in this.cols) if (this.cols[k].length === n) this.cols[k].push(null);
  }

  /**
   * The columns from row `from` on, leaving out those with no value there; a column with values
   * in fewer than half its rows (evals among train rows) as row indices (from `from`) and values.
   */
  slice(from = 0): Record<string, SentColumn> {
    const out: Record<string, SentColumn> = {};
    for (const [k, col] of Object.entries(this.cols)) {
      const part = col.slice(from);
      const i: number[] = [];
      part.forEach((v, r) => v !== null && i.push(r));
      if (k === "step" || k === "time" || 2 * i.length >= part.length) out[k] = part;
      else if (i.length > 0) out[k] = { i, v: i.map((r) => part[r]) };
    }
    return out;
  }
}

export function runColumns(events: MetricEvent[], from = 0): Record<string, SentColumn> {
  const c = new Columns();
  for (const e of events) c.push(e);
  return c.slice(from);
}

/** What the page knows of each run: [name, gen, events held], as it sends in `have`. */
type Have = [string, number, number][];

function parseHave(text: string | null): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  if (!text) return out;
  try {
    const have = JSON.parse(text) as Have;
    if (!Array.isArray(have)) return out;
    for (const h of have) {
      if (
        Array.isArray(h) && typeof h[0] === "string" && Number.isInteger(h[1]) &&
        Number.isInteger(h[2])
      ) {
        out.set(h[0], [h[1], h[2]]);
      }
    }
  } catch {
    // malformed: everything is sent again
  }
  return out;
}

/**
 * `/api/data`: every run, with the events the page lacks. A run whose gen matches the page's is
 * sent from the page's count on; any other from the start. Null when the page is up to date
 * (the answer is then `{"unchanged": true}`).
 */
export function dataUpdate(runs: RunData[], haveText: string | null): unknown | null {
  const have = parseHave(haveText);
  let changed = haveText === null || have.size !== runs.length;
  const out = runs.map((run) => {
    const h = have.get(run.name);
    const from = h && h[0] === run.gen && h[1] <= run.events.length ? h[1] : 0;
    if (from !== run.events.length || !h) changed = true;
    return {
      name: run.name,
      gen: run.gen,
      from,
      count: run.events.length,
      summary: summarize(run),
      cols: run.columns.slice(from),
    };
  });
  return changed ? { runs: out, lossUnit: lossUnit(runs.map((r) => r.criterion)) } : null;
}

/** The files the page loads, by the path it asks for: uPlot from its npm package, ours beside. */
function loadAssets(): Map<string, { body: string; type: string }> {
  const require = createRequire(import.meta.url);
  const own = (name: string) =>
    Deno.readTextFileSync(new URL(`./dashboard_assets/${name}`, import.meta.url));
  let uplot: string, uplotCss: string;
  try {
    uplot = Deno.readTextFileSync(require.resolve("uplot/dist/uPlot.iife.min.js"));
    uplotCss = Deno.readTextFileSync(require.resolve("uplot/dist/uPlot.min.css"));
  } catch (e) {
    throw new Error(
      `the dashboard needs the npm package uplot (deno.json imports) and could not read it ` +
        `(${(e as Error).message}); run deno install in the repository`,
    );
  }
  const js = "text/javascript; charset=utf-8", css = "text/css; charset=utf-8";
  return new Map([
    ["/assets/uPlot.iife.min.js", { body: uplot, type: js }],
    ["/assets/uPlot.min.css", { body: uplotCss, type: css }],
    ["/assets/dashboard.js", { body: own("dashboard.js"), type: js }],
    ["/assets/dashboard.css", { body: own("dashboard.css"), type: css }],
  ]);
}

/** The page: a shell that loads uPlot and dashboard.js, with the chart definitions as JSON. */
export function renderPage(root: string): string {
  const config = { root, charts: CHARTS, runColors: RUN_COLORS };
  // In a <script> element only "</" could end it early; \u003c keeps the JSON equal.
  const json = JSON.stringify(config).replaceAll("<", "\\u003c");
  return `<!doctype html><html><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>deit3-deno runs: ${esc(root)}</title>` +
    `<link rel="stylesheet" href="/assets/uPlot.min.css">` +
    `<link rel="stylesheet" href="/assets/dashboard.css">` +
    `<script src="/assets/uPlot.iife.min.js"></script>` +
    `<script type="module" src="/assets/dashboard.js"></script>` +
    `<script type="application/json" id="dashboard-config">${json}</script>` +
    `</head><body><header><h2>Runs under ${esc(root)}</h2>` +
    `<span id="status">loading</span></header>` +
    `<div id="controls"></div><table id="runs"></table><div id="charts"></div>` +
    `<noscript>the charts need JavaScript; each run's metrics.html shows them without</noscript>` +
    `</body></html>\n`;
}

export interface DashboardServer {
  url: string;
  port: number;
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

export interface DashboardOptions {
  /**
   * More `Host:` values to answer (host or host:port), e.g. the name of an ssh tunnel's local
   * end. 127.0.0.1:PORT and localhost:PORT are always answered; any other host is refused, so a
   * web page on another site cannot reach the server by rebinding its DNS name to 127.0.0.1.
   */
  allowHosts?: string[];
}

/** Serves the dashboard of the runs under `root` on 127.0.0.1:`port` (0: any free port). */
export function serveDashboard(
  root: string,
  port: number,
  opts: DashboardOptions = {},
): DashboardServer {
  const assets = loadAssets();
  const store = new RunStore(root);
  const hosts = new Set<string>();
  const headers = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy":
      "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response(`method ${req.method} not allowed: the dashboard only reads\n`, {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    const host = req.headers.get("host")?.toLowerCase() ?? "";
    if (!hosts.has(host)) {
      return new Response(
        `host "${host}" refused: this dashboard answers ${[...hosts].join(", ")} ` +
          `(deno task dashboard --allow-host NAME adds one)\n`,
        { status: 403 },
      );
    }
    const url = new URL(req.url);
    const asset = assets.get(url.pathname);
    if (asset) {
      return new Response(asset.body, { headers: { ...headers, "content-type": asset.type } });
    }
    if (url.pathname === "/") {
      return new Response(renderPage(root), {
        headers: { ...headers, "content-type": "text/html; charset=utf-8" },
      });
    }
    if (url.pathname === "/api/data") {
      const update = dataUpdate(await store.refresh(), url.searchParams.get("have"));
      // Up to date: a small answer, not 204 (browsers log a 204 to fetch as an aborted request).
      return Response.json(update ?? { unchanged: true }, { headers });
    }
    if (url.pathname === "/api/runs") {
      return Response.json((await store.refresh()).map(summarize), { headers });
    }
    if (url.pathname === "/favicon.ico") return new Response(null, { status: 204, headers });
    return new Response("not found\n", { status: 404, headers });
  });
  const actual = server.addr.port;
  for (const h of ["127.0.0.1", "localhost", ...(opts.allowHosts ?? [])]) {
    const name = h.toLowerCase();
    hosts.add(/:\d+$/.test(name) ? name : `${name}:${actual}`);
    if (actual === 80 && !/:\d+$/.test(name)) hosts.add(name); // browsers leave out :80
  }
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
