/**
 * The ViT parameter tree (the flax module's names and shapes), written once: `initViT` draws
 * its values and `paramSpecs` gives its shapes without drawing any (ViT-H has 632M parameters),
 * for the step signature and the StableHLO export.
 */
import type { ShapeSpec } from "../ir/graph.ts";
import type { ViTConfig } from "./vit.ts";

/** How a parameter starts: flax's initializers of the original (see init.ts). */
export type ParamInit = "truncated_normal" | "zeros" | "ones" | "layerscale";

/**
 * The parameter tree of `c`, with each leaf made by `leaf`, called in the order the flax
 * module creates its parameters (init.ts draws in that order).
 */
export function vitParams<T>(
  c: ViTConfig,
  leaf: (init: ParamInit, shape: number[]) => T,
): { model: Record<string, T | Record<string, unknown>> } {
  const hd = c.dim / c.heads, g = c.imageSize / c.patchSize, hidden = 4 * c.dim;
  const norm = () => ({ scale: leaf("ones", [c.dim]), bias: leaf("zeros", [c.dim]) });
  const dense = (kernel: number[], bias: number[]) => ({
    kernel: leaf("truncated_normal", kernel),
    bias: leaf("zeros", bias),
  });
  const embed: Record<string, unknown> = {
    wte: dense([c.patchSize, c.patchSize, 3, c.dim], [c.dim]),
  };
  if (c.pooling === "cls") embed.cls_token = leaf("truncated_normal", [1, 1, c.dim]);
  if (c.posemb === "learnable") embed.wpe = leaf("truncated_normal", [g, g, c.dim]);
  const model: Record<string, unknown> = { embed };
  for (let i = 0; i < c.layers; i++) {
    const proj = () => dense([c.dim, c.heads, hd], [c.heads, hd]);
    const layer: Record<string, unknown> = {
      norm1: norm(),
      attn: { wq: proj(), wk: proj(), wv: proj(), wo: dense([c.heads, hd, c.dim], [c.dim]) },
      norm2: norm(),
      ff: { w1: dense([c.dim, hidden], [hidden]), w2: dense([hidden, c.dim], [c.dim]) },
    };
    if (c.layerscale) {
      layer.scale1 = leaf("layerscale", [c.dim]);
      layer.scale2 = leaf("layerscale", [c.dim]);
    }
    model[`layer_${i}`] = layer;
  }
  model.norm = norm();
  if (c.labels !== null) model.head = dense([c.dim, c.labels], [c.labels]);
  return { model } as { model: Record<string, T | Record<string, unknown>> };
}

/** Shape specs of the parameter tree (f32 leaves), without values. */
export function paramSpecs(c: ViTConfig): { model: Record<string, unknown> } {
  return vitParams(c, (_, shape): ShapeSpec => ({ shape, dtype: "f32" }));
}
