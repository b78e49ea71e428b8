/**
 * The training step of a config as a StableHLO program (`deno task export-hlo`): the same
 * per-replica program the PJRT backend compiles, with parameters and optimizer state donated
 * (`tf.aliasing_output`) and a comment header naming every argument and result.
 */
import { pathAliases } from "../backend/stablehlo/aliasing.ts";
import { emitStableHlo } from "../backend/stablehlo/emit.ts";
import { elementType } from "../backend/stablehlo/types.ts";
import type { Config } from "../config/schema.ts";
import { type Graph, type ShapeSpec, trace } from "../ir/graph.ts";
import type { TreeDef } from "../ir/pytree.ts";
import { trainStepSignature } from "./signature.ts";
import { buildTrainStep } from "./step.ts";

export interface ExportOptions {
  /** Images per step over all replicas (default: `train-batch-size` / `grad-accum`). */
  batch?: number;
  /** Data-parallel replicas (every device of every process); each gets batch / devices. */
  devices?: number;
  /** Compute precision; default the config's `precision`. */
  precision?: "f32" | "bf16";
}

export interface ExportedProgram {
  text: string;
  /** The traced step the text was emitted from (runs on the CPU/WebGPU backends too). */
  graph: Graph;
  /** Argument and result paths with their types, in `@main` order. */
  inputs: string[];
  outputs: string[];
  /** Number of graph nodes (for logs). */
  nodes: number;
  perReplicaBatch: number;
}

/** Traces the config's training step and emits it. */
export function exportTrainStep(config: Config, opts: ExportOptions = {}): ExportedProgram {
  const devices = opts.devices ?? 1;
  const sig = trainStepSignature(config, { devices, batch: opts.batch });
  const step = buildTrainStep(sig.step);
  const traced = trace((p, o, bt, m, s, k) => step(p, o, bt, m, s, k), ...sig.args);
  const outputPaths = leafPaths(traced.outDef);
  const aliases = pathAliases(sig.paths, outputPaths, [["params", "params"], ["opt", "opt"]]);
  const compute = opts.precision ?? config.precision;
  const matmul = config["matmul-precision"];
  const text = emitStableHlo(traced.graph, {
    moduleName: `train_step_${config.name}`,
    numReplicas: devices,
    aliases,
    compute,
    precision: matmul,
  });
  const describe = (paths: string[], ts: readonly ShapeSpec[]) =>
    paths.map((p, i) => `${p}: ${elementType(ts[i].dtype)}[${ts[i].shape.join(",")}]`);
  const inputs = describe(sig.paths, traced.graph.inputs);
  const outputs = describe(outputPaths, traced.graph.outputs);
  const header = [
    `// Training step of "${config.name}": per-replica batch ${sig.perReplicaBatch}, ` +
    `${devices} replica(s), compute ${compute}, matmul precision ${matmul}.`,
    "// Arguments:",
    ...inputs.map((l, i) => `//   %arg${i} ${l}`),
    "// Results:",
    ...outputs.map((l, i) => `//   #${i} ${l}`),
  ];
  return {
    text: `${header.join("\n")}\n${text}`,
    graph: traced.graph,
    inputs,
    outputs,
    nodes: traced.graph.nodes.length,
    perReplicaBatch: sig.perReplicaBatch,
  };
}

/** Dotted paths of a tree definition's leaves, in flatten order. */
function leafPaths(def: TreeDef, path = "", out: string[] = []): string[] {
  const join = (k: string) => (path ? `${path}.${k}` : k);
  if (def.kind === "leaf") out.push(path);
  else if (def.kind === "array") def.children.forEach((c, i) => leafPaths(c, join(`${i}`), out));
  else if (def.kind === "object") {
    def.children.forEach((c, i) => leafPaths(c, join(def.keys[i]), out));
  }
  return out;
}
