/** Synthetic metrics.jsonl files for the dashboard tests: what `deno task train` writes. */
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
