/**
 * SVG line charts of training metrics for `metrics.html`, the static page each run writes (one
 * run, or several overlaid). Hand-written SVG: the file needs no script to draw and loads nothing.
 * The chart definitions (`CHARTS`, `RUN_COLORS`, `lossUnit`) are also those of the interactive
 * `deno task dashboard` page (dashboard.ts, dashboard_assets/), which draws them with uPlot.
 *
 * Each chart has gridlines at round values, an axis title with its unit, a legend, and eval
 * points marked with dots (a series of one point is a dot). Accuracies are in percent.
 */
export type MetricEvent = { step: number; time: number } & Record<string, number | string>;

export interface RunEvents {
  name: string;
  events: MetricEvent[];
  /** The run's `criterion` ("ce", "bce"): names the loss axis. */
  criterion?: string;
}

/** One chart: which metrics it shows, its unit, and how values are scaled for display. */
export interface ChartKind {
  id: string;
  title: string;
  /** The y-axis title, unit included. */
  unit: string;
  metrics: { key: string; label: string; marker: boolean }[];
  scale?: number;
}

export const CHARTS: ChartKind[] = [
  {
    id: "loss",
    title: "Loss",
    unit: "loss", // named by the runs' criterion: lossUnit
    metrics: [
      { key: "train/loss", label: "train", marker: false },
      { key: "val/loss", label: "val", marker: true },
    ],
  },
  {
    id: "accuracy",
    title: "Accuracy",
    unit: "top-k accuracy (%)",
    scale: 100,
    metrics: [
      { key: "train/acc1", label: "train acc1", marker: false },
      { key: "val/acc1", label: "val acc1", marker: true },
      { key: "val/acc5", label: "val acc5", marker: true },
    ],
  },
  {
    id: "lr",
    title: "Learning rate",
    unit: "learning rate",
    metrics: [{ key: "train/lr", label: "lr", marker: false }],
  },
  {
    id: "throughput",
    title: "Throughput",
    unit: "images / s",
    metrics: [{ key: "train/img_per_s", label: "img/s", marker: false }],
  },
  {
    id: "step-time",
    title: "Step time",
    unit: "seconds per step",
    metrics: [
      { key: "train/data_time", label: "data", marker: false },
      { key: "train/compute_time", label: "compute", marker: false },
    ],
  },
];

/** The loss each `criterion` value computes. */
export const LOSS_NAMES: Record<string, string> = {
  ce: "cross-entropy",
  bce: "binary cross-entropy",
};

/**
 * The loss axis title for runs with these criteria: "binary cross-entropy loss" when they agree,
 * "loss (bce or ce, by run)" when not (short: an axis title has little room), "loss" where none
 * is known.
 */
export function lossUnit(criteria: (string | undefined)[]): string {
  const known = [...new Set(criteria.filter((c): c is string => !!c && c in LOSS_NAMES))];
  const unknown = criteria.some((c) => !c || !(c in LOSS_NAMES));
  if (known.length === 0) return "loss";
  return known.length === 1 && !unknown
    ? `${LOSS_NAMES[known[0]]} loss`
    : `loss (${known.sort().join(" or ")}, by run)`;
}

const METRIC_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
export const RUN_COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#7f7f7f",
  "#bcbd22",
];
const DASHES = ["", "6 3", "2 3", "8 3 2 3"];

/**
 * Every chart of `runs` that has data, as SVG. One run: colored by metric. Several: colored by
 * run, and metrics told apart by dash pattern.
 */
export function renderCharts(runs: RunEvents[]): string[] {
  const out: string[] = [];
  for (const kind of CHARTS) {
    const series: Series[] = [];
    runs.forEach((run, r) => {
      kind.metrics.forEach((m, i) => {
        const points = seriesOf(run.events, m.key, kind.scale ?? 1);
        if (points.length === 0) return;
        series.push({
          run: run.name,
          metric: m.key,
          label: runs.length > 1 ? `${run.name} ${m.label}` : m.label,
          color: runs.length > 1 ? RUN_COLORS[r % RUN_COLORS.length] : METRIC_COLORS[i],
          dash: runs.length > 1 ? DASHES[i % DASHES.length] : "",
          marker: m.marker,
          points,
        });
      });
    });
    const unit = kind.id === "loss" ? lossUnit(runs.map((r) => r.criterion)) : kind.unit;
    if (series.length > 0) out.push(svgChart({ ...kind, unit }, series));
  }
  return out;
}

export interface Series {
  run: string;
  metric: string;
  label: string;
  color: string;
  dash: string;
  marker: boolean;
  points: [number, number][];
}

/** The finite values of `key` by step, scaled. */
export function seriesOf(events: MetricEvent[], key: string, scale = 1): [number, number][] {
  const pts: [number, number][] = [];
  for (const e of events) {
    const v = e[key];
    if (typeof v === "number" && Number.isFinite(v)) pts.push([e.step, v * scale]);
  }
  return pts;
}

/**
 * Screen points thinned to what a pixel column can show: per column the first, lowest, highest
 * and last point, in order (M4 decimation), so spikes survive and a long run costs at most four
 * points per pixel of width.
 */
