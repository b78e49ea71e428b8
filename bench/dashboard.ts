/**
 * deno run -A bench/dashboard.ts [--runs 8] [--points 4000] [--loads 5]
 *     [--chartjs PATH/chart.umd.min.js] [--dygraphs PATH/dygraph.min.js]
 *
 * How long the dashboard takes to paint R runs of N logged train points each (an eval every 3
 * rows), in headless chromium, and the same five charts drawn by each candidate library, for the
 * choice of library. Each load is a new tab; the time is from the start of the navigation until
 * a frame after the charts were drawn; median (and range) of the loads.
 *
 * - "dashboard (uPlot)": the page as `deno task dashboard` serves it, every feature on; it
 *   fetches the data from the server. Also its own figure from inside the page (`paintMs`:
 *   performance.now() a frame after the first draw, from the navigation's start).
 * - "uPlot", "Chart.js", "dygraphs": a page with the library and the data inline, drawing the
 *   same series (every run's loss, accuracy, lr, img/s and step time, eval dots) at the same
 *   size, each with its options for speed (Chart.js: no animation, no parsing, min-max
 *   decimation). uPlot is the dashboard's npm dependency; Chart.js and dygraphs are not
 *   dependencies: `npm pack chart.js@4.6.1 dygraphs@2.2.2`, unpack, and pass the paths.
 * - "SVG (charts.ts)": the static metrics.html renderer, its markup inline.
 */
import { parseArgs } from "node:util";
import { createRequire } from "node:module";
import { cpuUsage } from "node:process";
import type { Page } from "puppeteer-core";
import { CHARTS, renderCharts, RUN_COLORS } from "../lib/report/charts.ts";
import { RunStore, serveDashboard } from "../lib/report/dashboard.ts";
import { findChromium, launchChromium, writeSyntheticRun } from "./dashboard_runs.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "8" },
    points: { type: "string", default: "4000" },
    loads: { type: "string", default: "5" },
    chartjs: { type: "string" },
    dygraphs: { type: "string" },
  },
});
const R = Number(values.runs), N = Number(values.points), LOADS = Number(values.loads);
const chromium = findChromium();
if (!chromium) throw new Error("no chromium found (apt-get install chromium)");

const root = await Deno.makeTempDir();
for (let r = 0; r < R; r++) writeSyntheticRun(`${root}/run-${r}`, 1 + r / 4, N * 20);
const server = serveDashboard(root, 0);
const data = await (await fetch(`${server.url}api/data`)).text();
const runs = await new RunStore(root).refresh();

const WIDTH = 1200, HEIGHT = 300;
const uplotPath = createRequire(import.meta.url).resolve("uplot/dist/uPlot.iife.min.js");

/** Page-side: the series of each chart, from the /api/data answer, as the dashboard builds them. */
const PREP = `const DATA = JSON.parse(document.getElementById("data").textContent);
const CHARTS = ${JSON.stringify(CHARTS)}, COLORS = ${JSON.stringify(RUN_COLORS)};
function seriesOf(kind) {
  const out = [];
  DATA.runs.forEach((r, ri) => kind.metrics.forEach((m) => {
    const ys = r.cols[m.key];
    if (!ys) return;
    const xs = [], vs = [];
    for (let j = 0; j < ys.length; j++) {
      if (ys[j] !== null) { xs.push(r.cols.step[j]); vs.push(ys[j] * (kind.scale ?? 1)); }
    }
    if (xs.length) out.push({ label: r.name + " " + m.label, color: COLORS[ri % COLORS.length], xs, ys: vs, marker: m.marker });
  }));
  return out;
}
function join(series) {
  const xs = [...new Set(series.flatMap((s) => s.xs))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  return [xs, ...series.map((s) => {
    const col = new Array(xs.length).fill(null);
    s.xs.forEach((x, i) => (col[at.get(x)] = s.ys[i]));
    return col;
  })];
}
function box() { const d = document.createElement("div"); document.body.append(d); return d; }`;

const DRAW: Record<string, string> = {
  uPlot: `for (const kind of CHARTS) {
    const series = seriesOf(kind);
    if (!series.length) continue;
    new uPlot({ width: ${WIDTH}, height: ${HEIGHT}, legend: { show: false },
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: true,
        points: { show: s.marker, size: 7, fill: s.color } }))] }, join(series), box());
  }`,
  "Chart.js": `for (const kind of CHARTS) {
    const series = seriesOf(kind);
    if (!series.length) continue;
    const c = document.createElement("canvas");
    const d = box(); d.style.width = "${WIDTH}px"; d.style.height = "${HEIGHT}px"; d.append(c);
    new Chart(c, { type: "line", data: { datasets: series.map((s) => ({ label: s.label,
      data: s.xs.map((x, i) => ({ x, y: s.ys[i] })), borderColor: s.color, backgroundColor: s.color,
      borderWidth: 2, pointRadius: s.marker ? 3 : 0, spanGaps: true, indexAxis: "x" })) },
      options: { animation: false, parsing: false, normalized: true, responsive: true,
        maintainAspectRatio: false, scales: { x: { type: "linear" } },
        plugins: { legend: { display: false }, decimation: { enabled: true, algorithm: "min-max" } } } });
  }`,
  dygraphs: `for (const kind of CHARTS) {
    const series = seriesOf(kind);
    if (!series.length) continue;
    const cols = join(series);
    const rows = cols[0].map((x, i) => cols.map((c) => c[i]));
    const d = box(); d.style.width = "${WIDTH}px"; d.style.height = "${HEIGHT}px";
    new Dygraph(d, rows, { labels: ["step", ...series.map((s) => s.label)], legend: "never",
      colors: series.map((s) => s.color), connectSeparatedPoints: true, strokeWidth: 2 });
  }`,
};

