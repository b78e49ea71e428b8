/**
 * The page of `deno task dashboard`: polls /api/data for what the runs logged since the last poll
 * and draws it with uPlot (loaded before this module as the global `uPlot`). Smoothing is
 * TensorBoard's debiased EMA; the y axis can be logarithmic; the x axis is the step, the time
 * since the run started, or the wall clock. Drag zooms, shift+drag pans, the wheel zooms,
 * double-click resets, and the x range is the same in every chart. Hovering shows each series'
 * value at the nearest point it logged. The run table shows and hides runs.
 *
 * `emaSmooth` is exported for the tests; the page starts only where there is a document.
 */

/**
 * TensorBoard's smoothing (its scalars dashboard, "classic" smoothing): an exponential moving
 * average started at 0 and divided by 1 - weight^n, so the first points are not pulled towards
 * 0. Non-finite values pass through and do not count; a constant series is left as it is.
 * @param {number[]} ys
 * @param {number} weight in [0, 1]
 * @returns {number[]}
 */
export function emaSmooth(ys, weight) {
  const w = Number.isFinite(weight) ? Math.max(0, Math.min(weight, 1)) : 0;
  if (ys.every((y) => y == ys[0])) return ys.slice();
  let last = ys.length > 0 ? 0 : NaN, n = 0;
  return ys.map((y) => {
    if (!Number.isFinite(y)) return y;
    last = last * w + (1 - w) * y;
    n++;
    return last / (w === 1 ? 1 : 1 - Math.pow(w, n));
  });
}

/** A value for a person: 5 significant digits, exponent form for very small or large ones. */
export function formatValue(v) {
  if (v === null || v === undefined) return "-";
  if (v === 0 || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) return v.toExponential(3);
  return String(Number(v.toPrecision(5)));
}

/**
 * Tick labels with as many digits as the tick spacing needs (0.0006, 0.0008, 0.001 rather than
 * 0.001 three times), in exponent form when every value is tiny or huge.
 */
export function formatTicks(splits) {
  const finite = splits.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return splits.map(String);
  const step = finite.length > 1 ? Math.abs(finite[1] - finite[0]) : Math.abs(finite[0]) || 1;
  const big = Math.max(...finite.map(Math.abs));
  const exp = big > 0 && (big < 1e-2 || big >= 1e6);
  // Exponent form: the mantissa digits that tell the smallest tick from its neighbour, for all.
  const small = Math.min(...finite.filter((v) => v !== 0).map(Math.abs));
  const digits = Math.min(
    6,
    Math.max(0, Math.floor(Math.log10(small)) - Math.floor(Math.log10(step))),
  );
  return splits.map((v) => {
    if (v === 0 || !Number.isFinite(v)) return String(v);
    if (exp) return v.toExponential(digits).replace("e+", "e");
    return String(Number(v.toFixed(Math.max(0, Math.min(12, -Math.floor(Math.log10(step)))))));
  });
}

