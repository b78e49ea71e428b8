/**
 * What a person looks at during a run: a live progress line, `metrics.jsonl` (one JSON object
 * per log or eval event) and `metrics.html`, a self-contained loss/accuracy plot refreshed at
 * each evaluation.
 */
import { atomicWriteFile } from "../checkpoint/atomic.ts";

export type MetricEvent = { step: number; time: number } & Record<string, number | string>;

export class RunLog {
  readonly events: MetricEvent[] = [];
  #progressShown = false;
  readonly #tty = Deno.stderr.isTerminal();

  constructor(readonly dir: string | null, readonly title: string) {}

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
      await Deno.writeTextFile(`${this.dir}/metrics.jsonl`, JSON.stringify(event) + "\n", {
        append: true,
      });
    }
  }

  /** A line that stays in the log. */
  line(text: string): void {
    if (this.#progressShown && this.#tty) {
      Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[K"));
    }
    this.#progressShown = false;
    console.log(text);
  }

  /** The live progress line (rewritten in place on a terminal, printed otherwise). */
  progress(text: string): void {
    if (this.#tty) {
      Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[K${text}`));
      this.#progressShown = true;
    } else {
      console.log(text);
    }
  }

  /** Rewrites metrics.html from all events so far. */
  async plot(): Promise<void> {
    if (!this.dir) return;
    await Deno.writeTextFile(`${this.dir}/metrics.html`, renderPlot(this.title, this.events));
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

/** An HTML page with two SVG charts: train/val loss, and val acc1/acc5 (and train acc1). */
export function renderPlot(title: string, events: MetricEvent[]): string {
  const series = (key: string) =>
    events.filter((e) => typeof e[key] === "number" && Number.isFinite(e[key] as number))
      .map((e) => [e.step, e[key] as number] as [number, number]);
  const charts = [
    chart("loss", [["train/loss", series("train/loss"), "#1f77b4"], [
      "val/loss",
      series("val/loss"),
      "#d62728",
    ]]),
    chart("accuracy", [
      ["train/acc1", series("train/acc1"), "#9ecae1"],
      ["val/acc1", series("val/acc1"), "#2ca02c"],
      ["val/acc5", series("val/acc5"), "#98df8a"],
    ]),
  ];
  const last = [...events].reverse().find((e) => "val/acc1" in e);
  const summary = last
    ? `step ${last.step}: val acc1 ${((last["val/acc1"] as number) * 100).toFixed(2)}%, best ${
      (((last["val/best_acc1"] ?? last["val/acc1"]) as number) * 100).toFixed(2)
    }%`
    : "no evaluation yet";
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}svg{background:#fafafa;border:1px solid #ddd;margin:8px 0}</style>
</head><body><h2>${escapeHtml(title)}</h2><p>${escapeHtml(summary)}</p>${
    charts.join("\n")
  }</body></html>\n`;
}

function chart(name: string, lines: [string, [number, number][], string][]): string {
  const W = 720, H = 260, L = 56, R = 140, T = 16, B = 32;
  const pts = lines.flatMap(([, s]) => s);
  if (pts.length === 0) return `<p>${name}: no data yet</p>`;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const paths = lines.map(([label, s, color], i) => {
    if (s.length === 0) return "";
    const d = s.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(
      "",
    );
    return `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>` +
      `<text x="${W - R + 10}" y="${T + 16 + 18 * i}" fill="${color}">${label}</text>`;
  });
  const ticks = [0, 0.5, 1].map((f) => {
    const y = y0 + f * (y1 - y0);
    return `<text x="4" y="${sy(y) + 4}" font-size="11">${y.toPrecision(3)}</text>`;
  });
  return `<h3>${name}</h3><svg width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">` +
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#999"/>` +
    `<text x="${L}" y="${H - 8}" font-size="11">step ${x0}</text>` +
    `<text x="${W - R - 60}" y="${H - 8}" font-size="11">step ${x1}</text>` +
    ticks.join("") + paths.join("") + `</svg>`;
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
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
