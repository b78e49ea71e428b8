/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by puppeteer-core. Skips
 * with a message where no chromium is installed (CI installs it).
 * Set DASHBOARD_SCREENSHOT=FILE.png to keep a screenshot of the page.
 */
import puppeteer from "puppeteer-core";
import { assert, assertEquals } from "../assert.ts";
import { serveDashboard } from "../../lib/train/dashboard.ts";
import { writeSyntheticRun } from "./dashboard_helpers.ts";

const CANDIDATES = [
  Deno.env.get("CHROMIUM_PATH"),
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
].filter((p): p is string => !!p);

function findChromium(): string | undefined {
  return CANDIDATES.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
}

const chromium = findChromium();
if (!chromium) {
  console.log(
    `dashboard browser test skipped: no chromium at ${
      CANDIDATES.join(", ")
    } (apt-get install chromium)`,
  );
}

Deno.test({
  name: "dashboard in headless chromium: names both runs, draws their curves, updates live",
  ignore: !chromium,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir();
    writeSyntheticRun(`${root}/deit-s16`, 1);
    writeSyntheticRun(`${root}/deit-b16`, 2);
    const server = serveDashboard(root, 0);
    const browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 900, height: 1400 });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(server.url, { waitUntil: "load" });
      const names = await page.$$eval(
        "tr.run",
        (rows) => rows.map((r) => r.getAttribute("data-run")),
      );
      assertEquals(names, ["deit-b16", "deit-s16"]);
      for (const run of ["deit-s16", "deit-b16"]) {
        for (const metric of ["train/loss", "train/acc1", "train/lr", "train/img_per_s"]) {
          // Drawn: a path with more than one segment and a real size on the screen.
          const box = await page.$eval(
            `path.series[data-run="${run}"][data-metric="${metric}"]`,
            (p) => {
              const r = p.getBoundingClientRect();
              return {
                w: r.width,
                h: r.height,
                segs: (p.getAttribute("d") ?? "").split("L").length,
              };
            },
          );
          assert(box.w > 100 && box.segs >= 6, `${run} ${metric}: ${JSON.stringify(box)}`);
        }
        const dots = await page.$eval(
          `path.points[data-run="${run}"][data-metric="val/acc1"]`,
          (p) => ({
            n: (p.getAttribute("d") ?? "").split("h0").length - 1,
            w: p.getBoundingClientRect().width,
          }),
        );
        assert(dots.n === 2 && dots.w > 50, `${run}: eval points marked ${JSON.stringify(dots)}`);
      }
      const legend = await page.$eval("#chart-loss", (f) => f.textContent ?? "");
      assert(legend.includes("deit-s16 train") && legend.includes("deit-b16 val"), legend);

      // Live: a new row in one run shows up without a reload.
      await Deno.writeTextFile(
        `${root}/deit-s16/metrics.jsonl`,
        JSON.stringify({ step: 200, time: 0, "train/loss": 0.05, "val/acc1": 0.97 }) + "\n",
        { append: true },
      );
      await page.waitForFunction(
        `document.querySelector('tr.run[data-run="deit-s16"] td:nth-child(2)')?.textContent === "200"`,
        { timeout: 10_000 },
      );
      const shot = Deno.env.get("DASHBOARD_SCREENSHOT");
      if (shot) await page.screenshot({ path: shot as `${string}.png`, fullPage: true });
      assertEquals(errors, []);
    } finally {
      await browser.close();
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});
