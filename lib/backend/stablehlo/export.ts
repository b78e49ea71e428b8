/**
 * The training step of a config as a StableHLO program (`deno task export-hlo`): the same
 * per-replica program the PJRT backend compiles, with parameters and optimizer state donated
 * (`tf.aliasing_output`) and a comment header naming every argument and result.
 */
import { stepConfigOf } from "../../train/run_config.ts";
import type { Config } from "../../config/schema.ts";
import { type Graph, type ShapeSpec, trace } from "../../ir/graph.ts";
import { leavesWithPaths, type TreeDef } from "../../ir/pytree.ts";
import { checkViTConfig, type ViTConfig } from "../../model/vit.ts";
import { buildTrainStep } from "../../train/step.ts";
import { pathAliases } from "./aliasing.ts";
import { emitStableHlo } from "./emit.ts";
import { elementType } from "./types.ts";

export interface ExportOptions {
  /** Global batch size (default: the config's `train-batch-size`). */
  batch?: number;
  /** Data-parallel replicas (all global devices); each gets batch / replicas. Default 1. */
  replicas?: number;
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
  const replicas = opts.replicas ?? 1;
  const batch = opts.batch ?? config["train-batch-size"];
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new Error(`export-hlo: --replicas must be a positive integer, got ${replicas}`);
  }
  if (!Number.isInteger(batch) || batch < 1 || batch % replicas !== 0) {
    throw new Error(
      `export-hlo: the batch (${batch}) must be a positive multiple of the replicas (${replicas})`,
    );
  }
  const b = batch / replicas;
  const cfg = stepConfigOf(config, replicas);
  checkViTConfig(cfg.vit);
  const size = cfg.vit.imageSize;
  const f32 = (shape: number[]): ShapeSpec => ({ shape, dtype: "f32" });
  const params = paramSpecs(cfg.vit);
  const mixing = config.mixup > 0 || config.cutmix > 0;
  const args = [
    params,
    { mu: params, nu: params },
    { images: { shape: [b, 3, size, size], dtype: "u8" }, labels: { shape: [b], dtype: "i32" } },
    mixing
      ? {
        perm: { shape: [b], dtype: "i32" },
        imageLam: f32([]),
        labelLam: f32([]),
        box: { shape: [4], dtype: "i32" },
      }
      : null,
    { lr: f32([]), bc1: f32([]), bc2: f32([]) },
    { shape: [2], dtype: "u32" },
  ];
  const step = buildTrainStep(cfg);
  const traced = trace(
    (p, o, bt, m, s, k) => step(p, o, bt, m, s, k),
    ...args,
  );
  const names = ["params", "opt", "batch", "mix", "scalars", "key"];
  const inputPaths = leavesWithPaths<ShapeSpec>(args).map(([p]) => {
    const dot = p.indexOf(".");
    const head = names[Number(dot < 0 ? p : p.slice(0, dot))];
    return dot < 0 ? head : head + p.slice(dot);
  });
  const outputPaths = leafPaths(traced.outDef);
  const aliases = pathAliases(inputPaths, outputPaths, [["params", "params"], ["opt", "opt"]]);
  const text = emitStableHlo(traced.graph, {
    moduleName: `train_step_${config.name}`,
    numReplicas: replicas,
    aliases,
    compute: opts.precision ?? config.precision,
  });
  const describe = (paths: string[], ts: readonly ShapeSpec[]) =>
    paths.map((p, i) => `${p}: ${typeText(ts[i])}`);
  const inputs = describe(inputPaths, traced.graph.inputs);
  const outputs = describe(outputPaths, traced.graph.outputs);
  const header = [
    `// Training step of "${config.name}": per-replica batch ${b}, ${replicas} replica(s), ` +
    `compute ${opts.precision ?? config.precision}.`,
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
    perReplicaBatch: b,
  };
}

/**
 * Shape specs of the ViT parameter tree of lib/model/init.ts, without drawing any values (ViT-H
 * has 632M parameters). tests/backend/stablehlo_export_test.ts checks it against `initViT`.
 */
export function paramSpecs(c: ViTConfig): Record<string, unknown> {
  const f32 = (...shape: number[]): ShapeSpec => ({ shape, dtype: "f32" });
  const hd = c.dim / c.heads, g = c.imageSize / c.patchSize, hidden = 4 * c.dim;
  const norm = () => ({ scale: f32(c.dim), bias: f32(c.dim) });
  const embed: Record<string, unknown> = {
    wte: { kernel: f32(c.patchSize, c.patchSize, 3, c.dim), bias: f32(c.dim) },
  };
  if (c.pooling === "cls") embed.cls_token = f32(1, 1, c.dim);
  if (c.posemb === "learnable") embed.wpe = f32(g, g, c.dim);
  const model: Record<string, unknown> = { embed };
  for (let i = 0; i < c.layers; i++) {
    const proj = () => ({ kernel: f32(c.dim, c.heads, hd), bias: f32(c.heads, hd) });
    const layer: Record<string, unknown> = {
      norm1: norm(),
      attn: {
        wq: proj(),
        wk: proj(),
        wv: proj(),
        wo: { kernel: f32(c.heads, hd, c.dim), bias: f32(c.dim) },
      },
      norm2: norm(),
      ff: {
        w1: { kernel: f32(c.dim, hidden), bias: f32(hidden) },
        w2: { kernel: f32(hidden, c.dim), bias: f32(c.dim) },
      },
    };
    if (c.layerscale) {
      layer.scale1 = f32(c.dim);
      layer.scale2 = f32(c.dim);
    }
    model[`layer_${i}`] = layer;
  }
  model.norm = norm();
  if (c.labels !== null) model.head = { kernel: f32(c.dim, c.labels), bias: f32(c.labels) };
  return { model };
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

function typeText(t: ShapeSpec): string {
  return `${elementType(t.dtype)}[${t.shape.join(",")}]`;
}
