/**
 * deit3-deno: train Vision Transformers with the DeiT / DeiT-III recipes.
 *
 * The public API: the traced tensor core (ops, tracing, autodiff, random numbers), backends,
 * the ViT model, optimizers and schedules, the training step and loop, checkpoints, configs,
 * augmentation and data loading.
 *
 * It imports from anywhere (`import * as deit3 from "file:///path/to/deit3-deno/mod.ts"` in a
 * script outside the repo): the library names its npm packages in full (`npm:sharp@0.35.5`),
 * so it needs neither this repo's deno.json nor an import map; their versions match deno.json's
 * "imports" (tests/mod_test.ts checks both).
 */
export * as ops from "./lib/ir/ops.ts";
export * as nn from "./lib/ir/nn.ts";
export * as random from "./lib/ir/random.ts";
export { Tensor } from "./lib/ir/tensor.ts";
export { type Graph, type ShapeSpec, trace } from "./lib/ir/graph.ts";
export { type DType } from "./lib/ir/dtype.ts";
export { type HostTensor, hostTensor } from "./lib/ir/host_tensor.ts";
export { Primitive } from "./lib/ir/primitive.ts";
export { flatten, leavesWithPaths, treeMap, unflatten } from "./lib/ir/pytree.ts";
export { Rng } from "./lib/ir/rng.ts";
export { threefry2x32 } from "./lib/ir/threefry.ts";

export { grad, valueAndGrad, vjp } from "./lib/autodiff/grad.ts";
export { checkpoint } from "./lib/autodiff/checkpoint.ts";

export type { Backend, DeviceArray, Executable } from "./lib/backend/backend.ts";
export { CpuBackend } from "./lib/backend/cpu/backend.ts";
export { type BackendName, createBackend } from "./lib/backend/select.ts";
export { Compiled, evaluate } from "./lib/backend/jit.ts";

export { initViT } from "./lib/model/init.ts";
export { checkViTConfig, sincos2d, type ViTConfig, vitForward } from "./lib/model/vit.ts";

export {
  applyUpdate,
  initOptState,
  layerIndex,
  type OptimizerConfig,
  stepScalars,
} from "./lib/optim/optimizer.ts";
export { constantSchedule, type WarmupCosine, warmupCosine } from "./lib/optim/schedule.ts";

export {
  applyGradients,
  buildEvalStep,
  buildGradStep,
  buildTrainStep,
  lossAndMetrics,
  type MixInputs,
  noMix,
  type TrainStepConfig,
} from "./lib/train/step.ts";
export { train, TrainingError } from "./lib/train/loop.ts";
export { runDoctor } from "./lib/train/doctor.ts";

export * as checkpoints from "./lib/checkpoint/mod.ts";
export * as config from "./lib/config/mod.ts";
export * as augment from "./lib/augment/mod.ts";
export * as data from "./lib/data/mod.ts";
export type { RGBImage } from "./lib/augment/image.ts";
