/**
 * Train-step throughput (img/s) of the tiny MNIST ViT (28x28, patch 4, dim 64, depth 4,
 * heads 4, batch 128, AdamW) on a backend. Used by `deno task bench`.
 */
import process from "node:process";
import type { Backend, DeviceArray } from "../lib/backend/backend.ts";
import { Compiled } from "../lib/backend/jit.ts";
import { type HostTensor, hostTensor } from "../lib/ir/host_tensor.ts";
import { flatten, unflatten } from "../lib/ir/pytree.ts";
import type { Tensor } from "../lib/ir/tensor.ts";
import { initViT } from "../lib/model/init.ts";
import type { ViTConfig } from "../lib/model/vit.ts";
import { defaultAdamW, initOptState, stepScalars } from "../lib/optim/optimizer.ts";
import { buildTrainStep, type TrainStepConfig } from "../lib/train/step.ts";

export const TINY_VIT: ViTConfig = {
  layers: 4,
  dim: 64,
  heads: 4,
  labels: 10,
  layerscale: false,
  patchSize: 4,
  imageSize: 28,
  posemb: "learnable",
  pooling: "cls",
  dropout: 0,
  droppath: 0,
  gradCkpt: false,
};

export async function benchTrainStep(
  backend: Backend,
  vit: ViTConfig = TINY_VIT,
  batchSize = 128,
  steps = 5,
): Promise<{ imgPerS: number; compileS: number; stepMs: number; cpuStepMs: number }> {
  const t0 = performance.now();
  const { run, dispose } = await compileBenchStep(backend, vit, batchSize);
  await backend.toHost((await run(0)).metrics.loss);
  const compileS = (performance.now() - t0) / 1000;
  const t1 = performance.now(), cpu0 = process.cpuUsage();
  let last: unknown;
  for (let i = 1; i <= steps; i++) last = (await run(i)).metrics.loss;
  await backend.toHost(last as never);
  const s = (performance.now() - t1) / 1000;
  const cpu = process.cpuUsage(cpu0); // all threads of the process, in microseconds
  dispose();
  return {
    imgPerS: (steps * batchSize) / s,
    compileS,
    stepMs: (s / steps) * 1000,
    cpuStepMs: (cpu.user + cpu.system) / 1000 / steps,
  };
}

/**
 * The benchmarked step compiled on `backend` over a synthetic batch, with `run(i)` calling step
 * i and keeping its params and optimizer state for the next call, and `dispose()` freeing both
 * and the executable. Params and optimizer state are donated, as the trainer does
 * (lib/train/programs.ts), unless `donate` is false.
 */
export async function compileBenchStep(
  backend: Backend,
  vit: ViTConfig,
  batchSize: number,
  { donate = true } = {},
) {
  const cfg = benchStepConfig(vit);
  const batch = syntheticBatch(vit, batchSize);
  const key = hostTensor([2], "u32", [0, 1]);
  const step = buildTrainStep(cfg);
  let params: unknown = initViT(vit, 0);
  let opt: unknown = initOptState(params);
  const scalars = (i: number) => stepScalars(cfg.optimizer, i, 1e-3);
  const compiled = await Compiled.createWith(
    backend,
    donate ? { donate: donateState(params, opt, batch, scalars(0), key) } : {},
    (p: unknown, o: never, b: never, s: never, k: Tensor) => step(p, o, b, null, s, k),
    params,
    opt,
    batch,
    scalars(0),
    key,
  );
  // The state moves to the device leaf by leaf, each host leaf dropped once uploaded, so the
  // first call does not hold a host copy and an upload copy beside the step's own buffers; the
  // CPU backend takes the freshly initialized leaves over without a copy (CpuBackend.adopt).
  const state = flatten<unknown>({ params, opt });
  params = opt = undefined;
  const adopt = "adopt" in backend
    ? (backend.adopt as (t: HostTensor) => DeviceArray).bind(backend)
    : null;
  for (let i = 0; i < state.leaves.length; i++) {
    const leaf = state.leaves[i] as HostTensor;
    state.leaves[i] = adopt ? adopt(leaf) : await backend.fromHost(leaf);
  }
  ({ params, opt } = unflatten(state.def, state.leaves) as { params: unknown; opt: unknown });
  const run = async (i: number) => {
    const out = await compiled.call([params, opt, batch, scalars(i), key]);
    params = out.params;
    opt = out.opt;
    return out;
  };
  // The state is freed first: an executable disposed of copies the arrays still viewing its
  // memory out of it (the CPU backend's resident state: 250 MB for ViT-S/16).
  const dispose = () => {
    for (const leaf of flatten<DeviceArray>({ params, opt }).leaves) backend.free(leaf);
    compiled.dispose();
  };
  return { compiled, run, dispose };
}

if (import.meta.main) {
  const { CpuBackend } = await import("../lib/backend/cpu/backend.ts");
  console.log(await benchTrainStep(new CpuBackend()));
}

/** Donation flags per flattened argument: the leaves of the first two (params, opt). */
export function donateState(params: unknown, opt: unknown, ...rest: unknown[]): boolean[] {
  const n = (x: unknown) => flatten(x).leaves.length;
  return [
    ...Array(n(params) + n(opt)).fill(true),
    ...rest.flatMap((r) => Array(n(r)).fill(false)),
  ];
}

/** The step settings every train-step benchmark uses: CE with smoothing 0.1, AdamW. */
export function benchStepConfig(vit: ViTConfig): TrainStepConfig {
  return {
    vit,
    criterion: "ce",
    labelSmoothing: 0.1,
    optimizer: defaultAdamW(vit.layers),
  };
}

/** A fixed pseudo-random uint8 batch with cycling labels. */
export function syntheticBatch(vit: ViTConfig, batchSize: number) {
  const n = batchSize * 3 * vit.imageSize * vit.imageSize;
  return {
    images: hostTensor(
      [batchSize, 3, vit.imageSize, vit.imageSize],
      "u8",
      Uint8Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 24),
    ),
    labels: hostTensor(
      [batchSize],
      "i32",
      Array.from({ length: batchSize }, (_, i) => i % (vit.labels ?? 10)),
    ),
  };
}
