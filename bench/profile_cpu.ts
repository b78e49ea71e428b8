/**
 * Per-phase profile of the CPU train step (development aid): time per step kind
 * (FusedExecutable.profile), and the time outside the steps (copies in and out, wrapping).
 *
 * `deno run -A bench/profile_cpu.ts [--model tiny|vit-s16] [--steps N] [--detail]`
 */
import { CpuBackend } from "../lib/backend/cpu/backend.ts";
import type { CpuExecutable } from "../lib/backend/cpu/array.ts";
import type { FusedExecutable } from "../lib/backend/cpu/executable.ts";
import { WorkerPool } from "../lib/backend/cpu/threads.ts";
import { compileBenchStep, TINY_VIT } from "./train_step.ts";
import { VIT_S16 } from "./webgpu.ts";

const arg = (name: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const name = arg("--model") ?? "tiny";
const steps = Number(arg("--steps") ?? 3);
const vit = name === "tiny" ? TINY_VIT : { ...VIT_S16, layerscale: true };
const batchSize = Number(arg("--batch") ?? (name === "tiny" ? 128 : 8));
const backend = new CpuBackend();
const { compiled, run } = await compileBenchStep(backend, vit, batchSize, {
  donate: !Deno.args.includes("--no-donate"),
});
const exe = (compiled.executable as CpuExecutable).replicas[0] as FusedExecutable;
console.log(backend.description, JSON.stringify(exe.stats), `resident ${exe.resident.size}`);
await run(0);
exe.profile = new Map();
exe.profileDetail = Deno.args.includes("--detail");
const t0 = performance.now();
for (let i = 1; i <= steps; i++) await backend.toHost((await run(i)).metrics.loss);
const wall = (performance.now() - t0) / steps;
const rows = [...exe.profile.entries()].map(([k, v]) => [k, v / steps] as const)
  .sort((a, b) => b[1] - a[1]);
const inSteps = rows.reduce((s, r) => s + r[1], 0);
console.log(
  `load ${Deno.loadavg().map((x) => x.toFixed(2))}; ms per step: wall ${
    wall.toFixed(1)
  }, in steps ${inSteps.toFixed(1)}, outside ${(wall - inSteps).toFixed(1)}`,
);
if (exe.profileDetail) {
  const split = rows.filter(([k]) => k.endsWith("(split)")).reduce((a, r) => a + r[1], 0);
  console.log(
    `steps split across threads: ${split.toFixed(1)} ms, not split: ${
      (inSteps - split).toFixed(1)
    } ms`,
  );
}
for (const [k, v] of rows.slice(0, Number(arg("--top") ?? 25))) {
  console.log(`${v.toFixed(2).padStart(9)} ms ${(100 * v / wall).toFixed(1).padStart(5)}%  ${k}`);
}
const pool = WorkerPool.shared();
if (pool) console.log("pool (all calls):", JSON.stringify(pool.counts));
