/**
 * Evaluation over a validation stream: every sample exactly once, padded rows masked out.
 * Shared by the training loop and `deno task eval`.
 */
import type { Backend, DeviceArray } from "../backend/backend.ts";
import { Compiled } from "../backend/jit.ts";
import type { Config } from "../config/mod.ts";
import { createValidLoader } from "../data/loader.ts";
import { hostTensor } from "../ir/host_tensor.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import { unlessAborted } from "./interrupt.ts";
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

  static async create(backend: Backend, cfg: TrainStepConfig, params: unknown, batchSize: number) {
    const s = cfg.vit.imageSize;
    const compiled = await Compiled.create(backend, buildEvalStep(cfg), params, {
      images: { shape: [batchSize, 3, s, s], dtype: "u8" as const },
      labels: { shape: [batchSize], dtype: "i32" as const },
    });
    return new Evaluator(backend, compiled, batchSize, s);
  }

  /**
   * Runs the validation shards of `config` through the model with `params` (device arrays).
   * Rejects with Interrupted as soon as `signal` aborts while it waits for data.
   */
  async run(
    config: Config,
    params: unknown,
    log: (line: string) => void,
    signal?: AbortSignal,
  ): Promise<EvalResult> {
    const t = performance.now();
    const loader = createValidLoader({
      shards: config["valid-dataset-shards"] as string,
      batchSize: this.batchSize,
      workers: config["valid-loader-workers"] as number,
      transform: {
        kind: "valid",
        options: { imageSize: this.imageSize, testCropRatio: config["test-crop-ratio"] as number },
      },
      log,
    });
    const sums = { loss: 0, acc1: 0, acc5: 0, count: 0 };
    const batches = loader[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await unlessAborted(batches.next(), signal);
        if (next.done) break;
        const batch = next.value;
        const out = await this.compiled.call([params, {
          images: hostTensor(
            [this.batchSize, 3, this.imageSize, this.imageSize],
            "u8",
            batch.images,
          ),
          labels: hostTensor([this.batchSize], "i32", batch.labels),
        }]);
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
