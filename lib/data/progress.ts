/** A progress line for long copies: done/total bytes, bytes/s over the last minute, ETA. */

export class Progress {
  #total: number;
  #done = 0;
  #files = 0;
  #fileTotal: number;
  #samples: [number, number][] = [];
  #lastDraw = 0;
  #write: (text: string) => void;
  #tty: boolean;
  #start = performance.now();

  constructor(
    totalBytes: number,
    fileTotal: number,
    out: { write: (text: string) => void; tty: boolean },
  ) {
    this.#total = totalBytes;
    this.#fileTotal = fileTotal;
    this.#write = out.write;
    this.#tty = out.tty;
  }

  add(bytes: number): void {
    this.#done += bytes;
    this.#draw(false);
  }

  fileDone(): void {
    this.#files++;
    this.#draw(false);
  }

  /** Final line. */
  finish(): void {
    this.#draw(true);
    if (this.#tty) this.#write("\n");
  }

  /** Bytes per second over the last minute. */
  rate(): number {
    const now = performance.now();
    this.#samples.push([now, this.#done]);
    while (this.#samples.length > 2 && now - this.#samples[0][0] > 60_000) this.#samples.shift();
    const [t0, b0] = this.#samples[0];
    const dt = (now - t0) / 1000;
    if (dt >= 1) return (this.#done - b0) / dt;
    // Too short a window: the average since the start.
    const all = (now - this.#start) / 1000;
    return all > 0 ? this.#done / all : 0;
  }

  line(): string {
    const rate = this.rate();
    const pct = this.#total > 0 ? (100 * this.#done / this.#total).toFixed(1) : "100.0";
    const left = this.#total - this.#done;
    const eta = left <= 0 ? "0s" : rate > 0 ? formatDuration(left / rate) : "?";
    return `${this.#files}/${this.#fileTotal} files  ${formatBytes(this.#done)} / ` +
      `${formatBytes(this.#total)} (${pct}%)  ${formatBytes(rate)}/s  ETA ${eta}`;
  }

  #draw(force: boolean): void {
    const now = performance.now();
    // On a terminal the line is redrawn twice a second; in a log, one line every 30 s.
    const every = this.#tty ? 500 : 30_000;
    if (!force && now - this.#lastDraw < every) return;
    this.#lastDraw = now;
    const text = this.line();
    this.#write(this.#tty ? `\r\x1b[K${text}` : `${text}\n`);
  }

  get elapsedSeconds(): number {
    return (performance.now() - this.#start) / 1000;
  }
}

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m > 0
    ? `${m}m${String(sec).padStart(2, "0")}s`
    : `${sec}s`;
}
