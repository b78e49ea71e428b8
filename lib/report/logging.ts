/**
 * What a person looks at during a run: a live progress line (on a terminal), `metrics.jsonl`
 * (one JSON object per log or eval event) and `metrics.html`, a static page with the run's charts
 * (charts.ts) refreshed at each log interval and evaluation. Everything written is redacted (`config/redact.ts`):
 * no token reaches the terminal or a file through here.
 */
import { atomicWriteFile } from "../checkpoint/atomic.ts";
import { redact } from "../config/redact.ts";
import { CHART_CSS, esc, type MetricEvent, renderCharts } from "./charts.ts";
export type { MetricEvent };

/** Off a terminal, the progress line is printed at most this often (ms). */
export const PLAIN_PROGRESS_MS = 60_000;

export class RunLog {
  readonly events: MetricEvent[] = [];
  #progressShown = false;
  readonly #tty: boolean;
  /** When a progress line was last printed off a terminal (or the log was created). */
  #lastPlainProgress: number;

  constructor(
    readonly dir: string | null,
    readonly title: string,
    tty = Deno.stderr.isTerminal(),
    /** The run's `criterion`, which names the loss axis of metrics.html. */
    readonly criterion?: string,
    /** The clock of the progress throttle, in ms (tests). */
    readonly now: () => number = () => performance.now(),
  ) {
    this.#tty = tty;
    this.#lastPlainProgress = now();
  }

  async init(): Promise<void> {
    if (this.dir) {
      await Deno.mkdir(this.dir, { recursive: true });
      // Resumed runs append; earlier events stay in the plot.
      try {
        const text = await Deno.readTextFile(`${this.dir}/metrics.jsonl`);
        for (const line of text.split("\n")) if (line.trim()) this.events.push(JSON.parse(line));
      } catch {
        // first run in this directory
      }
    }
  }

  /** Records an event in metrics.jsonl. */
  async record(event: MetricEvent): Promise<void> {
    this.events.push(event);
    if (this.dir) {
      await Deno.writeTextFile(`${this.dir}/metrics.jsonl`, redact(JSON.stringify(event)) + "\n", {
        append: true,
      });
    }
  }

  /** A line that stays in the log. */
  line(text: string): void {
    this.clearProgress();
    console.log(redact(text));
  }

  /** Erases the progress line on a terminal (before other output, or at the end). */
  clearProgress(): void {
    if (this.#progressShown && this.#tty) {
      Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
    }
    this.#progressShown = false;
  }

  /**
   * The live progress line, rewritten in place on a terminal. Elsewhere (a pipe, a file, a
   * cluster's log) it is printed as a line at most once every `everyMs` (default a minute; 0:
   * now, say for the first step), so that a log shows the run is alive without getting one line
   * per step.
   */
  progress(text: string, everyMs = PLAIN_PROGRESS_MS): void {
    if (this.#tty) {
      Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${redact(text)}`));
      this.#progressShown = true;
      return;
    }
    const now = this.now();
    if (now - this.#lastPlainProgress >= everyMs) {
      this.#lastPlainProgress = now;
      console.log(redact(text));
    }
  }

  /** Rewrites metrics.html from all events so far. */
  async plot(): Promise<void> {
    if (!this.dir) return;
    await Deno.writeTextFile(
      `${this.dir}/metrics.html`,
      redact(renderPlot(this.title, this.events, this.criterion)),
    );
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m > 0
    ? `${m}m${String(r).padStart(2, "0")}s`
    : `${r}s`;
}

/** metrics.html: every chart of the run (loss, accuracy in %, lr, img/s, step time), static. */
export function renderPlot(title: string, events: MetricEvent[], criterion?: string): string {
  const charts = renderCharts([{ name: title, events, criterion }]);
  const last = [...events].reverse().find((e) => "val/acc1" in e);
  const summary = last
    ? `step ${last.step}: val acc1 ${((last["val/acc1"] as number) * 100).toFixed(2)}%, best ${
      (((last["val/best_acc1"] ?? last["val/acc1"]) as number) * 100).toFixed(2)
    }%`
    : "no evaluation yet";
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}${CHART_CSS}</style>
</head><body><h2>${esc(title)}</h2><p>${esc(summary)}</p>${
    charts.length ? charts.join("\n") : "<p>no metrics yet</p>"
  }</body></html>\n`;
}
/**
 * Drops the records of `{dir}/metrics.jsonl` after `step` (and a line cut short by a kill), so
 * that a run resumed at `step` does not record those steps twice. Returns how many were dropped.
 */
export async function truncateMetrics(dir: string, step: number): Promise<number> {
  const path = `${dir}/metrics.jsonl`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  const kept: string[] = [];
  let dropped = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let event: MetricEvent | undefined;
    try {
      event = JSON.parse(line);
    } catch {
      // a line cut short by a kill
    }
    if (event && typeof event.step === "number" && event.step <= step) kept.push(line);
    else dropped++;
  }
  if (dropped > 0) {
    await atomicWriteFile(path, new TextEncoder().encode(kept.map((l) => l + "\n").join("")));
  }
  return dropped;
}
