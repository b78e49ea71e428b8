/**
 * WebGPU benchmarks, with their peers run in the same invocation on the same machine:
 *   matmul   f32 TFLOP/s of `x @ y` at 1024^3 and 4096^3 (peer: torch.mm on the CPU);
 *   tiny     train-step img/s of the tiny MNIST ViT (28x28, patch 4, dim 64, depth 4, batch
 *            128, AdamW) on the trainer's path: `compileTrainPrograms`, params and optimizer
 *            state donated, the u8 batch uploaded and the metrics read back each step as the
 *            training loop does (peer: scripts/peers/bench_torch_vit.py, Debian's python3-torch, 1
 *            thread and all threads);
 *   vit_s    train-step img/s of ViT-S/16 at 224 (batch 32 by default);
 *   plan     bytes of the ViT-S/16 and ViT-B/16 steps at batch 256 planned for an 80 GB GPU
 *            (no device needed), with and without --grad-ckpt.
 *
 * `deno run -A bench/webgpu.ts [--only matmul,tiny,vit_s,plan] [--steps N] [--vit-s-steps N]`
 * prints the JSON; `deno task bench --backend webgpu` calls benchWebGpu().
 */
import process from "node:process";
import { Compiled } from "../lib/backend/jit.ts";
import { WebGpuBackend } from "../lib/backend/webgpu/backend.ts";
import { type AdapterProfile, adapterProfile } from "../lib/backend/webgpu/device.ts";
import { type CompiledPlan, compilePlan } from "../lib/backend/webgpu/memory.ts";
import { trace } from "../lib/ir/graph.ts";
import { stepSignature } from "../lib/train/signature.ts";
import type { DeviceArray } from "../lib/backend/backend.ts";
import { hostTensor } from "../lib/ir/host_tensor.ts";
import * as ops from "../lib/ir/ops.ts";
import { flatten } from "../lib/ir/pytree.ts";
import type { Tensor } from "../lib/ir/tensor.ts";
import { initViT } from "../lib/model/init.ts";
import type { ViTConfig } from "../lib/model/vit.ts";
import { initOptState, stepScalars } from "../lib/optim/optimizer.ts";
import { DeviceTrees } from "../lib/train/device_trees.ts";
import { compileTrainPrograms, microInputs } from "../lib/train/programs.ts";
import { buildTrainStep } from "../lib/train/step.ts";
import { benchStepConfig, syntheticBatch, TINY_VIT } from "./train_step.ts";

export interface WebGpuBenchOptions {
  only?: string[];
  /** Timed steps of the tiny ViT (after one warm-up step). */
  steps?: number;
  /** Timed steps of ViT-S/16 (each takes tens of seconds on llvmpipe). */
  vitSSteps?: number;
  vitSBatch?: number;
  python?: string;
}

export const VIT_S16: ViTConfig = {
  layers: 12,
  dim: 384,
  heads: 6,
  labels: 1000,
  layerscale: false,
  patchSize: 16,
  imageSize: 224,
  posemb: "learnable",
  pooling: "cls",
  dropout: 0,
  droppath: 0,
  gradCkpt: false,
};

export const VIT_B16: ViTConfig = { ...VIT_S16, dim: 768, heads: 12 };

/**
 * An 80 GB GPU as Deno's WebGPU (wgpu on Vulkan) would present an H100: GPU tuning (tiled
 * matmul), 2 GiB bindings, 16 storage buffers per stage (the planner splits kernels beyond). The
 * memory is what the card's name states; no device is needed to plan for it.
 */
export const GPU_80GB: AdapterProfile = adapterProfile(
  {
    maxStorageBuffersPerShaderStage: 16,
    maxStorageBufferBindingSize: 2 ** 31 - 256,
    maxBufferSize: 2 ** 40,
    maxComputeWorkgroupStorageSize: 49152,
    maxComputeWorkgroupsPerDimension: 65535,
    minStorageBufferOffsetAlignment: 256,
  },
  false,
  { memoryBytes: 80e9 },
);

/**
 * The trainer's step (AdamW, no mixing) for `vit` at `batch`, traced and planned for `adapter`
 * without a device: its kernels, buffers and bytes.
 */
