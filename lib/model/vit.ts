/**
 * The Vision Transformer of deit3-jax (src/modeling.py), with its exact parameter tree:
 * `embed.{wte.{kernel [p,p,3,dim], bias}, cls_token [1,1,dim], wpe [h,w,dim]}`,
 * `layer_i.{norm1, attn.{wq,wk,wv: kernel [dim,heads,hd], bias [heads,hd]; wo: kernel
 * [heads,hd,dim], bias}, norm2, ff.{w1, w2}, scale1, scale2}`, `norm`, `head`.
 */
import * as ops from "../ir/ops.ts";
import { dropout, gelu, layerNorm, softmax } from "../ir/nn.ts";
import { foldIn } from "../ir/random.ts";
import type { Tensor } from "../ir/tensor.ts";
import { checkpoint, recompute } from "../autodiff/checkpoint.ts";
import { attention as fusedAttention } from "../ir/attention.ts";

export interface ViTConfig {
  layers: number;
  dim: number;
  heads: number;
  /** null: no head, the model returns all tokens after the final norm. */
  labels: number | null;
  layerscale: boolean;
  patchSize: number;
  imageSize: number;
  posemb: "learnable" | "sincos2d";
  pooling: "cls" | "gap";
  /** MLP activation: tanh-approximate GELU (the original's; the default) or exact erf (timm's). */
  gelu?: "tanh" | "exact";
  dropout: number;
  droppath: number;
  gradCkpt: boolean;
}

/** Throws a message naming the config key when a ViT cannot be built from `c`. */
export function checkViTConfig(c: ViTConfig): void {
  const bad = (key: string, why: string) => {
    throw new Error(`ViT config: ${key} ${why}`);
  };
  for (const k of ["layers", "dim", "heads", "patchSize", "imageSize"] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(k, `must be a positive integer, got ${c[k]}`);
  }
  if (c.dim % c.heads !== 0) bad("dim", `(${c.dim}) must be divisible by heads (${c.heads})`);
  if (c.imageSize % c.patchSize !== 0) {
    bad("image-size", `(${c.imageSize}) must be divisible by patch-size (${c.patchSize})`);
  }
  if (c.posemb === "sincos2d" && c.dim % 4 !== 0) {
    bad("dim", `must be divisible by 4 for sincos2d, got ${c.dim}`);
  }
  if (c.labels !== null && (!Number.isInteger(c.labels) || c.labels <= 0)) {
    bad("labels", `must be a positive integer, got ${c.labels}`);
  }
  if (c.dropout < 0 || c.dropout >= 1) bad("dropout", `must be in [0, 1), got ${c.dropout}`);
  if (c.droppath < 0 || c.droppath >= 1) bad("droppath", `must be in [0, 1), got ${c.droppath}`);
}

export interface ForwardOptions {
  /** Deterministic mode (no dropout/droppath), as flax's `det=True`. */
  det: boolean;
  /** u32[2] key for dropout and droppath when not deterministic. */
  key?: Tensor;
}

/** `images` are normalized f32 NHWC [B, H, W, 3]. Returns logits [B, labels] (or tokens). */
export function vitForward(
  c: ViTConfig,
  params: any,
  images: Tensor,
  opts: ForwardOptions,
): Tensor {
  checkViTConfig(c);
  const p = params.model ?? params;
  const stochastic = !opts.det && (c.dropout > 0 || c.droppath > 0);
  if (stochastic && !opts.key) {
    throw new Error("vitForward: a dropout key is needed when det is false");
  }
  const keyFor = (i: number) => (stochastic ? foldIn(opts.key!, i) : undefined);

  let x = patchEmbed(c, p.embed, images);
  x = drop(x, c.dropout, keyFor(0));
  for (let i = 0; i < c.layers; i++) {
    const layer = (h: Tensor) => vitLayer(c, p[`layer_${i}`], h, keyFor(i + 1));
    x = c.gradCkpt ? checkpoint(layer)(x) : layer(x);
  }
  x = layerNorm(x, p.norm.scale, p.norm.bias);
  if (c.labels === null) return x;
  const pooled = c.pooling === "cls"
    ? ops.reshape(ops.sliceAxis(x, 1, 0, 1), [x.shape[0], c.dim])
    : ops.mean(x, 1);
  return dense(pooled, p.head.kernel, p.head.bias);
}

/** deit3-jax's `fixed_sincos2d_embeddings(ncols, nrows, dim)`: [h, w, dim] as a host array. */
export function sincos2d(h: number, w: number, dim: number): Float32Array {
  const q = dim / 4;
  const freqs = Array.from({ length: q }, (_, i) => 1 / 10000 ** (q === 1 ? 0 : i / (q - 1)));
  const out = new Float32Array(h * w * dim);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * dim;
      for (let i = 0; i < q; i++) {
        const fx = Math.fround(Math.fround(x) * Math.fround(freqs[i]));
        const fy = Math.fround(Math.fround(y) * Math.fround(freqs[i]));
        out[o + i] = Math.sin(fx);
        out[o + q + i] = Math.cos(fx);
        out[o + 2 * q + i] = Math.sin(fy);
        out[o + 3 * q + i] = Math.cos(fy);
      }
    }
  }
  return out;
}

