/**
 * Parameter initialization as deit3-jax/flax: truncated normal (std 0.02, cut at 2 std) for
 * kernels, the cls token and learnable position embeddings; zero biases; LayerNorm scale 1 and
 * bias 0; LayerScale 1e-4. Draws come from the host Rng, so they differ from flax's bits but
 * follow the same distributions; the tree and shapes are identical.
 */
import { type HostTensor, hostTensor } from "../ir/host_tensor.ts";
import { Rng } from "../ir/rng.ts";
import { vitParams } from "./params.ts";
import { checkViTConfig, type ViTConfig } from "./vit.ts";

export function initViT(c: ViTConfig, seed: number): { model: Record<string, unknown> } {
  checkViTConfig(c);
  const root = Rng.fromSeed(seed);
  let stream = 0;
  const fill = (shape: number[], v: number) =>
    hostTensor(shape, "f32", new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v));
  return vitParams(c, (init, shape): HostTensor => {
    switch (init) {
      case "truncated_normal":
        return truncatedNormal(root.child(stream++), shape, 0.02);
      case "zeros":
        return hostTensor(shape, "f32");
      case "ones":
        return fill(shape, 1);
      case "layerscale":
        return fill(shape, 1e-4);
    }
  });
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