export function planTrainStep(
  vit: ViTConfig,
  batch: number,
  adapter: AdapterProfile,
): CompiledPlan {
  const cfg = benchStepConfig(vit);
  const sig = stepSignature(cfg, { perReplicaBatch: batch, mixing: false });
  const step = buildTrainStep(cfg);
  const traced = trace(
    (p: unknown, o: never, b: never, m: null, s: never, k: Tensor) => step(p, o, b, m, s, k),
    ...sig.args,
  );
  return compilePlan(traced.graph, adapter); // as the backend compiles it
}

/** ViT-S/16 and ViT-B/16 train steps at batch 256 planned for `GPU_80GB`: bytes in GiB. */
export function planMemoryTable(): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const [name, vit] of [["ViT-S/16", VIT_S16], ["ViT-B/16", VIT_B16]] as const) {
    for (const gradCkpt of [false, true]) {
      const { memory: m, kernels } = planTrainStep({ ...vit, gradCkpt }, 256, GPU_80GB);
      const g = (b: number) => Math.round((b / 2 ** 30) * 10) / 10;
      rows.push({
        model: name,
        batch: 256,
        grad_ckpt: gradCkpt,
        kernels: kernels.length,
        intermediates_allocated_gib: g(m.allocated),
        intermediates_peak_live_gib: g(m.peakLive),
        total_gib: g(m.total),
      });
    }
  }
  return rows;
}

export async function benchWebGpu(opts: WebGpuBenchOptions = {}): Promise<Record<string, unknown>> {
  const only = new Set(opts.only ?? ["matmul", "tiny", "vit_s"]);
  const python = opts.python ?? "/usr/bin/python3";
  // Planned without a device: only this cell asked for, no adapter is opened.
  const plan = only.has("plan") ? planMemoryTable() : undefined;
  if (only.size === 1 && plan) return { plan };
  const backend = await WebGpuBackend.create();
  const out: Record<string, unknown> = {
    device: backend.description,
    load_average_before: round(Deno.loadavg()[0]),
    ...(plan ? { plan } : {}),
  };
  try {
    if (only.has("matmul")) {
      const rows: Record<string, unknown>[] = [];
      for (const n of [1024, 4096]) {
        const ours = await benchMatmul(backend, n, n >= 4096 ? 2 : 5);
        const peer = await torchMatmul(python, n);
        rows.push({
          size: `${n}^3`,
          webgpu_tflops: round4(ours.tflops),
          webgpu_ms: round(ours.ms),
          torch_cpu_tflops: "error" in peer ? peer.error : round4(peer.tflops as number),
        });
      }
      out.matmul = rows;
    }
    if (only.has("tiny")) {
      const steps = opts.steps ?? 5;
      const peer = await torchTinyVit(python, steps);
      const ours = await benchTrainSteps(backend, TINY_VIT, 128, steps);
      const tiny: Record<string, unknown> = { webgpu: ours, torch: peer };
      if (!("error" in peer)) {
        const t1 = (peer.threads_1 as { img_per_s: number }).img_per_s;
        const allKey = Object.keys(peer).find((k) => k.startsWith("threads_") && k !== "threads_1");
        tiny.ratio_vs_torch_1_thread = round(ours.img_per_s / t1);
        if (allKey) {
          tiny[`ratio_vs_torch_${allKey}`] = round(
            ours.img_per_s / (peer[allKey] as { img_per_s: number }).img_per_s,
          );
        }
      }
      out.tiny_vit = tiny;
    }
    if (only.has("vit_s")) {
      out.vit_s16 = await benchTrainSteps(
        backend,
        VIT_S16,
        opts.vitSBatch ?? 32,
        opts.vitSSteps ?? 1,
      );
    }
  } finally {
    backend.dispose();
  }
  out.load_average_after = round(Deno.loadavg()[0]);
  return out;
}

