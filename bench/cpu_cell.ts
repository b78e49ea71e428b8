/**
 * One cell of bench/cpu.ts: our train step on the CPU backend for one model, in its own process
 * (threads from DEIT3_CPU_THREADS, set by the caller). Prints one JSON line.
 *
 * `deno run -A bench/cpu_cell.ts --model tiny|vit-s16 [--steps N]`
 */
import { CpuBackend } from "../lib/backend/cpu/backend.ts";
import { checkNativeBlas, loadNativeBlas } from "../lib/backend/cpu/gemm_native.ts";
import { benchTrainStep, TINY_VIT } from "./train_step.ts";
import { VIT_S16 } from "./webgpu.ts";
import { BENCH_MODELS } from "./cpu.ts";

const arg = (name: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const name = arg("--model") ?? "tiny";
const model = BENCH_MODELS.find((m) => m.name === name);
if (!model) {
  console.error(`cpu_cell: unknown --model "${name}" (${BENCH_MODELS.map((m) => m.name)})`);
  Deno.exit(2);
}
const vit = {
  ...(name === "tiny" ? TINY_VIT : { ...VIT_S16, layerscale: model.layerscale }),
  gradCkpt: Deno.args.includes("--grad-ckpt"),
};
// the kernels this process's BLAS picked must compute right before they are timed
const asSet = Deno.env.get("DEIT3_BENCH_BLAS_ENV") === "as set";
const wrong = loadNativeBlas() && !asSet ? checkNativeBlas() : null;
if (wrong) {
  console.error(`cpu_cell: the native BLAS computes wrong results here: ${wrong}`);
  Deno.exit(3);
}
const backend = new CpuBackend();
const r = await benchTrainStep(backend, vit, model.batch, Number(arg("--steps") ?? 5));
console.log(JSON.stringify({
  img_per_s: r.imgPerS,
  step_ms: r.stepMs,
  cpu_ms_per_step: r.cpuStepMs,
  compile_s: Math.round(r.compileS * 10) / 10,
  device: backend.description,
  ...(Deno.env.get("DEIT3_BENCH_BLAS_ENV")
    ? { blas_env: Deno.env.get("DEIT3_BENCH_BLAS_ENV") }
    : {}),
}));
