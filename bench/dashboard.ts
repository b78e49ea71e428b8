/**
 * deno run -A bench/dashboard.ts [--uplot PATH/uPlot.iife.min.js] [--runs R] [--points N]
 *
 * Measures the dashboard's chart choice in headless chromium: the page as served (SVG drawn by
 * the server, lib/train/charts.ts) next to the same curves drawn by uPlot in the browser, for R
 * runs of N logged points each (4 charts x 2 series per run). Reports bytes sent, server render
 * time, and time from navigation until the charts are on screen. uPlot is not a dependency: get
 * it with `npm pack uplot@1.6.32` and pass the path of dist/uPlot.iife.min.js.
 */
import { parseArgs } from "node:util";
import puppeteer from "puppeteer-core";
import { renderView, RunStore, serveDashboard } from "../lib/train/dashboard.ts";
import { writeSyntheticRun } from "../tests/train/dashboard_helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    uplot: { type: "string" },
    runs: { type: "string", default: "4" },
    points: { type: "string", default: "2000" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
const R = Number(values.runs), N = Number(values.points);
const root = await Deno.makeTempDir();
for (let r = 0; r < R; r++) writeSyntheticRun(`${root}/run-${r}`, 1 + r / 4, N * 20);

// Server side: render time and size of the view.
const runs = await new RunStore(root).refresh();
const times: number[] = [];
let view = "";
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  view = renderView(runs, root);
  times.push(performance.now() - t);
}
const server = serveDashboard(root, 0);

// uPlot page: the same series as JSON, drawn in the browser.
let uplotPage: string | undefined;
let uplotBytes = 0;
if (values.uplot) {
  const lib = await Deno.readTextFile(values.uplot);
  uplotBytes = lib.length;
  const keys = ["train/loss", "train/acc1", "train/lr", "train/img_per_s"];
  const data = runs.map((r) => {
    const rows = r.events.filter((e) => typeof e["train/loss"] === "number");
    return [rows.map((e) => e.step), ...keys.map((k) => rows.map((e) => e[k] as number))];
  });
  uplotPage = `<!doctype html><html><head><meta charset="utf-8"></head><body><script>${lib}</script>
<script>const data=${JSON.stringify(data)};const keys=${JSON.stringify(keys)};
keys.forEach((k,i)=>{const x=data[0][0];const series=[{}];const cols=[x];
data.forEach((d,r)=>{series.push({label:"run-"+r+" "+k,stroke:"hsl("+r*90+",70%,45%)"});cols.push(d[i+1]);});
new uPlot({width:760,height:280,series,axes:[{grid:{show:true}},{grid:{show:true}}]},cols,document.body);});
</script></body></html>`;
}

const browser = await puppeteer.launch({
  executablePath: values.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu"],
});
type Page = Awaited<ReturnType<Awaited<ReturnType<typeof puppeteer.launch>>["newPage"]>>;
async function timePage(load: (page: Page) => Promise<unknown>, ready: string) {
  const out: number[] = [];
  for (let i = 0; i < 5; i++) {
    const page = await browser.newPage();
    const t = performance.now();
    await load(page);
    await page.waitForFunction(ready);
    // One frame after: the charts are painted.
    await page.evaluate("new Promise((r) => requestAnimationFrame(() => r(0)))");
    out.push(performance.now() - t);
    await page.close();
  }
  return out;
}
const svgTimes = await timePage(
  (p) => p.goto(server.url, { waitUntil: "load" }),
  "document.querySelectorAll('path.series').length > 0",
);
const uplotTimes = uplotPage
  ? await timePage(
    (p) => p.setContent(uplotPage!, { waitUntil: "load" }),
    "document.querySelectorAll('canvas').length >= 4",
  )
  : [];
await browser.close();
await server.shutdown();
await Deno.remove(root, { recursive: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${R} runs x ${N} points, 5 loads each, median:`);
console.log(
  `  server SVG: view ${(view.length / 1024).toFixed(0)} KiB, rendered in ${
    median(times).toFixed(1)
  } ms on the server; on screen in ${median(svgTimes).toFixed(0)} ms`,
);
if (uplotPage) {
  console.log(
    `  uPlot:      library ${(uplotBytes / 1024).toFixed(0)} KiB + data ${
      ((uplotPage.length - uplotBytes) / 1024).toFixed(0)
    } KiB; on screen in ${median(uplotTimes).toFixed(0)} ms`,
  );
}
