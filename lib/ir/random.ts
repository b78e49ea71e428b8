/**
 * Counter-based random numbers inside traced programs: threefry2x32 built from u32 ops, with
 * JAX's (non-partitionable) conventions for bits, split and fold_in. Every backend therefore
 * draws identical bits. Keys are u32[2] tensors.
 */
import * as ops from "./ops.ts";
import { ROTATIONS_A, ROTATIONS_B } from "./threefry.ts";
import type { Tensor } from "./tensor.ts";

/** Threefry2x32 over equal-shaped u32 counter halves. */
export function threefry2x32(key: Tensor, c0: Tensor, c1: Tensor): [Tensor, Tensor] {
  checkKey(key);
  const shape = c0.shape;
  const k0 = ops.broadcastTo(ops.reshape(ops.sliceAxis(key, 0, 0, 1), []), shape);
  const k1 = ops.broadcastTo(ops.reshape(ops.sliceAxis(key, 0, 1, 2), []), shape);
  const ks = [k0, k1, ops.xor(ops.xor(k0, k1), 0x1bd11bda)];
  let x0 = ops.add(c0, ks[0]);
  let x1 = ops.add(c1, ks[1]);
  for (let group = 0; group < 5; group++) {
    for (const r of group % 2 === 0 ? ROTATIONS_A : ROTATIONS_B) {
      x0 = ops.add(x0, x1);
      x1 = ops.or(ops.shiftLeft(x1, r), ops.shiftRightLogical(x1, 32 - r));
      x1 = ops.xor(x1, x0);
    }
    x0 = ops.add(x0, ks[(group + 1) % 3]);
    x1 = ops.add(ops.add(x1, ks[(group + 2) % 3]), group + 1);
  }
  return [x0, x1];
}

/** u32 random bits of `shape` (jax.random.bits with threefry, partitionable off). */
export function randomBits(key: Tensor, shape: readonly number[]): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const half = Math.ceil(n / 2);
  let counts = ops.iota([n], 0, "u32");
  if (n % 2 === 1) counts = ops.concatenate([counts, ops.zeros([1], "u32")], 0);
  const [y0, y1] = threefry2x32(
    key,
    ops.sliceAxis(counts, 0, 0, half),
    ops.sliceAxis(counts, 0, half, 2 * half),
  );
  const bits = ops.sliceAxis(ops.concatenate([y0, y1], 0), 0, 0, n);
  return ops.reshape(bits, shape);
}

/** `num` new keys as a u32[num, 2] tensor (jax.random.split). */
export function split(key: Tensor, num = 2): Tensor {
  return ops.reshape(randomBits(key, [num * 2]), [num, 2]);
}

/** Key i of a split, as u32[2]. */
export function splitKey(key: Tensor, num: number, i: number): Tensor {
  return ops.reshape(ops.sliceAxis(split(key, num), 0, i, i + 1), [2]);
}

/** jax.random.fold_in(key, data) for a static 32-bit `data`. */
export function foldIn(key: Tensor, data: number): Tensor {
  const [y0, y1] = threefry2x32(
    key,
    ops.constant(0, "u32", [1]),
    ops.constant(data >>> 0, "u32", [1]),
  );
  return ops.concatenate([y0, y1], 0);
}

/** Uniform f32 in [lo, hi): 23 random mantissa bits, as JAX. */
export function uniform(key: Tensor, shape: readonly number[], lo = 0, hi = 1): Tensor {
  const bits = ops.shiftRightLogical(randomBits(key, shape), 9);
  const u = ops.mul(ops.convert(bits, "f32"), 2 ** -23);
  return lo === 0 && hi === 1 ? u : ops.add(ops.mul(u, hi - lo), lo);
}

/** Bool tensor, true with probability `p`. */
export function bernoulli(key: Tensor, p: number, shape: readonly number[]): Tensor {
  return ops.lt(uniform(key, shape), p);
}

function checkKey(key: Tensor): void {
  if (key.dtype !== "u32" || key.shape.length !== 1 || key.shape[0] !== 2) {
    throw new Error(`random: a key is u32[2], got ${key.dtype}[${key.shape}]`);
  }
}