export function decimate(pts: [number, number][]): [number, number][] {
  if (pts.length <= 8) return pts;
  const out: [number, number][] = [];
  let i = 0;
  while (i < pts.length) {
    const col = Math.floor(pts[i][0]);
    let j = i, lo = i, hi = i;
    while (j + 1 < pts.length && Math.floor(pts[j + 1][0]) === col) {
      j++;
      if (pts[j][1] > pts[lo][1]) lo = j; // screen y grows downwards: larger y is lower
      if (pts[j][1] < pts[hi][1]) hi = j;
    }
    for (const k of [...new Set([i, Math.min(lo, hi), Math.max(lo, hi), j])]) out.push(pts[k]);
    i = j + 1;
  }
  return out;
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) {
    ticks.push(k === 0 ? 0 : Number((k * step).toPrecision(12)));
  }
  return ticks;
}

export function formatTick(v: number, span: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  // Small or huge scales (learning rates): every tick of the axis in the same exponent form.
  if (span < 1e-2 || a >= 1e6) return v.toExponential(1).replace("e+", "e");
  if (a >= 1000) return Number.isInteger(v) ? `${v / 1000}k`.replace(/\.0k$/, "k") : v.toFixed(0);
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(span / 5)) + 1));
  return Number(v.toFixed(digits)).toString();
}

function svgChart(kind: ChartKind, series: Series[]): string {
  const W = 760, H = 280, L = 64, R = 170, T = 28, B = 44;
  const pts = series.flatMap((s) => s.points);
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const xMax = Math.max(...xs);
  let x0 = Math.min(0, ...xs), x1 = xMax > x0 ? xMax : x0 + 1;
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-12 * Math.max(1, Math.abs(y1))) {
    const pad = Math.abs(y0) * 0.1 || 0.5;
    [y0, y1] = [y0 - pad, y1 + pad];
  } else {
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const xt = niceTicks(x0, x1, 6), yt = niceTicks(y0, y1, 5);
  x0 = Math.min(x0, xt[0]);
  x1 = Math.max(x1, xt.at(-1)!);
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const grid = [
    ...yt.filter((y) => y >= y0 && y <= y1).map((y) =>
      `<line class="grid" x1="${L}" x2="${W - R}" y1="${f(sy(y))}" y2="${f(sy(y))}"/>` +
      `<text x="${L - 6}" y="${f(sy(y) + 4)}" text-anchor="end">${formatTick(y, y1 - y0)}</text>`
    ),
    ...xt.map((x) =>
      `<line class="grid" x1="${f(sx(x))}" x2="${f(sx(x))}" y1="${T}" y2="${H - B}"/>` +
      `<text x="${f(sx(x))}" y="${H - B + 16}" text-anchor="middle">${
        formatTick(x, x1 - x0)
      }</text>`
    ),
  ];
  const plots = series.map((s) => {
    const attrs = `data-run="${esc(s.run)}" data-metric="${esc(s.metric)}"`;
    const screen = decimate(s.points.map(([x, y]) => [sx(x), sy(y)]));
    const d = screen.map(([x, y], j) => `${j ? "L" : "M"}${f(x)},${f(y)}`).join("");
    const line = s.points.length > 1
      ? `<path class="series" ${attrs} d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${
        s.dash ? ` stroke-dasharray="${s.dash}"` : ""
      }/>`
      : "";
    // Eval points: one path of round dots (a zero-length segment each), hundreds stay light.
    const dots = s.marker || s.points.length === 1
      ? `<path class="points" ${attrs} d="${
        s.points.map(([x, y]) => `M${f(sx(x))},${f(sy(y))}h0`).join("")
      }" stroke="${s.color}" stroke-width="7" stroke-linecap="round" fill="none">` +
        `<title>${esc(s.label)}: ${lastValue(s)}</title></path>`
      : "";
    return line + dots;
  });
  const legend = series.map((s, i) => {
    const y = T + 8 + 18 * i;
    return `<line x1="${W - R + 12}" x2="${W - R + 34}" y1="${y}" y2="${y}" stroke="${s.color}" ` +
      `stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>` +
      (s.marker ? `<circle cx="${W - R + 23}" cy="${y}" r="3" fill="${s.color}"/>` : "") +
      `<text x="${W - R + 40}" y="${y + 4}">${esc(s.label)}</text>`;
  });
  return `<figure class="chart" id="chart-${kind.id}"><figcaption>${esc(kind.title)}</figcaption>` +
    `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg" ` +
    `role="img" aria-label="${esc(kind.title)}">` +
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" class="frame"/>` +
    grid.join("") + plots.join("") + legend.join("") +
    `<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle" class="axis">step</text>` +
    `<text transform="translate(14 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle" ` +
    `class="axis">${esc(kind.unit)}</text></svg></figure>`;
}

/** The style the charts need, for pages that include them. */
export const CHART_CSS =
  `figure.chart{margin:12px 0}figure.chart figcaption{font-weight:600;margin-bottom:2px}` +
  `svg{background:#fff;border:1px solid #ddd;max-width:100%;height:auto}` +
  `svg text{font:11px system-ui,sans-serif;fill:#444}svg text.axis{font-size:12px;fill:#222}` +
  `svg .grid{stroke:#e6e6e6;stroke-width:1}svg .frame{fill:none;stroke:#bbb}`;

/** "50 at step 30": the last point of a series, for its tooltip. */
function lastValue(s: Series): string {
  const [x, y] = s.points.at(-1)!;
  return `${formatTick(y, Math.abs(y) || 1)} at step ${x}`;
}

function f(v: number): string {
  return v.toFixed(1);
}

export function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}
