/**
 * CPU train-step throughput next to the peer: bench/train_step.ts (tiny ViT, batch 128,
 * AdamW) on the CPU backend, and the same step in PyTorch (scripts/bench_torch_vit.py, run
 * with Debian's python3-torch), each with 1 thread and with all threads, in one script.
 * Ratios: like for like (1 thread / 1 thread, all / all), and ours with all threads against
 * torch with 1 thread (the peer figure).
 *
 * `deno run -A bench/cpu.ts [--steps N]` prints the JSON; `deno task bench` calls benchCpu().
 */
import { CpuBackend } from "../lib/backend/cpu/backend.ts";
import { threadCount } from "../lib/backend/cpu/threads.ts";
import { benchTrainStep } from "./train_step.ts";

export interface CpuBenchOptions {
  /** Timed steps for each side (after one warm-up step). */
  steps?: number;
  /** Python interpreter with torch (Debian's python3-torch lives in /usr/bin/python3). */
  python?: string;
}

export async function benchCpu(opts: CpuBenchOptions = {}): Promise<Record<string, unknown>> {
  const steps = opts.steps ?? 5;
  const loadBefore = Deno.loadavg()[0];
  const torch = await runTorch(opts.python ?? "/usr/bin/python3", steps);
  const all = new CpuBackend();
  const one = await benchTrainStep(new CpuBackend({ threads: false }), undefined, 128, steps);
  const many = await benchTrainStep(all, undefined, 128, steps);
  const threads = threadCount();
  const figure = (r: typeof one, n: number) => ({
    img_per_s: round(r.imgPerS),
    step_ms: round(r.stepMs),
    compile_s: round(r.compileS),
    threads: n,
  });
  const out: Record<string, unknown> = {
    config: "tiny ViT 28x28, patch 4, dim 64, depth 4, heads 4, batch 128, AdamW",
    device: all.description,
    cpu_1_thread: figure(one, 1),
    [`cpu_${threads}_threads`]: figure(many, threads),
    load_average: [round(loadBefore), round(Deno.loadavg()[0])],
  };
  if ("error" in torch) {
    out.torch = torch;
    return out;
  }
  out.torch = torch;
  const t1 = (torch.threads_1 as { img_per_s: number }).img_per_s;
  const tAll = (torch[`threads_${torch.cores}`] as { img_per_s: number } | undefined)?.img_per_s;
  out.ratio_1_thread_vs_torch_1_thread = round(one.imgPerS / t1);
  if (tAll) out.ratio_all_threads_vs_torch_all_threads = round(many.imgPerS / tAll);
  out.ratio_all_threads_vs_torch_1_thread = round(many.imgPerS / t1);
  return out;
}

async function runTorch(python: string, steps: number): Promise<Record<string, unknown>> {
  const script = new URL("../scripts/bench_torch_vit.py", import.meta.url).pathname;
  try {
    const r = await new Deno.Command(python, {
      args: [script, "--steps", String(steps)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(r.stdout).trim();
    if (!r.success) {
      const err = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-3).join(" | ");
      return { error: `${script} failed (exit ${r.code}): ${err}` };
    }
    return JSON.parse(text.split("\n").pop()!);
  } catch (e) {
    return {
      error: `cannot run ${python} (${e instanceof Error ? e.message : e}); ` +
        "install the peer with `apt-get install -y python3-torch`",
    };
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--steps");
  const steps = i >= 0 ? Number(Deno.args[i + 1]) : undefined;
  console.log(JSON.stringify(await benchCpu({ steps }), null, 2));
}
