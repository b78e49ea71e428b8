/**
 * The memory a run needs at the least, from its config alone, checked before anything is built
 * or written: an absurd size (`--dim 1048576`, `--layers 100000000`, a batch of 1e11) is refused
 * in milliseconds with the figures and the keys to change, instead of after minutes of
 * allocation or at step 1.
 *
 * The estimate is a floor, never an over-count, so that no run that would fit is refused:
 * - parameters, gradients and the optimizer's two moments (AdamW and LAMB): 4 x 4 bytes each;
 * - activations kept for the backward pass of one micro-batch (the process's share of
 *   `train-batch-size / grad-accum`), per block: the residual stream, q/k/v, attention output
 *   and projection, the MLP's hidden layer and the attention probabilities; with `grad-ckpt`,
 *   only each block's input plus one block's worth;
 * - the loader's buffers: each worker's batches in flight (uint8 pixels).
 *
 * On the CPU backend all of it is host memory. On WebGPU and PJRT the parameters and optimizer
 * state are still built on the host (and the loader is there), so those are checked against host
 * memory; the device's memory is not known before the backend starts, so activations are not
 * checked there.
 */
import type { Config } from "../config/mod.ts";
import { vitParams } from "../model/params.ts";
import { processTopology } from "./distributed.ts";
import { loaderWorkers, vitConfigOf } from "./run_config.ts";
import { TrainingError } from "./run_state.ts";

export interface MemoryEstimate {
  params: number;
  /** Bytes by part. */
  parts: { name: string; bytes: number; keys: string[] }[];
  /** Bytes that must fit in host memory. */
  host: number;
}

/** Batches a loader worker may hold: its prefetch credits and the one it builds. */
const BATCHES_PER_WORKER = 3;

/** The parameter count of the config's ViT, without building its tree (layers may be 1e8). */
export function parameterCount(config: Config): number {
  const count = (layers: number) => {
    let n = 0;
    vitParams({ ...vitConfigOf(config), layers }, (_, shape) => {
      n += shape.reduce((a, b) => a * b, 1);
    });
    return n;
  };
  const base = count(0);
  return base + config.layers * (count(1) - base);
}

export function estimateMemory(
  config: Config,
  processCount = 1,
  backend: string = config.backend,
): MemoryEstimate {
  const vit = vitConfigOf(config);
  const params = parameterCount(config);
  const accum = config["grad-accum"] ?? 1;
  const micro = config["train-batch-size"] / accum / processCount;
  const tokens = (vit.imageSize / vit.patchSize) ** 2 + (vit.pooling === "cls" ? 1 : 0);
  // Floats per image that one block keeps for its backward pass.
  const block = tokens * (10 * vit.dim + vit.heads * tokens);
  const kept = vit.gradCkpt ? vit.layers * tokens * vit.dim + block : vit.layers * block;
  const activations = 4 * micro * (kept + 3 * vit.imageSize ** 2);
  const workers = Math.max(1, loaderWorkers(config, "train-loader-workers"));
  const hostBatch = config["train-batch-size"] / processCount;
  const loader = workers * BATCHES_PER_WORKER * hostBatch * 3 * vit.imageSize ** 2;
  const model = ["dim", "layers"];
  const parts = [
    { name: "parameters", bytes: 4 * params, keys: model },
    { name: "gradients", bytes: 4 * params, keys: model },
    { name: `optimizer state (${config.optimizer}: 2 moments)`, bytes: 8 * params, keys: model },
    {
      name: `activations of a micro-batch of ${fmtCount(micro)} images`,
      bytes: activations,
      keys: ["train-batch-size", "grad-accum", "image-size", "grad-ckpt", ...model],
    },
    {
      name: `loader buffers (${workers} worker${workers > 1 ? "s" : ""} x ${BATCHES_PER_WORKER} ` +
        `batches of ${fmtCount(hostBatch)} images)`,
      bytes: loader,
      keys: ["train-batch-size", "train-loader-workers", "image-size"],
    },
  ];
  const onHost = backend === "cpu" ? parts : parts.filter((p) => !p.name.startsWith("act"));
  return { params, parts, host: onHost.reduce((a, p) => a + p.bytes, 0) };
}

/** Host memory: the machine's, or the cgroup's limit when lower. */
export function hostMemory(): { bytes: number; what: string } {
  let bytes = Deno.systemMemoryInfo().total, what = "host RAM";
  try {
    const limit = Number(Deno.readTextFileSync("/sys/fs/cgroup/memory.max").trim());
    if (Number.isFinite(limit) && limit < bytes) [bytes, what] = [limit, "the cgroup's memory.max"];
  } catch {
    // no cgroup v2 limit
  }
  return { bytes, what };
}

/**
 * Throws a TrainingError naming the figures and the keys when the run cannot fit. Each process
 * of a multi-host job holds its share of the batch (a topology error is left to the loop).
 */
export function checkMemory(
  config: Config,
  available: { bytes: number; what: string } = hostMemory(),
  /** The backend the run got (`--backend auto` resolved: its activations are host memory on cpu). */
  backend: string = config.backend,
): void {
  let processCount = 1;
  try {
    processCount = processTopology(config).processCount;
  } catch {
    // reported where the run starts
  }
  const e = estimateMemory(config, processCount, backend);
  if (e.host <= available.bytes) return;
  const onHost = backend === "cpu" ? e.parts : e.parts.filter((p) => !p.name.startsWith("act"));
  const largest = onHost.reduce((a, p) => p.bytes > a.bytes ? p : a);
  const keys = largest.keys.map((k) => `"${k}" (${config[k as keyof Config]})`).join(", ");
  throw new TrainingError(
    `this run needs at least ${fmtBytes(e.host)} of memory, but ${available.what} is ` +
      `${fmtBytes(available.bytes)} (backend ${backend}; ${fmtCount(e.params)} ` +
      `parameters): ${onHost.map((p) => `${p.name} ${fmtBytes(p.bytes)}`).join(", ")}` +
      (backend === "cpu" ? "" : " (activations are on the device, not counted here)") +
      `. The largest part is the ${largest.name.replace(/ \(.*/, "")}: change ${keys}`,
  );
}

function fmtBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) [n, i] = [n / 1000, i + 1];
  return `${n < 10 && i > 0 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

function fmtCount(n: number): string {
  return n < 1e9 ? String(Math.round(n * 100) / 100) : n.toPrecision(3);
}