export function formatWebGpuBench(r: Record<string, unknown>): string {
  const lines = r.device ? [`device: ${r.device}`] : [];
  for (const p of (r.plan as Record<string, unknown>[] | undefined) ?? []) {
    lines.push(
      `plan ${p.model} batch ${p.batch}${p.grad_ckpt ? " grad-ckpt" : ""}: intermediates ` +
        `${p.intermediates_allocated_gib} GiB allocated / ${p.intermediates_peak_live_gib} GiB ` +
        `peak live, ${p.total_gib} GiB in all (${p.kernels} kernels)`,
    );
  }
  for (const m of (r.matmul as Record<string, unknown>[] | undefined) ?? []) {
    lines.push(
      `matmul ${m.size}: ${m.webgpu_tflops} TFLOP/s (${m.webgpu_ms} ms); torch CPU ${m.torch_cpu_tflops} TFLOP/s`,
    );
  }
  const tiny = r.tiny_vit as Record<string, any> | undefined;
  if (tiny) {
    lines.push(
      `tiny ViT batch 128: ${tiny.webgpu.img_per_s} img/s (${tiny.webgpu.cpu_ms_per_step} ms CPU ` +
        `per step, compile ${tiny.webgpu.compile_s} s, first step ${tiny.webgpu.first_step_s} s)`,
    );
    if (tiny.torch?.error) lines.push(`  torch: ${tiny.torch.error}`);
    else {
      for (const [k, v] of Object.entries(tiny.torch)) {
        if (k.startsWith("threads_")) {
          lines.push(`  torch ${k}: ${round((v as any).img_per_s)} img/s`);
        }
      }
      for (const [k, v] of Object.entries(tiny)) {
        if (k.startsWith("ratio")) lines.push(`  ${k}: ${v}`);
      }
    }
  }
  const vs = r.vit_s16 as Record<string, any> | undefined;
  if (vs) {
    lines.push(
      `ViT-S/16 224 batch ${vs.batch}: ${vs.img_per_s} img/s (${vs.step_ms} ms/step, ` +
        `image upload ${vs.image_upload_ms} ms)`,
    );
  }
  if (r.device) {
    lines.push(`load average ${r.load_average_before} -> ${r.load_average_after} (2-core machine)`);
  }
  return lines.join("\n");
}

async function benchMatmul(
  backend: WebGpuBackend,
  n: number,
  reps: number,
): Promise<{ tflops: number; ms: number }> {
  const spec = hostTensor(
    [n, n],
    "f32",
    new Float32Array(n * n).map((_, i) => (i % 17) / 17 - 0.5),
  );
  const c = await Compiled.create(backend, (x: Tensor, y: Tensor) => ops.matmul(x, y), spec, spec);
  const x = await backend.fromHost(spec), y = await backend.fromHost(spec);
  const run = async () => {
    const o = await c.executable.execute([x, y]);
    await backend.toHost(o[0]);
    backend.free(o[0]);
  };
  await run(); // compile the pipeline
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    best = Math.min(best, performance.now() - t0);
  }
  c.dispose();
  backend.free(x);
  backend.free(y);
  return { tflops: (2 * n ** 3) / (best / 1000) / 1e12, ms: best };
}

/**
 * Train steps on the trainer's path (`lib/train/programs.ts`, as `Trainer.trainStep` calls it):
 * the step program with params and optimizer state donated, each step's u8 batch built by
 * `microInputs` and uploaded, and each step's metrics read back after the next step is queued,
 * as the loop reads them. Also times the image batch's upload alone (bytes widened on the
 * device).
 */
