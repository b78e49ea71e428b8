/**
 * Synthetic runs for the dashboard (bench/dashboard.ts and its tests), and headless chromium to
 * look at them.
 */
import puppeteer, { type Browser } from "puppeteer-core";

/** What `deno task train` writes into metrics.jsonl: a train row every 20 steps, an eval every 60. */
export function writeSyntheticRun(dir: string, speed: number, steps = 120): void {
  Deno.mkdirSync(dir, { recursive: true });
  const lines: string[] = [];
  for (let s = 20; s <= steps; s += 20) {
    lines.push(JSON.stringify({
      step: s,
      time: 1_700_000_000 + s,
      "train/loss": 2.3 * Math.exp(-s / (100 * speed)) + 0.2,
      "train/acc1": 1 - Math.exp(-s / (80 * speed)),
      "train/lr": 1e-3 * Math.min(1, s / 40),
      "train/img_per_s": 800 + 40 * speed,
      "train/data_time": 0.01,
      "train/compute_time": 0.2 * speed,
    }));
    if (s % 60 === 0) {
      lines.push(JSON.stringify({
        step: s,
        time: 1_700_000_000 + s,
        "val/loss": 2 * Math.exp(-s / (100 * speed)) + 0.3,
        "val/acc1": 0.9 * (1 - Math.exp(-s / (80 * speed))),
        "val/acc5": 1 - Math.exp(-s / (30 * speed)),
      }));
    }
  }
  Deno.writeTextFileSync(`${dir}/metrics.jsonl`, lines.join("\n") + "\n");
}

export const CHROMIUM_CANDIDATES = [
  Deno.env.get("CHROMIUM_PATH"),
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
].filter((p): p is string => !!p);

export function findChromium(): string | undefined {
  return CHROMIUM_CANDIDATES.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
}

/** Headless chromium with a fresh profile and nothing that reaches the network on its own. */
export async function launchChromium(executablePath: string): Promise<{
  browser: Browser;
  close: () => Promise<void>;
}> {
  const profile = await Deno.makeTempDir({ prefix: "dashboard-chromium-" });
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-dev-shm-usage",
      `--user-data-dir=${profile}`,
    ],
  });
  return {
    browser,
    close: async () => {
      await browser.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}