function patchEmbed(c: ViTConfig, p: any, images: Tensor): Tensor {
  const [b, hh, ww, ch] = images.shape;
  if (hh !== c.imageSize || ww !== c.imageSize || ch !== 3) {
    throw new Error(
      `ViT: images must be [B, ${c.imageSize}, ${c.imageSize}, 3], got [${images.shape}]`,
    );
  }
  const ps = c.patchSize, gh = hh / ps, gw = ww / ps;
  // Conv with stride = kernel = patch: reshape into patches, then one matmul.
  const patches = ops.reshape(
    ops.transpose(ops.reshape(images, [b, gh, ps, gw, ps, 3]), [0, 1, 3, 2, 4, 5]),
    [b, gh, gw, ps * ps * 3],
  );
  let x = dense(patches, ops.reshape(p.wte.kernel, [ps * ps * 3, c.dim]), p.wte.bias);
  const wpe = c.posemb === "learnable"
    ? p.wpe
    : ops.constant({ shape: [gh, gw, c.dim], dtype: "f32", data: sincos2d(gh, gw, c.dim) });
  x = ops.add(x, ops.broadcastTo(wpe, x.shape));
  x = ops.reshape(x, [b, gh * gw, c.dim]);
  if (c.pooling === "cls") {
    const cls = ops.broadcastTo(p.cls_token, [b, 1, c.dim]);
    x = ops.concatenate([cls, x], 1);
  }
  return x;
}

function vitLayer(c: ViTConfig, p: any, x: Tensor, key?: Tensor): Tensor {
  const k = (i: number) => (key ? foldIn(key, i) : undefined);
  let h = attention(c, p.attn, layerNorm(x, p.norm1.scale, p.norm1.bias), k(0));
  if (c.layerscale) h = ops.mul(h, p.scale1);
  x = ops.add(x, droppath(h, c.droppath, k(1)));
  h = feedForward(c, p.ff, layerNorm(x, p.norm2.scale, p.norm2.bias), k(2));
  if (c.layerscale) h = ops.mul(h, p.scale2);
  return ops.add(x, droppath(h, c.droppath, k(3)));
}

function attention(c: ViTConfig, p: any, x: Tensor, key?: Tensor): Tensor {
  const [b, n] = x.shape;
  const hd = c.dim / c.heads;
  // [B, N, dim] -> [B, heads, N, hd]
  const project = (w: any) =>
    ops.transpose(
      ops.reshape(
        dense(x, ops.reshape(w.kernel, [c.dim, c.dim]), ops.reshape(w.bias, [c.dim])),
        [b, n, c.heads, hd],
      ),
      [0, 2, 1, 3],
    );
  const kk = project(p.wk);
  const v = project(p.wv);
  const attnKey = key ? foldIn(key, 0) : undefined;
  // Fused (lib/ir/attention.ts: no [B, heads, N, N] tensor kept for the backward) unless
  // dropout applies to the probabilities themselves.
  const z = attnKey && c.dropout > 0
    ? unfusedAttention(ops.div(project(p.wq), Math.sqrt(hd)), kk, v, c.dropout, attnKey)
    : fusedAttention(project(p.wq), kk, v, 1 / Math.sqrt(hd));
  // [B, heads, N, hd] -> [B, N, heads*hd]
  const merged = ops.reshape(ops.transpose(z, [0, 2, 1, 3]), [b, n, c.dim]);
  const out = dense(merged, ops.reshape(p.wo.kernel, [c.dim, c.dim]), p.wo.bias);
  return drop(out, c.dropout, key ? foldIn(key, 1) : undefined);
}

/** softmax(q k^T) v with dropout on the probabilities (flax's attention dropout). */
function unfusedAttention(q: Tensor, kk: Tensor, v: Tensor, rate: number, key: Tensor): Tensor {
  const scores = ops.dotGeneral(q, kk, {
    lhsBatch: [0, 1],
    rhsBatch: [0, 1],
    lhsContract: [3],
    rhsContract: [3],
  });
  const attn = drop(softmax(scores, -1), rate, key);
  return ops.dotGeneral(attn, v, {
    lhsBatch: [0, 1],
    rhsBatch: [0, 1],
    lhsContract: [3],
    rhsContract: [2],
  });
}

function feedForward(c: ViTConfig, p: any, x: Tensor, key?: Tensor): Tensor {
  // w2's gradient reads gelu(h) recomputed from h in the backward (`recompute`): only h, the
  // pre-activation, outlives the forward pass, not a second [B, N, 4 dim] tensor per layer
  const hidden = recompute((h: Tensor) =>
    ops.matmul(
      drop(gelu(h, c.gelu !== "exact"), c.dropout, key ? foldIn(key, 0) : undefined),
      p.w2.kernel,
    )
  );
  const y = hidden(dense(x, p.w1.kernel, p.w1.bias));
  const out = ops.add(y, ops.broadcastTo(p.w2.bias, y.shape));
  return drop(out, c.dropout, key ? foldIn(key, 1) : undefined);
}

/** x[..., in] @ kernel[in, out] + bias[out]. */
function dense(x: Tensor, kernel: Tensor, bias: Tensor): Tensor {
  const y = ops.matmul(x, kernel);
  return ops.add(y, ops.broadcastTo(bias, y.shape));
}

function drop(x: Tensor, rate: number, key?: Tensor): Tensor {
  return key && rate > 0 ? dropout(x, rate, key) : x;
}

/** Per-sample stochastic depth: one draw per batch row, shared over tokens and features. */
function droppath(x: Tensor, rate: number, key?: Tensor): Tensor {
  return key && rate > 0 ? dropout(x, rate, key, x.shape.map((_, i) => i).slice(1)) : x;
}
