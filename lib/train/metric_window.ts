/**
 * The windows the training log averages over: step metrics since the last log line, and images
 * per second since the last log line or evaluation (an evaluation's time is not training time).
 * The metric window is saved with the training state, so that the first log line after a resume
 * averages the same steps as an uninterrupted run's; the throughput clock starts afresh.
 */
export class MetricWindow {
  #sums: Record<string, number> = {};
  #count = 0;
  #clockStart = performance.now();
  #images = 0;

  /** A window holding the steps of a saved `state()`. */
  static restore(state: WindowState): MetricWindow {
    const w = new MetricWindow();
    w.#sums = { ...state.sums };
    w.#count = state.count;
    return w;
  }

  /** The metric window's sums and step count (plain data). */
  state(): WindowState {
    return { sums: { ...this.#sums }, count: this.#count };
  }

  /** Adds one step's metrics and the images it trained on. */
  add(metrics: Record<string, number>, images: number): void {
    for (const [k, v] of Object.entries(metrics)) this.#sums[k] = (this.#sums[k] ?? 0) + v;
    this.#count++;
    this.#images += images;
  }

  /** Steps in the metric window. */
  get count(): number {
    return this.#count;
  }

  /** Means of the metrics over the window, keyed `${prefix}${name}`. */
  means(prefix = ""): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.#sums)) out[`${prefix}${k}`] = v / this.#count;
    return out;
  }

  /** Images per second since the clock was last restarted. */
  imagesPerSecond(now = performance.now()): number {
    return this.#images / ((now - this.#clockStart) / 1000);
  }

  /** Empties the metric window and restarts the clock (after a log line). */
  reset(): void {
    this.#sums = {};
    this.#count = 0;
    this.restartClock();
  }

  /** Restarts the throughput clock only (after an evaluation or a save). */
  restartClock(): void {
    this.#clockStart = performance.now();
    this.#images = 0;
  }
}

export interface WindowState {
  sums: Record<string, number>;
  count: number;
}
