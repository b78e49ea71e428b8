import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { evaluate } from "../../lib/backend/jit.ts";
import { trace } from "../../lib/ir/graph.ts";
import { hostTensor } from "../../lib/ir/host_tensor.ts";
import { leavesWithPaths } from "../../lib/ir/pytree.ts";
import { initViT } from "../../lib/model/init.ts";
import { sincos2d, type ViTConfig, vitForward } from "../../lib/model/vit.ts";
import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import { assert, assertAllClose, assertEquals, assertThrows } from "../assert.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { valueAndGrad } from "../../lib/autodiff/grad.ts";
import * as ops from "../../lib/ir/ops.ts";

const VIT_A: ViTConfig = {
  layers: 2,
  dim: 64,
  heads: 4,
  labels: 10,
  layerscale: true,
  patchSize: 4,
  imageSize: 32,
  posemb: "learnable",
  pooling: "cls",
  dropout: 0,
  droppath: 0,
  gradCkpt: false,
};

Deno.test("initViT builds the reference parameter tree with flax's shapes", async () => {
  const ref = await readFlaxMsgpackFile(
    new URL("../fixtures/reference/vit-a/params.msgpack", import.meta.url).pathname,
  );
  const ours = leavesWithPaths<{ shape: number[] }>(initViT(VIT_A, 0)).map((
    [p, t],
  ) => [p, t.shape]);
  const theirs = leavesWithPaths<{ shape: number[] }>(ref).map(([p, t]) => [p, t.shape]);
  assertEquals(ours, theirs);
});

Deno.test("init statistics: truncated normal std 0.02, layerscale 1e-4, zero biases", () => {
  const p = initViT({ ...VIT_A, dim: 128, heads: 4 }, 3) as any;
  const k = p.model.layer_0.ff.w1.kernel.data as Float32Array;
  let s = 0, s2 = 0, max = 0;
  for (const v of k) {
    s += v;
    s2 += v * v;
    max = Math.max(max, Math.abs(v));
  }
  const std = Math.sqrt(s2 / k.length - (s / k.length) ** 2);
  assert(Math.abs(std - 0.02) < 0.001, `std ${std}`);
  assert(max <= 2 * 0.02 / 0.87962566 + 1e-6, `max ${max}`);
  assertEquals(p.model.layer_0.scale1.data[5], Math.fround(1e-4));
  assertEquals(Array.from(p.model.layer_0.ff.w1.bias.data).every((v) => v === 0), true);
});

Deno.test("gap pooling, sincos2d and no layerscale drop the unused parameters", () => {
  const p = initViT({ ...VIT_A, pooling: "gap", posemb: "sincos2d", layerscale: false }, 0) as any;
  assertEquals("cls_token" in p.model.embed, false);
  assertEquals("wpe" in p.model.embed, false);
  assertEquals("scale1" in p.model.layer_0, false);
});

Deno.test("sincos2d follows fixed_sincos2d_embeddings", () => {
  const e = sincos2d(2, 3, 8); // dim/4 = 2 frequencies: 1 and 1/10000
  // position (y=1, x=2): [sin(2), sin(2e-4), cos(2), cos(2e-4), sin(1), sin(1e-4), cos(1), cos(1e-4)]
  const o = (1 * 3 + 2) * 8;
  assertAllClose(Array.from(e.slice(o, o + 8)), [
    Math.sin(2),
    Math.sin(2e-4),
    Math.cos(2),
    Math.cos(2e-4),
    Math.sin(1),
    Math.sin(1e-4),
    Math.cos(1),
    Math.cos(1e-4),
  ], { atol: 1e-7 });
});

Deno.test("config errors name the key at trace time", () => {
  const spec = { shape: [1, 32, 32, 3], dtype: "f32" as const };
  assertThrows(
    () => trace((x: Tensor) => vitForward({ ...VIT_A, heads: 5 }, {}, x, { det: true }), spec),
    "dim (64) must be divisible by heads (5)",
  );
  assertThrows(
    () =>
      trace(
        (x: Tensor) => vitForward({ ...VIT_A, patchSize: 5 }, {}, x, { det: true }),
        spec,
      ),
    "image-size (32) must be divisible by patch-size (5)",
  );
  assertThrows(
    () => trace((x: Tensor) => ops.add(x, ops.zeros([2, 3])), spec),
    "add: shapes [1,32,32,3] and [2,3] cannot broadcast",
  );
});

Deno.test("droppath is per sample and grad-ckpt gives the same gradients", async () => {
  const cfg = { ...VIT_A, layers: 1, droppath: 0.5, dim: 32, heads: 2 };
  const params = initViT(cfg, 1);
  const x = hostTensor(
    [4, 32, 32, 3],
    "f32",
    Array.from({ length: 4 * 32 * 32 * 3 }, (_, i) => Math.sin(i)),
  );
  const key = hostTensor([2], "u32", [0, 7]);
  const lossOf = (c: ViTConfig) => (p: unknown, xx: Tensor, k: Tensor) =>
    valueAndGrad((q: unknown) => ops.sum(vitForward(c, q, xx, { det: false, key: k })))(p);
  const plain = await evaluate(new CpuBackend(), lossOf(cfg), params, x, key);
  const ckpt = await evaluate(new CpuBackend(), lossOf({ ...cfg, gradCkpt: true }), params, x, key);
  assertAllClose(plain[0].data, ckpt[0].data, { atol: 1e-6 });
  const a = leavesWithPaths<any>(plain[1]), b = leavesWithPaths<any>(ckpt[1]);
  a.forEach(([p, t], i) => assertAllClose(t.data, b[i][1].data, { atol: 1e-6, msg: p }));
});
