/**
 * Evaluation over a validation stream: every sample exactly once, padded rows masked out.
 * Shared by the training loop and `deno task eval`. Data parallel: each host's batch is split
 * over its devices, and the step sums the metrics over every replica of every host (the loader
 * gives every host the same number of batches), so each sample counts once.
 */
import type { Backend, DeviceArray } from "../backend/backend.ts";
import { Compiled } from "../backend/jit.ts";
import type { Config } from "../config/mod.ts";
import { createValidLoader } from "../data/loader.ts";
import { hostTensor } from "../ir/host_tensor.ts";
import { splitAxis0 } from "../backend/replicas.ts";
import { DeviceTrees } from "./device_trees.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import { buildEvalStep, type TrainStepConfig } from "./step.ts";

export interface EvalResult {
  loss: number;
  acc1: number;
  acc5: number;
  samples: number;
  seconds: number;
}

export class Evaluator {
  private constructor(
    readonly backend: Backend,
    readonly compiled: Compiled,
    readonly batchSize: number,
    readonly imageSize: number,
  ) {}

  /** `batchSize`: this host's batch (valid-batch-size / processes), split over its devices. */
  static async create(backend: Backend, cfg: TrainStepConfig, params: unknown, batchSize: number) {
    const s = cfg.vit.imageSize, devices = backend.devices;
    if (batchSize % devices !== 0) {
      throw new Error(
        `valid-batch-size: ${batchSize} images per host do not split over ${devices} devices`,
      );
    }
    const b = batchSize / devices;
    const compiled = await Compiled.create(backend, buildEvalStep(cfg), params, {
      images: { shape: [b, 3, s, s], dtype: "u8" as const },
      labels: { shape: [b], dtype: "i32" as const },
    });
    return new Evaluator(backend, compiled, batchSize, s);
  }

  /**
   * Runs the validation shards of `config` through the model with `params` (device arrays).
   * `process`: this host's index and the host count (each reads its share of the samples).
   */
  async run(
    config: Config,
    params: unknown,
    log: (line: string) => void,
    process = { index: 0, count: 1 },
  ): Promise<EvalResult> {
    const t = performance.now();
    const loader = createValidLoader({
      shards: config["valid-dataset-shards"] as string,
      batchSize: this.batchSize,
      workers: config["valid-loader-workers"] as number,
      processIndex: process.index,
      processCount: process.count,
      transform: {
        kind: "valid",
        options: { imageSize: this.imageSize, testCropRatio: config["test-crop-ratio"] as number },
      },
      log,
    });
    const sums = { loss: 0, acc1: 0, acc5: 0, count: 0 };
    const trees = new DeviceTrees(this.backend);
    const devices = this.backend.devices;
    try {
      for await (const batch of loader) {
        const images = splitAxis0(
          hostTensor([this.batchSize, 3, this.imageSize, this.imageSize], "u8", batch.images),
          devices,
        );
        const labels = splitAxis0(hostTensor([this.batchSize], "i32", batch.labels), devices);
        const input = await trees.uploadPerDevice(
          images.map((im, d) => ({ images: im, labels: labels[d] })),
        );
        const out = await this.compiled.call([params, input]);
        trees.freeReplaced(input, out);
        for (const [k, v] of leavesWithPaths<DeviceArray>(out)) {
          sums[k as keyof typeof sums] += (await this.backend.toHost(v)).data[0];
          this.backend.free(v);
        }
      }
    } finally {
      await loader.close();
    }
    if (sums.count === 0) throw new Error("validation produced no samples");
    return {
      loss: sums.loss / sums.count,
      acc1: sums.acc1 / sums.count,
      acc5: sums.acc5 / sums.count,
      samples: sums.count,
      seconds: (performance.now() - t) / 1000,
    };
  }

  dispose(): void {
    this.compiled.dispose();
  }
}
