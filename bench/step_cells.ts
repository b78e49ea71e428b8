/**
 * The train-step cells of `deno task bench --model ...`: our step for ViT-S/16, ViT-B/16 or the
 * tiny MNIST ViT at a given batch, on one backend and compute dtype, one fixed synthetic batch
 * (bench/train_step.ts). scripts/device/device_check.sh runs these next to deit3-jax
 * (scripts/peers/bench_jax.py train-step, with the config `--jax-config` writes) and timm
 * (scripts/peers/bench_timm_vit.py with the same model flags).
 */
import { type BackendName, createBackend } from "../lib/backend/select.ts";
import type { Precision } from "../lib/ir/primitive.ts";
import type { ViTConfig } from "../lib/model/vit.ts";
import { jaxStepConfig } from "./jax_config.ts";
import { benchTrainStep, TINY_VIT } from "./train_step.ts";

const VIT_224 = {
  labels: 1000,
  layerscale: true, // DeiT-III
  patchSize: 16,
  imageSize: 224,
  posemb: "learnable",
  pooling: "cls",
  dropout: 0,
  droppath: 0.1,
  gradCkpt: false,
} as const;

/** The models, as the peer measurements in notes/anchors.md ran them. */
export const STEP_MODELS: Record<string, { label: string; vit: ViTConfig }> = {
  tiny: { label: "tiny ViT (28 px, patch 4, dim 64, depth 4)", vit: TINY_VIT },
  s16: {
    label: "ViT-S/16 at 224, LayerScale, drop-path 0.1",
    vit: { ...VIT_224, layers: 12, dim: 384, heads: 6 },
  },
  b16: {
    label: "ViT-B/16 at 224, LayerScale, drop-path 0.1",
    vit: { ...VIT_224, layers: 12, dim: 768, heads: 12 },
  },
};

export interface StepCell {
  model: string;
  backend: BackendName;
  dtype: "f32" | "bf16";
  batch: number;
  steps: number;
  pjrtPlugin?: string;
  /** Each matmul's precision_config (config key `matmul-precision`); default "default". */
  matmulPrecision?: Precision;
}

/** One cell: img/s, ms/step, compile seconds (or the error), as one flat record. */
export async function benchStepCell(c: StepCell): Promise<Record<string, unknown>> {
  const m = STEP_MODELS[c.model];
  const row: Record<string, unknown> = {
    model: c.model,
    config: m?.label,
    backend: c.backend,
    dtype: c.dtype,
    matmul_precision: c.matmulPrecision ?? "default",
    batch: c.batch,
    steps: c.steps,
  };
  try {
    if (!m) throw new Error(`unknown --model "${c.model}" (${Object.keys(STEP_MODELS)})`);
    if (c.dtype === "bf16" && c.backend !== "pjrt") {
      throw new Error(`--dtype bf16: the ${c.backend} backend computes in f32; use --backend pjrt`);
    }
    const backend = await createBackend(c.backend, {
      precision: c.dtype,
      matmulPrecision: c.matmulPrecision ?? "default",
      pjrtPlugin: c.pjrtPlugin,
      devices: 1,
    });
    try {
      row.device = backend.description;
      const r = await benchTrainStep(backend, m.vit, c.batch, c.steps);
      row.img_per_s = round(r.imgPerS);
      row.step_ms = round(r.stepMs);
      row.cpu_ms_per_step = round(r.cpuStepMs);
      row.compile_s = round(r.compileS);
    } finally {
      backend.dispose();
    }
  } catch (e) {
    row.error = (e as Error).message;
  }
  return row;
}

/** The model as a config of scripts/peers/bench_jax.py train-step (the same step: CE 0.1, AdamW). */
export function jaxConfig(model: string): Record<string, unknown> {
  const v = STEP_MODELS[model]?.vit;
  if (!v) throw new Error(`unknown --model "${model}" (${Object.keys(STEP_MODELS)})`);
  return jaxStepConfig(v);
}

/** The model as flags of scripts/peers/bench_timm_vit.py. */
export function timmFlags(model: string): string[] {
  const v = STEP_MODELS[model]?.vit;
  if (!v) throw new Error(`unknown --model "${model}" (${Object.keys(STEP_MODELS)})`);
  return [
    ...["--layers", v.layers, "--dim", v.dim, "--heads", v.heads].map(String),
    ...["--patch", v.patchSize, "--image", v.imageSize, "--labels", v.labels ?? 1000].map(String),
    ...["--droppath", String(v.droppath), ...(v.layerscale ? ["--layerscale"] : [])],
  ];
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
