/**
 * CPU train-step throughput next to the peers a user would pick, in one invocation:
 *   ours       bench/train_step.ts on the CPU backend (bench/cpu_cell.ts, one process a cell);
 *   timm       timm's VisionTransformer on torch 2.x (scripts/peers/bench_timm_vit.py);
 *   deit3-jax  the original's step on JAX's XLA CPU client (scripts/peers/bench_jax.py train-step);
 * for the tiny ViT at batch 128 and ViT-S/16 (LayerScale) at batch 8, each with 1 thread and
 * with all cores. The peers run from the venv of DEVELOPERS.md (`bash ../shared/tools/peers.sh`
 * prints its python; `--python` or DEIT3_PEERS_PYTHON names another). Debian's torch 1.13
 * (/usr/bin/python3, scripts/peers/bench_torch_vit.py) runs as a labelled extra on the tiny ViT only:
 * it is far slower than torch 2.x and is not a peer for the ratios.
 *
 * The cells of one config and thread count run back to back (ours, timm, jax), with the load
 * average read before each. One-thread cells run under `taskset -c 0` (one core for every side,
 * so that no helper thread borrows the other) with each side's own thread setting as well.
 * Every cell is its own process under /usr/bin/time, which gives its peak RSS.
 *
 * Each side also reports the CPU time of its timed steps (all threads of its process). On a
 * machine shared with other work, wall-clock img/s mostly measures the load; images per CPU
 * second measure what the step costs. For one-thread cells (pinned to one core) that is the
 * fair ratio under load (`ours_over_best_cpu`); with all cores it hides waiting and poor
 * scaling, so there only the wall-clock ratio counts, and only on a quiet machine.
 *
 * `deno run -A bench/cpu.ts [--steps N] [--only tiny,vit-s16] [--threads 1,2] [--python P]
 * [--keep-blas-env] [--grad-ckpt on|both]`
 * prints the JSON; `deno task bench` calls benchCpu() and formatCpuBench().
 */
import { threadCount } from "../lib/backend/cpu/threads.ts";
import { jaxStepConfig } from "./jax_config.ts";

export interface CpuBenchOptions {
  /** Timed steps per cell (tiny; ViT-S/16 takes a third of it, at least 2). */
  steps?: number;
  /** Configs to run: "tiny", "vit-s16". */
  only?: string[];
  /** Thread counts (default 1 and all cores). */
  threads?: number[];
  /** Peer venv python (jax, timm, torch 2.x). */
  python?: string;
  /** Run every cell with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as the environment sets them. */
  keepBlasEnv?: boolean;
  /**
   * Rematerialization per cell: false (default), true, or both (each config and thread count
   * twice): ours `--grad-ckpt`, timm's set_grad_checkpointing, deit3-jax's nn.remat.
   */
  gradCkpt?: boolean[];
}

interface Model {
  name: string;
  label: string;
  batch: number;
  layers: number;
  dim: number;
  heads: number;
  patch: number;
  image: number;
  labels: number;
  layerscale: boolean;
}

export const BENCH_MODELS: Model[] = [
  {
    name: "tiny",
    label: "tiny ViT (28 px, patch 4, dim 64, depth 4, 4 heads), batch 128",
    batch: 128,
    layers: 4,
    dim: 64,
    heads: 4,
    patch: 4,
    image: 28,
    labels: 10,
    layerscale: false,
  },
  {
    name: "vit-s16",
    label: "ViT-S/16 at 224, LayerScale, batch 8",
    batch: 8,
    layers: 12,
    dim: 384,
    heads: 6,
    patch: 16,
    image: 224,
    labels: 1000,
    layerscale: true,
  },
];

type Cell = Record<string, unknown> & {
  img_per_s?: number;
  img_per_cpu_s?: number;
  error?: string;
};

