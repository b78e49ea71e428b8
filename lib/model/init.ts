/**
 * Parameter initialization as deit3-jax/flax: truncated normal (std 0.02, cut at 2 std) for
 * kernels, the cls token and learnable position embeddings; zero biases; LayerNorm scale 1 and
 * bias 0; LayerScale 1e-4. Draws come from the host Rng, so they differ from flax's bits but
 * follow the same distributions; the tree and shapes are identical.
 */
import { type HostTensor, hostTensor } from "../ir/host_tensor.ts";
import { Rng } from "../ir/rng.ts";
import { checkViTConfig, type ViTConfig } from "./vit.ts";

export function initViT(c: ViTConfig, seed: number): { model: Record<string, unknown> } {
  checkViTConfig(c);
  const root = Rng.fromSeed(seed);
  let stream = 0;
  const tn = (shape: number[]) => truncatedNormal(root.child(stream++), shape, 0.02);
  const zeros = (shape: number[]) => hostTensor(shape, "f32");
  const full = (shape: number[], v: number) =>
    hostTensor(shape, "f32", new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v));
  const norm = () => ({ scale: full([c.dim], 1), bias: zeros([c.dim]) });
  const hd = c.dim / c.heads, g = c.imageSize / c.patchSize, hidden = 4 * c.dim;

  const embed: Record<string, unknown> = {
    wte: { kernel: tn([c.patchSize, c.patchSize, 3, c.dim]), bias: zeros([c.dim]) },
  };
  if (c.pooling === "cls") embed.cls_token = tn([1, 1, c.dim]);
  if (c.posemb === "learnable") embed.wpe = tn([g, g, c.dim]);

  const model: Record<string, unknown> = { embed };
  for (let i = 0; i < c.layers; i++) {
    const proj = () => ({ kernel: tn([c.dim, c.heads, hd]), bias: zeros([c.heads, hd]) });
    const layer: Record<string, unknown> = {
      norm1: norm(),
      attn: {
        wq: proj(),
        wk: proj(),
        wv: proj(),
        wo: { kernel: tn([c.heads, hd, c.dim]), bias: zeros([c.dim]) },
      },
      norm2: norm(),
      ff: {
        w1: { kernel: tn([c.dim, hidden]), bias: zeros([hidden]) },
        w2: { kernel: tn([hidden, c.dim]), bias: zeros([c.dim]) },
      },
    };
    if (c.layerscale) {
      layer.scale1 = full([c.dim], 1e-4);
      layer.scale2 = full([c.dim], 1e-4);
    }
    model[`layer_${i}`] = layer;
  }
  model.norm = norm();
  if (c.labels !== null) model.head = { kernel: tn([c.dim, c.labels]), bias: zeros([c.labels]) };
  return { model };
}

/**
 * jax.nn.initializers.truncated_normal(stddev): samples of N(0,1) truncated to [-2, 2], scaled by
 * stddev / 0.87962566 (the std of that truncated normal), so the result has std `stddev`.
 */
export function truncatedNormal(rng: Rng, shape: number[], stddev: number): HostTensor {
  const t = hostTensor(shape, "f32");
  const scale = stddev / 0.87962566103423978;
  for (let i = 0; i < t.data.length; i++) {
    let z: number;
    do z = rng.normal(); while (z < -2 || z > 2);
    t.data[i] = z * scale;
  }
  return t;
}
