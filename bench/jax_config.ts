/**
 * A ViT as a config of scripts/peers/bench_jax.py train-step: the benchmarked step (CE with label
 * smoothing 0.1, AdamW, no mixing). Shared by the CPU cells and the device cells.
 */
import type { ViTConfig } from "../lib/model/vit.ts";

export type JaxStepModel = Pick<
  ViTConfig,
  | "layers"
  | "dim"
  | "heads"
  | "labels"
  | "layerscale"
  | "patchSize"
  | "imageSize"
  | "posemb"
  | "pooling"
  | "dropout"
  | "droppath"
>;

export function jaxStepConfig(v: JaxStepModel): Record<string, unknown> {
  return {
    layers: v.layers,
    dim: v.dim,
    heads: v.heads,
    labels: v.labels,
    layerscale: v.layerscale,
    "patch-size": v.patchSize,
    "image-size": v.imageSize,
    posemb: v.posemb,
    pooling: v.pooling,
    dropout: v.dropout,
    droppath: v.droppath,
    optimizer: "adamw",
    "learning-rate": 1e-3,
    "weight-decay": 0.05,
    criterion: "ce",
    "label-smoothing": 0.1,
    mixup: 0,
    cutmix: 0,
  };
}