export async function benchCpu(opts: CpuBenchOptions = {}): Promise<Record<string, unknown>> {
  const steps = opts.steps ?? 5;
  const cores = navigator.hardwareConcurrency || 1;
  const threadList = opts.threads ?? [...new Set([1, Math.min(threadCount(), cores)])];
  const models = BENCH_MODELS.filter((m) => !opts.only || opts.only.includes(m.name));
  const python = opts.python ?? (await peersPython());
  const out: Record<string, unknown> = {
    machine: `${cores} cores, ${Deno.osRelease()}`,
    peers_python: python ?? "not found (bash ../shared/tools/peers.sh)",
    load_average_start: Deno.loadavg().map(round),
  };
  const rows: Record<string, unknown>[] = [];
  const keep = (c: Command): Command =>
    opts.keepBlasEnv
      ? { ...c, unset: undefined, env: { ...c.env, DEIT3_BENCH_BLAS_ENV: "as set" } }
      : c;
  for (const m of models) {
    const n = m.name === "tiny" ? steps : Math.max(2, Math.round(steps / 3));
    for (const threads of threadList) {
      for (const ckpt of opts.gradCkpt ?? [false]) {
        const row: Record<string, unknown> = {
          config: ckpt ? `${m.label}, grad-ckpt` : m.label,
          threads,
        };
        row.ours = await cell(keep(ckptArg(ours(m, threads, n), ckpt)), threads);
        row.timm = python
          ? await cell(keep(ckptArg(timm(python, m, threads, n), ckpt)), threads)
          : { error: "no venv" };
        row.jax = python
          ? await cell(keep(ckptArg(await jax(python, m, threads, n), ckpt)), threads)
          : { error: "no venv" };
        const peers = [row.timm, row.jax] as Cell[];
        const best = Math.max(...peers.map((p) => p.img_per_s ?? 0));
        const mine = (row.ours as Cell).img_per_s;
        if (best > 0 && mine) {
          row.best_peer = (row.timm as Cell).img_per_s === best ? "timm" : "deit3-jax";
          row.ours_over_best = round(mine / best);
        }
        const bestCpu = Math.max(...peers.map((p) => p.img_per_cpu_s ?? 0));
        const mineCpu = (row.ours as Cell).img_per_cpu_s;
        if (bestCpu > 0 && mineCpu) {
          row.best_peer_cpu = (row.timm as Cell).img_per_cpu_s === bestCpu ? "timm" : "deit3-jax";
          row.ours_over_best_cpu = round(mineCpu / bestCpu);
        }
        rows.push(row);
      }
    }
  }
  out.cells = rows;
  if (models.some((m) => m.name === "tiny")) out.extra_debian_torch_1_13 = await debianTorch(steps);
  out.load_average_end = Deno.loadavg().map(round);
  return out;
}

/** The table as text (markdown), for `deno task bench`. */
export function formatCpuBench(r: Record<string, unknown>): string {
  const f = (c: Cell | undefined) =>
    c?.img_per_s !== undefined
      ? `${c.img_per_s} (${c.img_per_cpu_s ?? "-"})`
      : `error: ${c?.error ?? "?"}`;
  const mib = (c: Cell | undefined) => c?.peak_rss_mib !== undefined ? `${c.peak_rss_mib}` : "-";
  const lines = [
    `load average ${JSON.stringify(r.load_average_start)} -> ${JSON.stringify(r.load_average_end)}`,
    "img/s (img per CPU second)",
    "| config | threads | ours | timm / torch 2.x | deit3-jax / XLA | ours / best, wall | ours / best, CPU time | peak RSS MiB ours / timm / jax | load |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const row of r.cells as Record<string, unknown>[]) {
    const o = row.ours as Cell, t = row.timm as Cell, j = row.jax as Cell;
    lines.push(
      `| ${row.config} | ${row.threads} | ${f(o)} | ${f(t)} | ${f(j)} | ${
        row.ours_over_best ?? "-"
      } (${row.best_peer ?? "-"}) | ${row.ours_over_best_cpu ?? "-"} (${
        row.best_peer_cpu ?? "-"
      }) | ${mib(o)} / ${mib(t)} / ${mib(j)} | ${o.load_before} |`,
    );
  }
  const first = (r.cells as Record<string, Cell>[])[0]?.ours;
  if (first?.device) {
    lines.push(`ours: ${first.device}${first.blas_env ? `; ${first.blas_env}` : ""}`);
  }
  const extra = r.extra_debian_torch_1_13 as Record<string, unknown> | undefined;
  if (extra) {
    lines.push(`extra (not a peer): Debian torch 1.13, tiny ViT: ${JSON.stringify(extra)}`);
  }
  return lines.join("\n");
}

