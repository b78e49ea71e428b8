/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by puppeteer-core, each
 * interaction as a person does it (mouse, slider, checkbox, select). Skips with a message where
 * no chromium is installed. Set DASHBOARD_SCREENSHOT=FILE.png to keep a screenshot of the page.
 */
import type { Page } from "puppeteer-core";
import { assert, assertEquals } from "../assert.ts";
import { serveDashboard } from "../../lib/report/dashboard.ts";
import { emaSmooth, formatValue } from "../../lib/report/dashboard_assets/dashboard.js";
import {
  CHROMIUM_CANDIDATES,
  findChromium,
  launchChromium,
  writeSyntheticRun,
} from "../../bench/dashboard_runs.ts";

const chromium = findChromium();
if (!chromium) {
  console.log(
    `dashboard browser test skipped: no chromium at ${
      CHROMIUM_CANDIDATES.join(", ")
    } (apt-get install chromium)`,
  );
}

/** What the synthetic runs hold: val acc1 (in %) at `step` of a run of `speed`. */
const valAcc1 = (speed: number, step: number) => 100 * 0.9 * (1 - Math.exp(-step / (80 * speed)));

// Page-side helpers, as source text evaluated in the page.
const chart = (id: string) => `globalThis.dashboard.charts.get(${JSON.stringify(id)}).u`;
const pixels = (page: Page, id: string) =>
  page.evaluate(`${chart(id)}.ctx.canvas.toDataURL()`) as Promise<string>;
const frame = (page: Page) =>
  page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))");

