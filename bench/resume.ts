/**
 * Resume benchmark: what a resume costs at step S, on the embedded MNIST default (CPU backend).
 *
 *   deno run -A bench/resume.ts [--steps 500] [--run 50] [--rounds 3] [--json]
 *
 * One run of `--steps` steps is stopped at step 10 and at step `steps - run`, keeping its state
 * at each. Then, alternating for R rounds, from copies of those states:
 *   - fresh: a new run of the same config for `run` steps;
 *   - resume early: from step 10, `run` steps;
 *   - resume late: from step `steps - run`, `run` steps (near the end of the run).
 * The loader positions itself from the saved data position (whole shards skipped by index,
 * samples inside the current shard skipped at tar level), so "resume late" should cost what
 * "resume early" costs plus at most one shard read, and about what "fresh" costs: not a replay
 * of the steps before it. Each figure is the best of R wall-clock times of the whole `train`
 * call (backend start, compile, resume, steps, final save).
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../lib/config/mod.ts";
import { prepareMnist } from "../lib/data/mnist.ts";
import { train } from "../lib/train/loop.ts";

export interface ResumeBenchResult {
  steps: number;
  run: number;
  batch: number;
  rounds: number;
  fresh_s: number;
  resume_early_s: number;
  resume_late_s: number;
  /** Time of the steps between the two saved states, for scale: what a replay would redo. */
  between_s: number;
  late_over_early: number;
  late_over_fresh: number;
}

export async function benchResume(
  { steps = 500, run = 50, rounds = 3 }: { steps?: number; run?: number; rounds?: number } = {},
): Promise<ResumeBenchResult> {
  const late = steps - run;
  if (!(late > 10)) throw new Error(`--steps ${steps} must exceed --run ${run} + 10`);
  const root = await Deno.makeTempDir({ prefix: "deit3-bench-resume-" });
  const quiet = console.log;
  try {
    const defaults = loadConfig(undefined, []);
    const spec = defaults["train-dataset-shards"] ?? "";
    const mnist = spec.slice(0, spec.lastIndexOf("/")) || ".";
    await prepareMnist(mnist);
    const config = (dir: string) =>
      loadConfig(undefined, [
        "--backend",
        "cpu",
        "--training-steps",
        String(steps),
        "--eval-interval",
        String(10 * steps), // no evaluation inside the timed segments
        "--log-interval",
        String(steps),
        "--output-dir",
        dir,
      ]);
    const timed = async (dir: string, stopAtStep: number) => {
      const t0 = performance.now();
      const r = await train(config(dir), { stopAtStep });
      if (r.step !== stopAtStep) throw new Error(`${dir}: stopped at ${r.step}, not ${stopAtStep}`);
      return (performance.now() - t0) / 1000;
    };
    console.log = () => {}; // the runs' own lines
    const base = `${root}/base`;
    await timed(base, 10);
    const early = `${root}/early`;
    await copy(base, early);
    const between = await timed(base, late);
    const lateDir = `${root}/late`;
    await copy(base, lateDir);
    const best = { fresh: Infinity, early: Infinity, late: Infinity };
    for (let r = 0; r < rounds; r++) {
      const fresh = `${root}/fresh-${r}`, e = `${root}/early-${r}`, l = `${root}/late-${r}`;
      await copy(early, e);
      await copy(lateDir, l);
      best.fresh = Math.min(best.fresh, await timed(fresh, run));
      best.early = Math.min(best.early, await timed(e, 10 + run));
      best.late = Math.min(best.late, await timed(l, steps));
      for (const d of [fresh, e, l]) await Deno.remove(d, { recursive: true });
    }
    return {
      steps,
      run,
      batch: defaults["train-batch-size"],
      rounds,
      fresh_s: best.fresh,
      resume_early_s: best.early,
      resume_late_s: best.late,
      between_s: between,
      late_over_early: best.late / best.early,
      late_over_fresh: best.late / best.fresh,
    };
  } finally {
    console.log = quiet;
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** Copies a run folder (flat: checkpoints, state, metrics, config.json). */
async function copy(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (!e.isFile) {
      throw new Error(`${from}/${e.name}: not a file; the copy expects a flat run folder`);
    }
    await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

export function formatResumeBench(r: ResumeBenchResult): string {
  const s = (x: number) => `${x.toFixed(2)} s`;
  const late = r.steps - r.run;
  return [
    `MNIST default, CPU backend, batch ${r.batch}, ${r.steps}-step run, best of ${r.rounds}:`,
    `  fresh run, ${r.run} steps: ${s(r.fresh_s)}`,
    `  resume at step 10, ${r.run} steps: ${s(r.resume_early_s)}`,
    `  resume at step ${late}, ${r.run} steps: ${s(r.resume_late_s)}` +
    `  (${r.late_over_early.toFixed(2)}x resume at 10, ${r.late_over_fresh.toFixed(2)}x fresh)`,
    `  for scale, steps 10 to ${late} (what a replay would redo): ${s(r.between_s)}`,
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      steps: { type: "string", default: "500" },
      run: { type: "string", default: "50" },
      rounds: { type: "string", default: "3" },
      json: { type: "boolean", default: false },
    },
  });
  const r = await benchResume({
    steps: Number(values.steps),
    run: Number(values.run),
    rounds: Number(values.rounds),
  });
  console.log(values.json ? JSON.stringify(r) : formatResumeBench(r));
}