interface Command {
  cmd: string[];
  env?: Record<string, string>;
  /** Variables removed from this command's environment. */
  unset?: string[];
}

/**
 * Set on some machines because older OpenBLAS builds pick wrong kernels there; they make the
 * library run its AVX2 (Haswell) kernels on AVX-512 cores, at about half the speed. Every cell
 * runs without them (the env notes' advice for benchmarking: in that command alone); ours first
 * checks that the kernels its BLAS then picks compute right (bench/cpu_cell.ts), and runs with
 * the environment as it is when they do not. The peers do not use OpenBLAS for their matmuls.
 */
const BLAS_ENV = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];

function ours(m: Model, threads: number, steps: number): Command {
  const script = new URL("./cpu_cell.ts", import.meta.url).pathname;
  return {
    cmd: [Deno.execPath(), "run", "-A", script, "--model", m.name, "--steps", String(steps)],
    env: {
      DEIT3_CPU_THREADS: String(threads),
      DEIT3_BENCH_BLAS_ENV: BLAS_ENV.map((v) => `${v} unset (was ${Deno.env.get(v) ?? "unset"})`)
        .join(", "),
    },
    unset: BLAS_ENV,
  };
}

function timm(python: string, m: Model, threads: number, steps: number): Command {
  const script = new URL("../scripts/peers/bench_timm_vit.py", import.meta.url).pathname;
  const args = Object.entries({
    layers: m.layers,
    dim: m.dim,
    heads: m.heads,
    patch: m.patch,
    image: m.image,
    labels: m.labels,
    batch: m.batch,
    threads,
    steps,
  }).flatMap(([k, v]) => [`--${k}`, String(v)]);
  return {
    cmd: [python, script, ...args, ...(m.layerscale ? ["--layerscale"] : [])],
    unset: BLAS_ENV,
  };
}

async function jax(python: string, m: Model, threads: number, steps: number): Promise<Command> {
  const config = await Deno.makeTempFile({ prefix: `bench-${m.name}-`, suffix: ".json" });
  await Deno.writeTextFile(
    config,
    JSON.stringify(jaxStepConfig({
      layers: m.layers,
      dim: m.dim,
      heads: m.heads,
      labels: m.labels,
      layerscale: m.layerscale,
      patchSize: m.patch,
      imageSize: m.image,
      posemb: "learnable",
      pooling: "cls",
      dropout: 0,
      droppath: 0,
    })),
  );
  const script = new URL("../scripts/peers/bench_jax.py", import.meta.url).pathname;
  // XLA's CPU client sizes its intra-op pool from the cores it may run on: one under taskset
  // (below); Eigen's own threading off as well. With all cores, XLA's default.
  const flags = threads === 1 ? "--xla_cpu_multi_thread_eigen=false" : "";
  return {
    cmd: [
      python,
      script,
      "train-step",
      config,
      "--batch",
      String(m.batch),
      "--steps",
      String(steps),
    ],
    env: { XLA_FLAGS: flags, JAX_PLATFORMS: "cpu" },
    unset: BLAS_ENV,
  };
}

/** `c` with `--grad-ckpt` appended when `on` (each side's script takes the same flag). */
function ckptArg(c: Command, on: boolean): Command {
  return on ? { ...c, cmd: [...c.cmd, "--grad-ckpt"] } : c;
}

/** Runs one cell in its own process (one core when threads is 1): its JSON and peak RSS. */
async function cell(c: Command, threads: number): Promise<Cell> {
  const r = await cellOnce(c, threads);
  if (r.exit_code !== 3 || !c.unset) return r;
  // ours refused: its BLAS computes wrong results without the variables, so keep them
  const again = await cellOnce({
    ...c,
    unset: undefined,
    env: { ...c.env, DEIT3_BENCH_BLAS_ENV: "as set" },
  }, threads);
  return { ...again, blas_note: r.error };
}

