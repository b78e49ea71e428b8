/**
 * Evaluation over a validation stream: every sample exactly once, padded rows masked out.
 * Shared by the training loop and `deno task eval`. Data parallel: each host's batch is split
 * over its devices, and the step sums the metrics over every replica of every host (the loader
 * gives every host the same number of batches), so each sample counts once.
 *
 * The eval program is compiled at the first evaluation, for `valid-batch-size`, or for the
 * set's own size when the whole validation set is smaller than one batch (no padded compute).
 */
import type { Backend, DeviceArray } from "../backend/backend.ts";
import { Compiled } from "../backend/jit.ts";
import type { Config } from "../config/mod.ts";
import type { Batch as HostBatch } from "../data/batch.ts";
import { createValidLoader } from "../data/loader.ts";
import { skippedSamples } from "../data/stats.ts";
import type { ShapeSpec } from "../ir/graph.ts";
import { hostTensor } from "../ir/host_tensor.ts";
import { splitAxis0 } from "../backend/replicas.ts";
import { DeviceTrees } from "./device_trees.ts";
import { flatten, leavesWithPaths, unflatten } from "../ir/pytree.ts";
import { unlessAborted } from "./interrupt.ts";
import { formatDuration } from "../report/logging.ts";
import { dataOptionsOf, loaderWorkers } from "./run_config.ts";
import { buildEvalStep, type TrainStepConfig } from "./step.ts";

export interface EvalResult {
  loss: number;
  acc1: number;
  acc5: number;
  samples: number;
  /** Bad held-out samples skipped and counted (corrupt images, missing or out-of-range labels). */
  skipped: number;
  seconds: number;
}

/** Where an evaluation stands, for a progress line. */
export interface EvalProgress {
  images: number;
  /** The set's size when known (from an earlier evaluation), else undefined. */
  total: number | undefined;
  seconds: number;
}

export class Evaluator {
  readonly #programs = new Map<number, Compiled>();
  /**
   * Validation samples seen by the last evaluation (or, before the first, what the caller knows
   * from an earlier process), for the progress line's ETA.
   */
  expectedSamples: number | undefined;

  private constructor(
    readonly backend: Backend,
    readonly cfg: TrainStepConfig,
    readonly paramSpecs: unknown,
    /** Samples per host batch, as the loader reads them. */
    readonly batchSize: number,
    readonly imageSize: number,
    /** The program's host batch: `batchSize` rounded up to a multiple of the devices. */
    readonly paddedSize: number,
  ) {}

  /**
   * Keeps the parameters' shapes only; the program is compiled at the first evaluation.
   * `batchSize`: validation images per host (`validBatchPerHost`). A batch that does not split
   * over the devices (500 images, 3 devices) is padded with masked rows (501), which are not
   * counted; `log` says so once.
   */
  static create(
    backend: Backend,
    cfg: TrainStepConfig,
    params: unknown,
    batchSize: number,
    log?: (line: string) => void,
  ): Promise<Evaluator> {
    const devices = backend.devices;
    const paddedSize = Math.ceil(batchSize / devices) * devices;
    if (paddedSize !== batchSize) {
      log?.(
        `validation: batches of ${batchSize} images are padded to ${paddedSize} to split over ` +
          `${devices} devices; the ${paddedSize - batchSize} padding row(s) are not counted`,
      );
    }
    const { leaves, def } = flatten<ShapeSpec>(params);
    const specs = unflatten(def, leaves.map((l) => ({ shape: l.shape, dtype: l.dtype })));
    return Promise.resolve(
      new Evaluator(backend, cfg, specs, batchSize, cfg.vit.imageSize, paddedSize),
    );
  }

  /** The program for host batches of `size` (size / devices per replica), compiled on first use. */
  async program(size: number): Promise<Compiled> {
    let p = this.#programs.get(size);
    if (!p) {
      const s = this.imageSize, b = size / this.backend.devices;
      p = await Compiled.create(this.backend, buildEvalStep(this.cfg), this.paramSpecs, {
        images: { shape: [b, 3, s, s], dtype: "u8" as const },
        labels: { shape: [b], dtype: "i32" as const },
      });
      this.#programs.set(size, p);
    }
    return p;
  }

