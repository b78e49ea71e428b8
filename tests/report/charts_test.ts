import { assert, assertEquals } from "../assert.ts";
import {
  decimate,
  formatTick,
  lossUnit,
  type MetricEvent,
  niceTicks,
  renderCharts,
} from "../../lib/report/charts.ts";
import { renderPlot } from "../../lib/report/logging.ts";

Deno.test("charts: round ticks cover the range", () => {
  assertEquals(niceTicks(0, 600, 6), [0, 100, 200, 300, 400, 500, 600]);
  assertEquals(niceTicks(0.21, 0.98, 5), [0.4, 0.6, 0.8]);
});

Deno.test("charts: tick labels", () => {
  assertEquals(formatTick(2000, 10000), "2k");
  assertEquals(formatTick(0.5, 2), "0.5");
  assertEquals(formatTick(1e-3, 8e-4), "1.0e-3");
  assertEquals(formatTick(95, 20), "95");
});

Deno.test("charts: a single point is drawn as a dot, accuracies in percent", () => {
  const svg = renderCharts([{
    name: "r",
    events: [{ step: 30, time: 0, "val/acc1": 0.5, "val/loss": 1.2 }],
  }]).join("");
  assert(svg.includes('<path class="points" data-run="r" data-metric="val/acc1" d="M'), svg);
  assert(svg.includes("val acc1: 50 at step 30"), "scaled to percent");
  assert(svg.includes("top-k accuracy (%)"), "unit on the axis");
  assert(!svg.includes('class="series"'), "one point: no line");
});

Deno.test("charts: gridlines, lr and img/s charts, eval points marked", () => {
  const events: MetricEvent[] = [20, 40, 60].flatMap((s): MetricEvent[] => [
    { step: s, time: 0, "train/loss": 3 - s / 30, "train/lr": s * 1e-5, "train/img_per_s": 900 },
    { step: s, time: 0, "val/loss": 3.1 - s / 30 },
  ]);
  const html = renderPlot("run <1>", events);
  for (const id of ["loss", "lr", "throughput"]) assert(html.includes(`id="chart-${id}"`), id);
  assert(!html.includes('id="chart-accuracy"'), "no accuracy logged: no chart");
  assert((html.match(/class="grid"/g) ?? []).length >= 8, "gridlines");
  const dots = html.match(/class="points" data-run="[^"]*" data-metric="val\/loss" d="([^"]*)"/)!;
  assertEquals(dots[1].split("h0").length - 1, 3, "3 eval dots");
  assert(html.includes('class="series" data-run="run &lt;1&gt;" data-metric="val/loss"'), "a line");
  assert(html.includes("run &lt;1&gt;") && !html.includes("run <1>"), "escaped");
  assert(
    !html.includes("<script") && !/src=|href=/.test(html),
    "metrics.html is static, self-contained",
  );
});

Deno.test("charts: several runs are colored by run; long series are thinned per pixel", () => {
  const ev = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ step: i + 1, time: 0, "train/loss": 1 / (i + 1) }));
  const svg = renderCharts([{ name: "a", events: ev(3) }, { name: "b", events: ev(3) }]).join("");
  assert(svg.includes('data-run="a"') && svg.includes('data-run="b"'));
  assert(svg.includes("a train") && svg.includes("b train"), "legend names the runs");
  // 5000 steps on a ~526 px wide plot: at most 4 points per pixel column, the spike kept.
  const long = ev(5000);
  long[2500]["train/loss"] = 50;
  const d = renderCharts([{ name: "a", events: long }]).join("").match(/ d="([^"]+)"/)![1];
  const segs = d.split("L").length;
  assert(segs <= 4 * 530 && segs > 500, `${segs} points`);
  const ys = d.slice(1).split("L").map((p) => Number(p.split(",")[1]));
  assert(Math.min(...ys) < 40, "the spike at step 2501 is drawn");
});

Deno.test("charts: decimation keeps first, lowest, highest and last of each pixel column", () => {
  assertEquals(
    decimate([[0.1, 5], [0.2, 9], [0.3, 1], [0.4, 6], [0.5, 6], [0.6, 7], [0.7, 7], [0.8, 3], [
      1.2,
      4,
    ]]),
    [[0.1, 5], [0.2, 9], [0.3, 1], [0.8, 3], [1.2, 4]],
  );
});

Deno.test("charts: the loss axis is named by the run's criterion", () => {
  const events = [1, 2].map((s) => ({ step: s, time: 0, "train/loss": 1 / s }));
  assert(renderPlot("r", events, "bce").includes(">binary cross-entropy loss</text>"));
  assert(renderPlot("r", events, "ce").includes(">cross-entropy loss</text>"));
  assert(renderPlot("r", events).includes(">loss</text>"), "not known: no name");
  assertEquals(
    lossUnit(["ce", "bce", "ce"]),
    "loss (bce or ce, by run)",
  );
  const two = renderCharts([{ name: "a", events, criterion: "bce" }, {
    name: "b",
    events,
    criterion: "bce",
  }]).join("");
  assert(two.includes(">binary cross-entropy loss</text>"));
});