async function cellOnce(c: Command, threads: number): Promise<Cell> {
  const load = round(Deno.loadavg()[0]);
  const pin = threads === 1 && (await exists("/usr/bin/taskset"))
    ? ["/usr/bin/taskset", "-c", "0"]
    : [];
  const timer = (await exists("/usr/bin/time")) ? ["/usr/bin/time", "-f", "PEAK_RSS_KIB %M"] : [];
  const argv = [...timer, ...pin, ...c.cmd];
  try {
    const env = { ...Deno.env.toObject(), ...c.env };
    for (const v of c.unset ?? []) delete env[v];
    const r = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(r.stdout).trim();
    const stderr = new TextDecoder().decode(r.stderr).trim();
    if (!r.success) {
      return {
        error: `${c.cmd.slice(0, 3).join(" ")} ... failed: ${tail(stderr)}`,
        exit_code: r.code,
        load_before: load,
      };
    }
    const result = JSON.parse(stdout.split("\n").pop()!) as Cell;
    const kib = /PEAK_RSS_KIB (\d+)/.exec(stderr)?.[1];
    const imgPerS = result.img_per_s as number, stepMs = result.step_ms as number;
    const cpuMs = result.cpu_ms_per_step as number | undefined;
    return {
      img_per_s: round(imgPerS),
      step_ms: round(stepMs),
      ...(cpuMs
        ? { cpu_ms_per_step: round(cpuMs), img_per_cpu_s: round((imgPerS * stepMs) / cpuMs) }
        : {}),
      ...(result.compile_s !== undefined ? { compile_s: result.compile_s } : {}),
      ...(kib ? { peak_rss_mib: Math.round(Number(kib) / 1024) } : {}),
      load_before: load,
      ...pick(result, ["device", "blas_env", "gemm", "torch", "timm", "jax"]),
    };
  } catch (e) {
    return {
      error: `cannot run ${c.cmd[0]}: ${e instanceof Error ? e.message : e}`,
      load_before: load,
    };
  }
}

async function debianTorch(steps: number): Promise<Record<string, unknown>> {
  const script = new URL("../scripts/peers/bench_torch_vit.py", import.meta.url).pathname;
  try {
    const r = await new Deno.Command("/usr/bin/python3", {
      args: [script, "--steps", String(steps)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) return { error: tail(new TextDecoder().decode(r.stderr)) };
    return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").pop()!);
  } catch (e) {
    return { error: `no /usr/bin/python3 with torch (${e instanceof Error ? e.message : e})` };
  }
}

/** The peer venv's python: DEIT3_PEERS_PYTHON, else what ../shared/tools/peers.sh prints. */
async function peersPython(): Promise<string | undefined> {
  const env = Deno.env.get("DEIT3_PEERS_PYTHON");
  if (env) return env;
  const script = new URL("../../shared/tools/peers.sh", import.meta.url).pathname;
  const cached = `${Deno.env.get("HOME")}/.cache/deit3-peers/bin/python`;
  if (await exists(script)) {
    try {
      const r = await new Deno.Command("bash", { args: [script], stdout: "piped", stderr: "null" })
        .output();
      const p = new TextDecoder().decode(r.stdout).trim().split("\n").pop();
      if (r.success && p) return p;
    } catch {
      // fall through to the default venv
    }
  }
  return (await exists(cached)) ? cached : undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
}

function tail(text: string): string {
  return text.trim().split("\n").slice(-3).join(" | ");
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

if (import.meta.main) {
  const arg = (name: string) => {
    const i = Deno.args.indexOf(name);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  const r = await benchCpu({
    steps: arg("--steps") ? Number(arg("--steps")) : undefined,
    only: arg("--only")?.split(","),
    threads: arg("--threads")?.split(",").map(Number),
    python: arg("--python"),
    keepBlasEnv: Deno.args.includes("--keep-blas-env"),
    gradCkpt: { on: [true], both: [false, true] }[arg("--grad-ckpt") ?? ""] ?? [false],
  });
  console.log(JSON.stringify(r, null, 2));
  console.log(formatCpuBench(r));
}