/** Seconds as "1h02m", "3m05s" or "12s". */
export function formatDuration(s) {
  const sign = s < 0 ? "-" : "";
  s = Math.round(Math.abs(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const p = (n) => String(n).padStart(2, "0");
  return sign + (h ? `${h}h${p(m)}m` : m ? `${m}m${p(r)}s` : `${r}s`);
}

const METRIC_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
const DASHES = [[], [6, 3], [2, 3], [8, 3, 2, 3]];
const X_LABELS = { step: "step", relative: "time since the run started", wall: "wall time" };

function start() {
  const cfg = JSON.parse(document.getElementById("dashboard-config").textContent);
  const state = {
    /** name -> { name, gen, n, cols: Map(key -> (number|null)[]), summary } */
    runs: new Map(),
    lossUnit: "loss",
    hidden: new Set(),
    smoothing: 0,
    logY: false,
    xMode: "step",
    /** The zoomed x range, in the current x mode's units; null: everything. */
    xRange: null,
  };
  /** kind id -> { kind, fig, u, key, series } */
  const charts = new Map();
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    e.append(...kids);
    return e;
  };
  const api = { state, charts, paintMs: null, polls: 0 };
  globalThis.dashboard = api;

  // Controls.
  const smoothing = el("input", {
    id: "smoothing",
    type: "range",
    min: "0",
    max: "0.999",
    step: "0.001",
    value: "0",
  });
  const smoothingText = el("output", { id: "smoothing-value" }, "0");
  const logY = el("input", { id: "log-y", type: "checkbox" });
  const xAxis = el(
    "select",
    { id: "x-axis" },
    ...Object.entries(X_LABELS).map(([v, t]) => el("option", { value: v }, t)),
  );
  const reset = el("button", { id: "reset-zoom", type: "button" }, "reset zoom");
  $("controls").append(
    el("label", {}, "smoothing ", smoothing, " ", smoothingText),
    el("label", {}, logY, " log scale"),
    el("label", {}, "x axis ", xAxis),
    reset,
    el(
      "span",
      { class: "hint" },
      "drag: zoom · shift+drag: pan · wheel: zoom · double-click: reset",
    ),
  );
  let pending = 0;
  const later = () => pending ||= requestAnimationFrame(() => (pending = 0, render()));
  smoothing.addEventListener("input", () => {
    state.smoothing = Number(smoothing.value);
    smoothingText.textContent = smoothing.value;
    later();
  });
  logY.addEventListener("change", () => (state.logY = logY.checked, render()));
  xAxis.addEventListener("change", () => {
    state.xMode = xAxis.value;
    state.xRange = null;
    render();
  });
  reset.addEventListener("click", () => setXRange(null));

  // Charts, in the order of cfg.charts; hidden until they have data.
  for (const kind of cfg.charts) {
    const fig = el(
      "figure",
      { class: "chart", id: `chart-${kind.id}`, hidden: "" },
      el("figcaption", {}, kind.title, el("span", { class: "legend" })),
      el("div", { class: "plot" }),
      el("div", { class: "readout", hidden: "" }),
    );
    $("charts").append(fig);
    charts.set(kind.id, { kind, fig, u: null, key: "", series: [] });
  }
  let drawnWidth = 0;
  new ResizeObserver(() => {
    // Charts added below change the height: only a new width redraws them.
    const width = plotWidth();
    if (width === drawnWidth) return;
    drawnWidth = width;
    for (const c of charts.values()) c.u?.setSize({ width, height: c.u.height });
  }).observe($("charts"));
  const plotWidth = () => Math.max(300, $("charts").clientWidth); // a layout: read it once

  const sortedRuns = () => [...state.runs.values()].sort((a, b) => a.name.localeCompare(b.name));
  const runColor = (i) => cfg.runColors[i % cfg.runColors.length];

  function merge(update) {
    const names = new Set();
    for (const r of update.runs) {
      names.add(r.name);
      let run = state.runs.get(r.name);
      if (!run || run.gen !== r.gen || r.from === 0 || r.from !== run.n) {
        run = { name: r.name, gen: r.gen, n: 0, cols: new Map(), summary: r.summary };
        if (r.from !== 0) run.gen = -1; // out of step: the next poll gets it all again
        state.runs.set(r.name, run);
      }
      const added = r.cols.step.length;
      for (const [k, sent] of Object.entries(r.cols)) {
        // A mostly empty column comes as the rows that have a value: {i: rows, v: values}.
        let col = sent;
        if (!Array.isArray(sent)) {
          col = new Array(added).fill(null);
          sent.i.forEach((row, j) => (col[row] = sent.v[j]));
        }
        let have = run.cols.get(k);
        if (!have && run.n === 0) run.cols.set(k, col); // a new run: its columns as they came
        else {
          if (!have) run.cols.set(k, have = new Array(run.n).fill(null));
          for (const v of col) have.push(v);
        }
      }
      for (const [k, have] of run.cols) {
        if (!(k in r.cols)) { for (let i = 0; i < added; i++) have.push(null); }
      }
      run.n += added;
      run.summary = r.summary;
    }
    for (const name of [...state.runs.keys()]) if (!names.has(name)) state.runs.delete(name);
    state.lossUnit = update.lossUnit ?? state.lossUnit;
  }

  function renderTable() {
    const pct = (v) => v === undefined || v === null ? "-" : `${(v * 100).toFixed(2)}%`;
    const rows = sortedRuns().map((run, i) => {
      const s = run.summary;
      const box = el("input", { type: "checkbox", class: "run-toggle", "data-run": run.name });
      box.checked = !state.hidden.has(run.name);
      box.addEventListener("change", () => setRunShown(run.name, box.checked));
      const updated = new Date(s.updated).toISOString().replace("T", " ").slice(0, 19) + " UTC";
      return el(
        "tr",
        { class: "run", "data-run": run.name },
        el("td", {}, box),
        el("td", {}, el("span", { class: "swatch", style: `background:${runColor(i)}` }), run.name),
        el("td", {}, s.criterion ?? "-"),
        el("td", {}, String(s.step)),
        el("td", {}, pct(s.lastAcc1)),
        el("td", {}, pct(s.bestAcc1)),
        el("td", {}, updated),
      );
    });
    const head = el(
      "tr",
      {},
      ...["show", "run", "criterion", "step", "val acc1", "best acc1", "updated"].map((t) =>
        el("th", {}, t)
      ),
    );
    $("runs").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
    if (rows.length === 0) {
      $("runs").replaceChildren(
        el(
          "caption",
          { id: "empty" },
          `no runs under ${cfg.root} yet (a run is a folder with `,
          "metrics.jsonl); this page updates when one starts",
        ),
      );
    }
  }

  /** The series of one chart: each run's points of each metric, by the current x mode. */
  function buildSeries(kind, runs) {
    const out = [];
    runs.forEach((run, r) => {
      const step = run.cols.get("step"), time = run.cols.get("time") ?? [];
      const t0 = time.find((t) => t !== null) ?? 0;
      kind.metrics.forEach((m, i) => {
        const ys = run.cols.get(m.key);
        if (!ys) return;
        const xs = [],
          raw = [],
          scale = kind.scale ?? 1,
          shift = state.xMode === "relative" ? t0 : 0;
        const byStep = state.xMode === "step";
        let sorted = true;
        for (let j = 0; j < run.n; j++) {
          const y = ys[j], x = byStep ? step[j] : time[j];
          if (y === null || x === null || x === undefined) continue;
          if (xs.length && x - shift <= xs[xs.length - 1]) sorted = false;
          xs.push(x - shift);
          raw.push(y * scale);
        }
        if (xs.length === 0) return;
        if (!sorted) {
          // Out of order or repeated x: sorted, the last value of an x kept.
          const byX = new Map(xs.map((x, k) => [x, raw[k]]));
          const order = [...byX.keys()].sort((a, b) => a - b);
          xs.length = raw.length = 0;
          for (const x of order) xs.push(x), raw.push(byX.get(x));
        }
        const one = runs.length === 1;
        out.push({
          run: run.name,
          metric: m.key,
          label: one ? m.label : `${run.name} ${m.label}`,
          metricLabel: m.label,
          color: one ? METRIC_COLORS[i % METRIC_COLORS.length] : runColor(r),
          dash: one ? [] : DASHES[i % DASHES.length],
          marker: m.marker,
          xs,
          raw,
        });
      });
    });
    for (const s of out) {
      s.ys = state.smoothing > 0 ? emaSmooth(s.raw, state.smoothing) : s.raw;
    }
    return out;
  }

  /** uPlot's aligned data: the union of every series' x, each series null where it has none. */
  function buildData(series) {
    const all = new Float64Array(series.reduce((n, s) => n + s.xs.length, 0));
    let k = 0;
    for (const s of series) for (const x of s.xs) all[k++] = x;
    all.sort();
    const xs = [];
    for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) xs.push(all[i]);
    const column = (s, ys) => {
      const col = new Array(xs.length).fill(null);
      let j = 0;
      for (let i = 0; i < s.xs.length; i++) {
        while (xs[j] < s.xs[i]) j++;
        const y = ys[i];
        col[j] = state.logY && !(y > 0) ? null : y;
      }
      return col;
    };
    const smoothed = state.smoothing > 0;
    // With smoothing the raw values are drawn faintly underneath, as TensorBoard does.
    return [
      xs,
      ...(smoothed ? series.map((s) => column(s, s.raw)) : []),
      ...series.map((s) => column(s, s.ys)),
    ];
  }

  /**
   * Eval dots are drawn while they stay apart (at most one per 6 px of the visible range), so a
   * long run's evals do not paint a solid band; zoomed in, they appear. A lone point always does.
   */
  const dotsFit = (s) => (u, _si, i0, i1) => {
    if (s.xs.length === 1) return true;
    if (!s.marker) return false;
    const x0 = u.data[0][i0], x1 = u.data[0][i1];
    let n = 0;
    for (const x of s.xs) if (x >= x0 && x <= x1) n++;
    return n * 6 <= u.over.clientWidth;
  };

  function uplotSeries(series) {
    const smoothed = state.smoothing > 0;
    const line = (s, faint) => ({
      label: faint ? `${s.label} (raw)` : s.label,
      stroke: faint ? s.color + "40" : s.color,
      width: faint ? 1 : 2,
      dash: s.dash,
      spanGaps: true,
      show: !state.hidden.has(s.run),
      points: {
        show: faint ? false : dotsFit(s),
        size: 7,
        fill: s.color,
        stroke: s.color,
      },
    });
    return [
      { label: X_LABELS[state.xMode] },
      ...(smoothed ? series.map((s) => line(s, true)) : []),
      ...series.map((s) => line(s, false)),
    ];
  }

  function render() {
    renderTable();
    const runs = sortedRuns(), width = plotWidth();
    for (const c of charts.values()) {
      const series = buildSeries(c.kind, runs);
      c.series = series;
      if (series.length === 0) {
        c.u?.destroy();
        c.u = null;
        c.key = "";
        c.fig.hidden = true;
        continue;
      }
      c.fig.hidden = false;
      const unit = c.kind.id === "loss" ? state.lossUnit : c.kind.unit;
      const data = buildData(series);
      const key = JSON.stringify([
        state.xMode,
        state.logY,
        state.smoothing > 0,
        unit,
        series.map((s) => [s.label, s.color, s.marker || s.xs.length === 1]),
      ]);
      if (c.u && c.key === key) {
        c.u.setData(data);
      } else {
        c.u?.destroy();
        c.u = makeChart(c, series, data, unit, width);
        c.key = key;
        renderLegend(c, series);
      }
      if (state.xRange) c.u.setScale("x", { min: state.xRange[0], max: state.xRange[1] });
    }
    if (api.paintMs === null && runs.length > 0) {
      requestAnimationFrame(() => api.paintMs ??= performance.now());
    }
  }

  function renderLegend(c, series) {
    // Several runs: the run colors are in the table, the legend tells the metrics apart.
    const seen = new Map();
    for (const s of series) {
      const id = state.runs.size === 1 ? s.label : s.metricLabel;
      if (!seen.has(id)) seen.set(id, s);
    }
    const items = [...seen].map(([id, s]) => {
      const color = state.runs.size === 1 ? s.color : "#444";
      const svg =
        `<svg width="26" height="10"><line x1="1" x2="25" y1="5" y2="5" stroke="${color}" ` +
        `stroke-width="2" stroke-dasharray="${s.dash.join(" ")}"/>${
          s.marker ? `<circle cx="13" cy="5" r="3" fill="${color}"/>` : ""
        }</svg>`;
      const item = el("span", { class: "item" }, id);
      item.insertAdjacentHTML("afterbegin", svg);
      return item;
    });
    c.fig.querySelector(".legend").replaceChildren(...items);
  }

  let syncing = false;
  function setXRange(range) {
    state.xRange = range;
    syncing = true;
    try {
      for (const c of charts.values()) {
        if (!c.u) continue;
        const xs = c.u.data[0];
        const [min, max] = range ?? [xs[0], xs[xs.length - 1]];
        c.u.setScale("x", { min, max });
      }
    } finally {
      syncing = false;
    }
  }

  function setRunShown(name, shown) {
    if (shown) state.hidden.delete(name);
    else state.hidden.add(name);
    for (const c of charts.values()) {
      if (!c.u) continue;
      c.u.batch(() => {
        c.u.series.forEach((_s, i) => {
          const owner = seriesOf(c, i);
          if (i > 0 && owner && owner.run === name) c.u.setSeries(i, { show: shown });
        });
      });
    }
  }

  /** The series descriptor behind uPlot series index `i` (raw copies map to theirs). */
  function seriesOf(c, i) {
    const n = c.series.length;
    if (i < 1) return null;
    return c.series[(i - 1) % n];
  }

  function makeChart(c, series, data, unit, width) {
    const plot = c.fig.querySelector(".plot");
    const readout = c.fig.querySelector(".readout");
    const xValues = state.xMode === "relative"
      ? (_u, splits) => splits.map(formatDuration)
      : undefined;
    const opts = {
      width,
      height: 300,
      legend: { show: false },
      scales: {
        x: { time: state.xMode === "wall" },
        y: state.logY ? { distr: 3, log: 10 } : {},
      },
      axes: [
        { label: X_LABELS[state.xMode], ...(xValues ? { values: xValues } : {}) },
        {
          label: unit,
          size: 70,
          // Log axes keep uPlot's own labels (decades); linear ones get the digits they need.
          ...(state.logY ? {} : { values: (_u, splits) => formatTicks(splits) }),
        },
      ],
      series: uplotSeries(series),
      cursor: {
        y: false,
        sync: { key: "x", setSeries: false },
        drag: { x: true, y: false, setScale: true },
        points: { size: 8 },
        bind: {
          // shift+drag pans (below); a plain drag selects a range to zoom into.
          mousedown: (_u, _targ, handler) => (e) => {
            if (!e.shiftKey) handler(e);
            return null;
          },
        },
      },
      hooks: {
        setScale: [(u, key) => {
          if (key !== "x" || syncing) return;
          const xs = u.data[0], { min, max } = u.scales.x;
          const range = min <= xs[0] && max >= xs[xs.length - 1] ? null : [min, max];
          // A chart being drawn sets its scale too: only a change is passed on to the others.
          const now = state.xRange;
          if (range === now || (range && now && range[0] === now[0] && range[1] === now[1])) return;
          setXRange(range);
        }],
        setCursor: [(u) => showReadout(c, u, readout)],
      },
    };
    const u = new uPlot(opts, data, plot);
    // The wheel zooms around the pointer; shift+drag pans.
    u.over.addEventListener("wheel", (e) => {
      e.preventDefault();
      const { min, max } = u.scales.x;
      const at = u.posToVal(e.offsetX, "x"), f = e.deltaY < 0 ? 0.8 : 1.25;
      setXRange([at - (at - min) * f, at + (max - at) * f]);
    }, { passive: false });
    u.over.addEventListener("mousedown", (e) => {
      if (!e.shiftKey) return;
      const x0 = e.clientX, { min, max } = u.scales.x, w = u.over.clientWidth;
      const move = (m) => {
        const dv = ((m.clientX - x0) / w) * (max - min);
        setXRange([min - dv, max - dv]);
      };
      const up = () => {
        removeEventListener("mousemove", move);
        removeEventListener("mouseup", up);
      };
      addEventListener("mousemove", move);
      addEventListener("mouseup", up);
    });
    u.over.addEventListener("mouseenter", () => (c.hovered = true));
    u.over.addEventListener("mouseleave", () => {
      c.hovered = false;
      readout.hidden = true;
    });
    return u;
  }

  /** Each shown series' value at the point it logged nearest the hovered x. */
  function showReadout(c, u, readout) {
    const left = u.cursor.left;
    if (!c.hovered || left === undefined || left < 0) {
      readout.hidden = true;
      return;
    }
    const x = u.posToVal(left, "x");
    const fmtX = (v) =>
      state.xMode === "step"
        ? `step ${v}`
        : state.xMode === "relative"
        ? formatDuration(v)
        : new Date(v * 1000).toISOString().replace("T", " ").slice(0, 19);
    const rows = [];
    for (const s of c.series) {
      if (state.hidden.has(s.run)) continue;
      let lo = 0, hi = s.xs.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (s.xs[mid] <= x) lo = mid;
        else hi = mid;
      }
      const j = Math.abs(s.xs[hi] - x) < Math.abs(s.xs[lo] - x) ? hi : lo;
      rows.push({ s, j, v: s.ys[j] });
    }
    rows.sort((a, b) => b.v - a.v);
    const near = rows.length
      ? rows.reduce((a, b) => Math.abs(a.s.xs[a.j] - x) <= Math.abs(b.s.xs[b.j] - x) ? a : b)
      : null;
    readout.replaceChildren(
      el("div", { class: "at" }, near ? fmtX(near.s.xs[near.j]) : ""),
      ...rows.map(({ s, j, v }) => {
        const raw = state.smoothing > 0 ? ` (raw ${formatValue(s.raw[j])})` : "";
        const where = near && s.xs[j] !== near.s.xs[near.j] ? ` at ${fmtX(s.xs[j])}` : "";
        return el(
          "div",
          { class: "row", "data-run": s.run, "data-metric": s.metric },
          el("span", { class: "swatch", style: `background:${s.color}` }),
          `${s.label}: `,
          el("b", {}, formatValue(v)),
          raw + where,
        );
      }),
    );
    readout.hidden = false;
    const box = u.over.getBoundingClientRect(), plotBox = c.fig.getBoundingClientRect();
    const px = box.left - plotBox.left + left;
    readout.style.left = `${
      px + 16 + readout.offsetWidth > plotBox.width ? px - 16 - readout.offsetWidth : px + 16
    }px`;
    readout.style.top = `${box.top - plotBox.top + 8}px`;
  }

  const status = $("status");
  async function poll() {
    try {
      const have = [...state.runs.values()].map((r) => [r.name, r.gen, r.n]);
      const r = await fetch("/api/data?have=" + encodeURIComponent(JSON.stringify(have)));
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
      const t0 = performance.now();
      const update = await r.json();
      const t1 = performance.now();
      if (!update.unchanged) merge(update);
      const t2 = performance.now();
      if (!update.unchanged || api.polls === 0) render();
      if (api.polls === 0) {
        api.timings = { parse: t1 - t0, merge: t2 - t1, render: performance.now() - t2 };
      }
      api.polls++;
      status.textContent = "live: updated " + new Date().toLocaleTimeString();
    } catch (e) {
      status.textContent = `dashboard server unreachable (${e.message}); retrying`;
    }
    setTimeout(poll, 2000);
  }
  poll();
}

if (typeof document !== "undefined") start();
