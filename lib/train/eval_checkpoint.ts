/**
 * `deno task eval`'s pipeline: a checkpoint's parameters read (Flax msgpack or a training
 * state), matched key by key against the config's model, uploaded, and evaluated on the config's
 * validation shards. The settings come from run_config.ts, as for training (backend, precision,
 * batch plan, loaders).
 */
import { createBackend } from "../backend/select.ts";
import { readFlaxParams } from "../checkpoint/convert.ts";
import { matchTree } from "../checkpoint/finetune.ts";
import type { Config } from "../config/mod.ts";
import type { ShapeSpec } from "../ir/graph.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import { paramSpecs } from "../model/params.ts";
import { DeviceTrees } from "./device_trees.ts";
import { type EvalProgress, type EvalResult, Evaluator } from "./evaluate.ts";
import {
  backendOptionsOf,
  loaderWorkers,
  stepConfigOf,
  validBatchPerHost,
  vitConfigOf,
} from "./run_config.ts";

export interface EvaluateCheckpointOptions {
  /** A line for the log (backend, loader notes, skipped samples). */
  log: (line: string) => void;
  progress?: (p: EvalProgress) => void;
}

/** Evaluates the checkpoint at `ckpt` (local or gs://) with the model and data of `config`. */
export async function evaluateCheckpoint(
  ckpt: string,
  config: Config,
  o: EvaluateCheckpointOptions,
): Promise<EvalResult> {
  const found = await readFlaxParams(ckpt);
  const specs = new Map(
    leavesWithPaths<ShapeSpec>(paramSpecs(vitConfigOf(config)))
      .map(([path, spec]) => [path.replaceAll(".", "/"), spec]),
  );
  const params = matchTree(found, specs, ckpt);
  const backend = await createBackend(config.backend, { ...backendOptionsOf(config), log: o.log });
  try {
    o.log(`backend: ${backend.name} (${backend.description})`);
    const device = await new DeviceTrees(backend).upload(params);
    const evaluator = await Evaluator.create(
      backend,
      stepConfigOf(config, backend.replicas),
      params,
      validBatchPerHost(config, { processes: 1, devices: backend.devices }),
    );
    try {
      loaderWorkers(config, "valid-loader-workers", o.log);
      return await evaluator.run(config, device, o.log, o.progress);
    } finally {
      evaluator.dispose();
    }
  } finally {
    backend.dispose();
  }
}