Deno.test({
  name:
    "dashboard in headless chromium: hover readout, smoothing, show/hide, log scale, x axis, zoom",
  ignore: !chromium,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const root = await Deno.makeTempDir();
    writeSyntheticRun(`${root}/deit-s16`, 1, 600);
    writeSyntheticRun(`${root}/deit-b16`, 2, 600);
    for (const run of ["deit-s16", "deit-b16"]) {
      await Deno.writeTextFile(`${root}/${run}/config.json`, '{"criterion": "bce"}');
    }
    const server = serveDashboard(root, 0);
    const { browser, close } = await launchChromium(chromium!);
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1200, height: 1600 });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      page.on(
        "requestfailed",
        (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`),
      );
      page.on("response", (r) => r.status() >= 400 && errors.push(`${r.status()} ${r.url()}`));
      await page.goto(server.url, { waitUntil: "load" });
      await page.waitForFunction("globalThis.dashboard?.paintMs != null", { timeout: 20_000 });

      await t.step("runs, charts across the width, the loss named by the criterion", async () => {
        const names = await page.$$eval("tr.run", (rows) => rows.map((r) => r.dataset.run));
        assertEquals(names, ["deit-b16", "deit-s16"]);
        const charts = await page.$$eval("figure.chart:not([hidden])", (f) => f.map((e) => e.id));
        assertEquals(charts, [
          "chart-loss",
          "chart-accuracy",
          "chart-lr",
          "chart-throughput",
          "chart-step-time",
        ]);
        assertEquals(
          await page.evaluate(`${chart("loss")}.axes[1].label`),
          "binary cross-entropy loss",
        );
        const width = await page.evaluate(`${chart("loss")}.root.getBoundingClientRect().width`);
        assert((width as number) > 1100, `a 1200 px window: chart ${width} px wide`);
        await page.setViewport({ width: 800, height: 1600 });
        await page.waitForFunction(`${chart("loss")}.root.getBoundingClientRect().width < 800`);
        await page.setViewport({ width: 1200, height: 1600 });
      });

      const hover = async (id: string, run: string, metric: string, step: number) => {
        const at = await page.evaluate(`(() => {
          const c = globalThis.dashboard.charts.get(${JSON.stringify(id)}), u = c.u;
          const i = c.series.findIndex((s) => s.run === ${JSON.stringify(run)} &&
            s.metric === ${JSON.stringify(metric)});
          const s = c.series[i], j = s.xs.indexOf(${step});
          const r = u.over.getBoundingClientRect();
          // A point on the right edge is hovered from the plot's last pixel column.
          const x = Math.min(u.valToPos(s.xs[j], "x"), r.width - 1);
          return [r.left + x, r.top + u.valToPos(s.ys[j], "y")];
        })()`) as [number, number];
        const sel = `#chart-${id} .readout .row[data-run="${run}"][data-metric="${metric}"]`;
        const shown = `document.querySelector('#chart-${id} .readout:not([hidden]) .at')` +
          `?.textContent === "step ${step}"`;
        // The dot's position is fractional and the mouse lands on whole pixels: a neighbouring
        // column may snap to the next step, so the columns either side are tried too.
        for (const dx of [0, -1, 1, -2, 2]) {
          await page.mouse.move(at[0] + dx, at[1]);
          const ok = await page.waitForFunction(shown, { timeout: 1_500 }).then(
            () => true,
            () => false,
          );
          if (ok) return await page.$eval(sel, (e) => e.textContent ?? "");
        }
        const at_ = await page.evaluate(
          `document.querySelector('#chart-${id} .readout .at')?.textContent`,
        );
        throw new Error(`hovering step ${step} of ${run} ${metric} shows ${at_}`);
      };

      await t.step("hovering an eval dot shows that step's value", async () => {
        for (const step of [60, 300, 540]) {
          const row = await hover("accuracy", "deit-s16", "val/acc1", step);
          assertEquals(row, `deit-s16 val acc1: ${formatValue(valAcc1(1, step))}`);
        }
        const other = await page.$eval(
          '#chart-accuracy .readout .row[data-run="deit-b16"][data-metric="val/acc1"]',
          (e) => e.textContent,
        );
        assertEquals(other, `deit-b16 val acc1: ${formatValue(valAcc1(2, 540))}`);
      });

      await t.step(
        "the smoothing control changes the drawn path to TensorBoard's EMA",
        async () => {
          const before = await pixels(page, "loss");
          const slider = await page.$("#smoothing");
          const box = (await slider!.boundingBox())!;
          // Drag the slider's thumb to 90% of its track.
          await page.mouse.click(box.x + 2, box.y + box.height / 2);
          await page.mouse.click(box.x + box.width * 0.9, box.y + box.height / 2);
          await page.waitForFunction("globalThis.dashboard.state.smoothing > 0.85");
          await frame(page);
          const w = await page.evaluate("globalThis.dashboard.state.smoothing") as number;
          assert((await pixels(page, "loss")) !== before, "the loss chart was redrawn");
          const drawn = await page.evaluate(`(() => {
          const c = globalThis.dashboard.charts.get("loss"), u = c.u;
          const i = c.series.findIndex((s) => s.run === "deit-s16" && s.metric === "train/loss");
          // Raw copies first, then the smoothed lines: series index 1 + n + i.
          const col = u.data[1 + c.series.length + i];
          return { raw: c.series[i].raw, drawn: col.filter((y) => y !== null) };
        })()`) as { raw: number[]; drawn: number[] };
          assertEquals(drawn.drawn, emaSmooth(drawn.raw, w));
          assert(drawn.drawn[3] !== drawn.raw[3], "smoothed");
          const row = await hover("loss", "deit-s16", "train/loss", 300);
          assert(row.includes("(raw "), `the readout gives the raw value too: ${row}`);
          // Home key on the slider: back to no smoothing, the drawn values are the logged ones.
          await page.focus("#smoothing");
          await page.keyboard.press("Home");
          await page.waitForFunction("globalThis.dashboard.state.smoothing === 0");
          await frame(page);
          assertEquals(await page.evaluate(`${chart("loss")}.data.length`), 1 + 4);
        },
      );

      await t.step("hiding a run removes its series from every chart", async () => {
        const before = await pixels(page, "loss");
        await page.click('input.run-toggle[data-run="deit-b16"]');
        await frame(page);
        const shown = await page.evaluate(`[...globalThis.dashboard.charts.values()].map((c) =>
          c.u.series.slice(1).map((s, i) => [c.series[i % c.series.length].run, s.show]))`) as [
          string,
          boolean,
        ][][];
        for (const chartSeries of shown) {
          for (const [run, show] of chartSeries) assertEquals(show, run !== "deit-b16", run);
        }
        assert((await pixels(page, "loss")) !== before, "redrawn without it");
        await hover("accuracy", "deit-s16", "val/acc1", 300);
        const rows = await page.$$eval(
          "#chart-accuracy .readout .row",
          (r) => r.map((e) => e.getAttribute("data-run")),
        );
        assert(rows.length > 0 && rows.every((r) => r === "deit-s16"), `readout: ${rows}`);
        await page.click('input.run-toggle[data-run="deit-b16"]');
        await frame(page);
        assertEquals(
          await page.evaluate(`${chart("loss")}.series.slice(1).every((s) => s.show)`),
          true,
        );
      });

      await t.step("log scale", async () => {
        const before = await pixels(page, "lr");
        await page.click("#log-y");
        await frame(page);
        assertEquals(await page.evaluate(`${chart("lr")}.scales.y.distr`), 3);
        assert((await pixels(page, "lr")) !== before, "redrawn");
        // lr spans 5e-4..1e-3: on a log axis the y range stays positive.
        assert((await page.evaluate(`${chart("lr")}.scales.y.min`) as number) > 0);
        await page.click("#log-y");
        await frame(page);
        assertEquals(await page.evaluate(`${chart("lr")}.scales.y.distr`), 1);
      });

      await t.step("x axis: step, time since the start, wall time", async () => {
        const first = `${chart("loss")}.data[0][0]`;
        assertEquals(await page.evaluate(first), 20);
        await page.select("#x-axis", "relative");
        await frame(page);
        assertEquals(await page.evaluate(first), 0);
        assertEquals(
          await page.evaluate(`${chart("loss")}.axes[0].label`),
          "time since the run started",
        );
        await page.select("#x-axis", "wall");
        await frame(page);
        assertEquals(await page.evaluate(first), 1_700_000_020);
        assertEquals(await page.evaluate(`${chart("loss")}.scales.x.time`), true);
        await page.select("#x-axis", "step");
        await frame(page);
      });

      await t.step("zoom by dragging, the same range in every chart; pan; reset", async () => {
        const xy = (step: number) =>
          page.evaluate(`(() => { const u = ${chart("loss")}, r = u.over.getBoundingClientRect();
            return [r.left + u.valToPos(${step}, "x"), r.top + r.height / 2]; })()`) as Promise<
            [number, number]
          >;
        const [a, y] = await xy(200), [b] = await xy(400);
        await page.mouse.move(a, y);
        await page.mouse.down();
        await page.mouse.move((a + b) / 2, y, { steps: 4 });
        await page.mouse.move(b, y, { steps: 4 });
        await page.mouse.up();
        await frame(page);
        const range = (id: string) =>
          page.evaluate(`[${chart(id)}.scales.x.min, ${chart(id)}.scales.x.max]`) as Promise<
            number[]
          >;
        const [min, max] = await range("loss");
        assert(Math.abs(min - 200) < 5 && Math.abs(max - 400) < 5, `zoomed to ${min}..${max}`);
        assertEquals(await range("accuracy"), [min, max]);
        // Shift+drag to the left by a quarter of the width: the range moves right by a quarter.
        const [c] = await xy(300);
        const quarter = (await page.evaluate(`${chart("loss")}.over.clientWidth`) as number) / 4;
        await page.keyboard.down("Shift");
        await page.mouse.move(c, y);
        await page.mouse.down();
        await page.mouse.move(c - quarter, y, { steps: 4 });
        await page.mouse.up();
        await page.keyboard.up("Shift");
        await frame(page);
        const [pmin, pmax] = await range("lr");
        assert(
          Math.abs(pmin - (min + 50)) < 3 && Math.abs(pmax - (max + 50)) < 3,
          `${pmin}..${pmax}`,
        );
        // The wheel zooms out around the pointer.
        await page.mouse.move(c, y);
        await page.mouse.wheel({ deltaY: 100 });
        await frame(page);
        const [wmin, wmax] = await range("loss");
        assert(wmax - wmin > pmax - pmin, `wheel: ${wmin}..${wmax}`);
        await page.click("#reset-zoom");
        await frame(page);
        assertEquals(await range("throughput"), [20, 600]);
      });

      await t.step("a row appended to a run shows up without a reload", async () => {
        await Deno.writeTextFile(
          `${root}/deit-s16/metrics.jsonl`,
          JSON.stringify({ step: 620, time: 1_700_000_620, "train/loss": 0.05, "val/acc1": 0.97 }) +
            "\n",
          { append: true },
        );
        await page.waitForFunction(
          `document.querySelector('tr.run[data-run="deit-s16"] td:nth-child(4)')?.textContent === "620"`,
          { timeout: 10_000 },
        );
        const row = await hover("accuracy", "deit-s16", "val/acc1", 620);
        assertEquals(row, "deit-s16 val acc1: 97");
      });

      const shot = Deno.env.get("DASHBOARD_SCREENSHOT");
      if (shot) await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
      assertEquals(errors, []);
    } finally {
      await close();
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});