  /** Batch sizes compiled so far (tests: a small set is not padded to a full batch). */
  get compiledSizes(): number[] {
    return [...this.#programs.keys()];
  }

  /**
   * Runs the validation shards of `config` through the model with `params` (device arrays).
   * `process`: this host's index and the host count (each reads its share of the samples).
   */
  async run(
    config: Config,
    params: unknown,
    log: (line: string) => void,
    progress?: (p: EvalProgress) => void,
    /** Rejects with Interrupted as soon as this aborts while the evaluation waits for data. */
    signal?: AbortSignal,
    /** This host's index and the host count (each reads its share of the samples). */
    process = { index: 0, count: 1 },
  ): Promise<EvalResult> {
    const t = performance.now();
    const shards = config["valid-dataset-shards"];
    if (!shards) throw new Error('"valid-dataset-shards" is not set: nothing to evaluate on');
    const loader = createValidLoader({
      shards,
      batchSize: this.batchSize,
      workers: loaderWorkers(config, "valid-loader-workers"),
      processIndex: process.index,
      processCount: process.count,
      // Bad held-out samples are skipped, counted and logged; they do not stop an evaluation
      // (a loader that reads no shard at all still does).
      ...dataOptionsOf(config),
      strict: false,
      maxSkipFraction: 1,
      transform: {
        kind: "valid",
        options: { imageSize: this.imageSize, testCropRatio: config["test-crop-ratio"] },
      },
      log,
    });
    const sums = { loss: 0, acc1: 0, acc5: 0, count: 0 };
    const devices = this.backend.devices, trees = new DeviceTrees(this.backend);
    try {
      const it = loader[Symbol.asyncIterator]();
      let next = await unlessAborted(it.next(), signal);
      while (!next.done) {
        const batch: HostBatch = next.value;
        next = await unlessAborted(it.next(), signal);
        // The whole set in one partial batch: run it at its own size (rounded up to split over
        // the devices), not a full batch (one host only: every host must run the same programs).
        const only = next.done && sums.count === 0 && batch.count < this.batchSize &&
          process.count === 1;
        const size = only ? Math.ceil(batch.count / devices) * devices : this.paddedSize;
        if (size === 0) continue;
        const { images: hostImages, labels: hostLabels } = rows(batch, size, this.imageSize);
        const images = splitAxis0(
          hostTensor([size, 3, this.imageSize, this.imageSize], "u8", hostImages),
          devices,
        );
        const labels = splitAxis0(hostTensor([size], "i32", hostLabels), devices);
        const input = await trees.uploadPerDevice(
          images.map((im, d) => ({ images: im, labels: labels[d] })),
        );
        const out = await (await this.program(size)).call([params, input]);
        trees.freeReplaced(input, out);
        const leaves = leavesWithPaths<DeviceArray>(out);
        const host = await Promise.all(leaves.map(([, v]) => this.backend.toHost(v)));
        leaves.forEach(([k, v], i) => {
          sums[k as keyof typeof sums] += host[i].data[0];
          this.backend.free(v);
        });
        progress?.({
          images: sums.count,
          total: this.expectedSamples,
          seconds: (performance.now() - t) / 1000,
        });
      }
    } finally {
      await loader.close();
    }
    if (sums.count === 0) throw new Error("validation produced no samples");
    this.expectedSamples = sums.count;
    return {
      loss: sums.loss / sums.count,
      acc1: sums.acc1 / sums.count,
      acc5: sums.acc5 / sums.count,
      samples: sums.count,
      skipped: skippedSamples(loader.stats()),
      seconds: (performance.now() - t) / 1000,
    };
  }

  dispose(): void {
    for (const p of this.#programs.values()) p.dispose();
    this.#programs.clear();
  }
}

/**
 * The first `size` rows of a batch: cut when the batch is larger, or padded with zero images
 * labelled -1 (masked out by the eval step) when it is smaller.
 */
function rows(batch: HostBatch, size: number, imageSize: number) {
  const px = 3 * imageSize * imageSize;
  if (size <= batch.labels.length) {
    return {
      images: batch.images.subarray(0, size * px),
      labels: batch.labels.subarray(0, size),
    };
  }
  const images = new Uint8Array(size * px);
  images.set(batch.images.subarray(0, batch.labels.length * px));
  const labels = new Int32Array(size).fill(-1);
  labels.set(batch.labels);
  return { images, labels };
}

/** "eval 1,200/10,000 images | 310 img/s | ETA 28s" */
export function formatEvalProgress(p: EvalProgress): string {
  const rate = p.images / Math.max(p.seconds, 1e-9);
  const of = p.total ? `/${p.total.toLocaleString("en-US")}` : "";
  const eta = p.total ? ` | ETA ${formatDuration((p.total - p.images) / rate)}` : "";
  return `eval ${p.images.toLocaleString("en-US")}${of} images | ${rate.toFixed(0)} img/s${eta}`;
}