const libs: [string, string][] = [["uPlot", uplotPath]];
if (values.chartjs) libs.push(["Chart.js", values.chartjs]);
if (values.dygraphs) libs.push(["dygraphs", values.dygraphs]);

const { browser, close } = await launchChromium(chromium);
const frame = "new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))";

/**
 * Wall time of each load; the CPU time of chromium's renderer and GPU processes over it
 * (SystemInfo.getProcessInfo: script, layout, canvas, raster and compositing, whichever process
 * the page lands in), and of this process (the dashboard server answering the page). On a
 * machine shared with other work the wall time grows with the load, CPU times much less: they
 * say what the page costs alone.
 */
const browserCdp = await browser.target().createCDPSession();
async function pageProcessesCpu(): Promise<number> {
  const { processInfo } = await browserCdp.send("SystemInfo.getProcessInfo");
  return processInfo.filter((p) => p.type === "renderer" || p.type === "GPU" || p.type === "gpu")
    .reduce((sum, p) => sum + p.cpuTime * 1000, 0);
}

async function time(load: (page: Page) => Promise<void>) {
  const wall: number[] = [], cpu: number[] = [], serverCpu: number[] = [];
  for (let i = 0; i < LOADS; i++) {
    const page = await browser.newPage();
    await page.setViewport({ width: WIDTH + 48, height: 1000 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    const c = await pageProcessesCpu(), s = cpuUsage();
    const t = performance.now();
    await load(page);
    wall.push(performance.now() - t);
    const ds = cpuUsage(s);
    serverCpu.push((ds.user + ds.system) / 1000);
    cpu.push(await pageProcessesCpu() - c);
    if (errors.length) throw new Error(errors.join("\n"));
    await page.close();
  }
  return { wall, cpu, server: serverCpu };
}

const results: {
  name: string;
  kib: number;
  ms: { wall: number[]; cpu: number[]; server: number[] };
  note?: string;
}[] = [];
const inPage: number[] = [];
results.push({
  name: "dashboard (uPlot), as served",
  kib: 0,
  ms: await time(async (page) => {
    await page.goto(server.url);
    await page.waitForFunction("globalThis.dashboard?.paintMs != null", { timeout: 60_000 });
    inPage.push(await page.evaluate("globalThis.dashboard.paintMs") as number);
  }),
});
// The candidates' pages come from a server of their own, so every page is a navigation to
// 127.0.0.1 like the dashboard's (a new renderer process each time).
let candidate = "";
const pages = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: () => {} },
  () => new Response(candidate, { headers: { "content-type": "text/html; charset=utf-8" } }),
);
const pagesUrl = `http://127.0.0.1:${pages.addr.port}/`;
for (const [name, path] of libs) {
  const lib = await Deno.readTextFile(path);
  const html = `<!doctype html><html><head><meta charset="utf-8"><script>${lib}</script></head>` +
    `<body><script type="application/json" id="data">${data.replaceAll("<", "\\u003c")}</script>` +
    `<script>${PREP}\n${DRAW[name]}</script></body></html>`;
  candidate = html;
  results.push({
    name,
    kib: lib.length / 1024,
    ms: await time(async (page) => {
      await page.goto(pagesUrl, { waitUntil: "load" });
      await page.evaluate(frame);
    }),
  });
}
const svg = `<!doctype html><html><body>${renderCharts(runs).join("\n")}</body></html>`;
candidate = svg;
results.push({
  name: "SVG (charts.ts)",
  kib: 0,
  note: `${(svg.length / 1024).toFixed(0)} KiB of markup`,
  ms: await time(async (page) => {
    await page.goto(pagesUrl, { waitUntil: "load" });
    await page.evaluate(frame);
  }),
});
await pages.shutdown();
await close();
await server.shutdown();
await Deno.remove(root, { recursive: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  `${R} runs x ${N} train points (+ ${Math.floor(N / 3)} evals), data ${
    (data.length / 1024).toFixed(0)
  } KiB as JSON; chromium headless; ${LOADS} loads each; load: ${
    (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ")
  }`,
);
const fmt = (xs: number[]) =>
  `${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)} to ${Math.max(...xs).toFixed(0)})`;
for (const r of results) {
  console.log(
    `  ${r.name.padEnd(30)} ${r.kib ? `${r.kib.toFixed(0)} KiB lib` : (r.note ?? "")}`.padEnd(52) +
      ` wall ${fmt(r.ms.wall)}; renderer+GPU CPU ${fmt(r.ms.cpu)}; this process ${
        fmt(r.ms.server)
      }`,
  );
}
console.log(`  dashboard paintMs in the page: ${fmt(inPage)}`);