async function benchTrainSteps(
  backend: WebGpuBackend,
  vit: ViTConfig,
  batchSize: number,
  steps: number,
): Promise<Record<string, number>> {
  const cfg = benchStepConfig(vit);
  const batch = syntheticBatch(vit, batchSize);
  const t0 = performance.now();
  const hostParams = initViT(vit, 0);
  const hostOpt = initOptState(hostParams);
  const shape = { microBatch: batchSize, accum: 1, imageSize: vit.imageSize, mixing: false };
  const programs = await compileTrainPrograms(backend, cfg, shape, hostParams, hostOpt);
  const compileS = (performance.now() - t0) / 1000;
  const trees = new DeviceTrees(backend);
  let params = await trees.upload(hostParams);
  let opt = await trees.upload(hostOpt);
  const host = {
    images: batch.images.data as Uint8Array,
    labels: batch.labels.data as Int32Array,
    count: batchSize,
  };
  const seeds = { dropout: 0, mixup: 0 }, mix = { mixup: 0, cutmix: 0 };
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  let pending: Promise<Record<string, number>> | undefined;
  const settle = async (i: number) => {
    if (!pending) return;
    const loss = (await pending).loss;
    pending = undefined;
    if (!Number.isFinite(loss)) throw new Error(`bench: loss is ${loss} at step ${i}`);
  };
  const one = async (i: number) => {
    const out = await programs.run(
      params,
      opt,
      () => Promise.resolve(microInputs(shape, seeds, mix, host, i, 0)),
      stepScalars(cfg.optimizer, i, 1e-3),
    );
    params = out.params;
    opt = out.opt;
    await settle(i - 1); // the previous step's metrics, this one queued
    pending = out.metrics;
  };
  const t1 = performance.now();
  await one(0); // first step: shader compilation in the driver
  await settle(0);
  const firstS = (performance.now() - t1) / 1000;
  const t2 = performance.now(), c2 = cpu();
  for (let i = 1; i <= steps; i++) await one(i);
  await settle(steps);
  const s = (performance.now() - t2) / 1000, cpuS = cpu() - c2;
  // The image batch alone: sent as bytes, widened on the device; timed to the data's arrival.
  let uploadMs = Infinity;
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    const images = await backend.fromHost(batch.images);
    await backend.ctx.device.queue.onSubmittedWorkDone();
    uploadMs = Math.min(uploadMs, performance.now() - t);
    backend.free(images);
  }
  programs.dispose();
  for (const l of flatten<DeviceArray>([params, opt]).leaves) backend.free(l);
  return {
    batch: batchSize,
    steps,
    img_per_s: round((steps * batchSize) / s),
    step_ms: round((s / steps) * 1000),
    // Process CPU time (the adapter's worker threads included) per step: load-independent.
    cpu_ms_per_step: round((cpuS / steps) * 1000),
    compile_s: round(compileS),
    first_step_s: round(firstS),
    image_upload_ms: round(uploadMs),
  };
}

async function torchTinyVit(python: string, steps: number): Promise<Record<string, unknown>> {
  const script = new URL("../scripts/peers/bench_torch_vit.py", import.meta.url).pathname;
  return await runPython(python, [script, "--steps", String(steps)]);
}

async function torchMatmul(python: string, n: number): Promise<Record<string, unknown>> {
  const code = [
    "import json, time, torch",
    `n = ${n}`,
    "a = torch.rand(n, n); b = torch.rand(n, n); a @ b",
    "best = 1e9",
    `for _ in range(${n >= 4096 ? 2 : 5}):`,
    "    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)",
    "print(json.dumps({'tflops': 2 * n ** 3 / best / 1e12, 'threads': torch.get_num_threads()}))",
  ].join("\n");
  return await runPython(python, ["-c", code]);
}

async function runPython(python: string, args: string[]): Promise<Record<string, unknown>> {
  try {
    const r = await new Deno.Command(python, { args, stdout: "piped", stderr: "piped" }).output();
    if (!r.success) {
      const err = new TextDecoder().decode(r.stderr).trim().split("\n").slice(-2).join(" | ");
      return { error: `${python} failed (exit ${r.code}): ${err}` };
    }
    return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").pop()!);
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

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

if (import.meta.main) {
  const arg = (name: string) => {
    const i = Deno.args.indexOf(name);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  const r = await benchWebGpu({
    only: arg("--only")?.split(","),
    steps: arg("--steps") ? Number(arg("--steps")) : undefined,
    vitSSteps: arg("--vit-s-steps") ? Number(arg("--vit-s-steps")) : undefined,
    vitSBatch: arg("--vit-s-batch") ? Number(arg("--vit-s-batch")) : undefined,
  });
  console.log(Deno.args.includes("--json") ? JSON.stringify(r) : formatWebGpuBench(r));
}
