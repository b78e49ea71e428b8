/**
 * WebGPU kernels beyond the shared op table: dot_general layouts (transposed, batched in the
 * middle, tails, vec4 and scalar paths, relayout copies, fused epilogues), integer and
 * conversion semantics, threefry bits, 2-D dispatch grids. Expected values come from the CPU
 * backend (the reference interpreter) on the same graphs, or are stated exactly.
 */
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { evaluate } from "../../../lib/backend/jit.ts";
import type { DType } from "../../../lib/ir/dtype.ts";
import { type HostTensor, hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import { randomBits } from "../../../lib/ir/random.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assertAllClose, assertEquals } from "../../assert.ts";
import { webgpuBackend, webgpuGate } from "./gate.ts";

const cpu = new CpuBackend();
const gpu = await webgpuBackend();
// The GPU strategy with small tiles: its WGSL compiles quickly on llvmpipe.
const tiled = await webgpuBackend({ matmul: "tiled", maxTile: 16 });

const opts = webgpuGate;

function rand(shape: number[], seed: number): HostTensor {
  let s = seed >>> 0;
  const n = shape.reduce((p, d) => p * d, 1);
  return hostTensor(
    shape,
    "f32",
    Array.from({ length: n }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return (s / 2 ** 32) * 2 - 1;
    }),
  );
}

async function sameAsCpu(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: HostTensor[],
  atol: number,
  backends = [gpu, tiled],
): Promise<void> {
  const want = await evaluate(cpu, fn, ...inputs);
  for (const be of backends) {
    const got = await evaluate(be, fn, ...inputs);
    assertEquals(got.shape, want.shape);
    assertEquals(got.dtype, want.dtype);
    assertAllClose(Array.from(got.data), Array.from(want.data), {
      atol,
      msg: be.description,
    });
  }
}

const dims = (lb: number[], rb: number[], lc: number[], rc: number[]) => ({
  lhsBatch: lb,
  rhsBatch: rb,
  lhsContract: lc,
  rhsContract: rc,
});

const DOTS: [string, number[], number[], ReturnType<typeof dims>][] = [
  ["NN 37x20 @ 20x45", [37, 20], [20, 45], dims([], [], [1], [0])],
  ["NN K tail 9x21 @ 21x12", [9, 21], [21, 12], dims([], [], [1], [0])],
  ["NT x @ w^T 33x16, 50x16", [33, 16], [50, 16], dims([], [], [1], [1])],
  ["TN x^T @ y 40x12, 40x8", [40, 12], [40, 8], dims([], [], [0], [0])],
  ["TT 7x5, 9x7", [7, 5], [9, 7], dims([], [], [0], [1])],
  ["K = 1", [6, 1], [1, 10], dims([], [], [1], [0])],
  ["N = 1 (vector)", [12, 8], [8, 1], dims([], [], [1], [0])],
  [
    "attention scores q.k^T, heads in the middle",
    [2, 5, 3, 8],
    [2, 7, 3, 8],
    dims([0, 2], [0, 2], [3], [3]),
  ],
  [
    "attention values p.v, heads in the middle",
    [2, 3, 5, 7],
    [2, 7, 3, 8],
    dims([0, 1], [0, 2], [3], [1]),
  ],
  [
    "weight gradient over two contracted dims",
    [3, 10, 16],
    [3, 10, 24],
    dims([], [], [0, 1], [0, 1]),
  ],
  ["batch 70 of 4x4", [70, 4, 4], [70, 4, 4], dims([0], [0], [2], [1])],
];

for (const [name, sa, sb, d] of DOTS) {
  Deno.test({
    name: `webgpu dot_general: ${name}`,
    ...opts,
    fn: () => sameAsCpu((a, b) => ops.dotGeneral(a, b, d), [rand(sa, 1), rand(sb, 2)], 2e-5),
  });
}

Deno.test({
  name: "webgpu dot_general: fused epilogue (bias, GELU) and residual reading the lhs",
  ...opts,
  fn: async () => {
    const gelu = (z: Tensor) =>
      ops.mul(ops.mul(z, 0.5), ops.add(ops.tanh(ops.mul(z, 0.7978845608)), 1));
    await sameAsCpu(
      (x, w, b) => gelu(ops.add(ops.matmul(x, w), ops.broadcastTo(b, [24, 32]))),
      [rand([24, 16], 3), rand([16, 32], 4), rand([32], 5)],
      2e-5,
    );
    await sameAsCpu(
      (x, w) => ops.add(x, ops.matmul(x, w)),
      [rand([20, 16], 6), rand([16, 16], 7)],
      2e-5,
    );
  },
});

Deno.test({
  name: "webgpu dot_general: both operands from one array (x @ x^T) and a sliced operand",
  ...opts,
  fn: async () => {
    await sameAsCpu(
      (x) => ops.dotGeneral(x, x, dims([], [], [1], [1])),
      [rand([13, 12], 8)],
      2e-5,
    );
    await sameAsCpu(
      (x, w) => ops.matmul(ops.slice(x, [1, 2], [9, 14]), w),
      [rand([10, 16], 9), rand([12, 20], 10)],
      2e-5,
    );
  },
});

Deno.test({
  name: "webgpu: softmax and layer norm chains against the CPU backend",
  ...opts,
  fn: async () => {
    const softmax = (x: Tensor) => {
      const e = ops.exp(ops.sub(x, ops.max(x, -1, true)));
      return ops.div(e, ops.sum(e, -1, true));
    };
    await sameAsCpu(softmax, [rand([3, 4, 17], 11)], 1e-6, [gpu]);
    const layerNorm = (x: Tensor) => {
      const c = ops.sub(x, ops.mean(x, -1, true));
      return ops.mul(c, ops.rsqrt(ops.add(ops.mean(ops.mul(c, c), -1, true), 1e-6)));
    };
    await sameAsCpu(layerNorm, [rand([5, 6, 64], 12)], 2e-6, [gpu]);
  },
});

Deno.test({
  name: "webgpu: reductions over many terms (cooperative) and over middle axes",
  ...opts,
  fn: async () => {
    // The shapes a GPU adapter gets: 256-thread workgroups, cooperative below 8192 outputs.
    const gpuShapes = await webgpuBackend({ workgroupSize: 256, cooperativeBelow: 8192 });
    const both = [gpu, gpuShapes];
    await sameAsCpu((x) => ops.sum(x), [rand([70000], 13)], 2e-3, both);
    await sameAsCpu((x) => ops.max(x, [0, 2]), [rand([30, 5, 40], 14)], 0, both);
    await sameAsCpu((x) => ops.sum(x, [1]), [rand([6, 300, 7], 15)], 1e-4, both);
    await sameAsCpu(
      (x) => ops.div(ops.exp(x), ops.sum(ops.exp(x), -1, true)),
      [rand([9, 1000], 20)],
      1e-6,
      both,
    );
    gpuShapes.dispose();
  },
});

/** Bit patterns as f32 inputs: NaN and infinities included. */
const SPECIAL = hostTensor([8], "f32", [NaN, Infinity, -Infinity, -0, 3e9, -3e9, 300.7, -1.5]);

Deno.test({
  name: "webgpu: convert saturates and truncates like the CPU backend",
  ...opts,
  fn: async () => {
    for (const to of ["i32", "u32", "u8", "bool", "bf16"] as DType[]) {
      await sameAsCpu((x) => ops.convert(x, to), [SPECIAL], 0, [gpu]);
    }
    const ints = hostTensor([6], "i32", [-2147483648, -300, -1, 0, 255, 2147483647]);
    for (const to of ["u32", "u8", "bool", "f32"] as DType[]) {
      await sameAsCpu((x) => ops.convert(x, to), [ints], 0, [gpu]);
    }
    const big = hostTensor([4], "u32", [0, 255, 256, 4294967295]);
    for (const to of ["i32", "u8", "f32"] as DType[]) {
      await sameAsCpu((x) => ops.convert(x, to), [big], 0, [gpu]);
    }
    const bf = hostTensor([4], "bf16", [0x3f80, 0xc040, 0x7fc0, 0x0001]);
    await sameAsCpu((x) => ops.convert(x, "f32"), [bf], 0, [gpu]);
  },
});

Deno.test({
  name: "webgpu: max/min propagate NaN, NaN != x; integer division by zero; shifts of 32 and more",
  ...opts,
  fn: async () => {
    const other = hostTensor([8], "f32", [1, NaN, 0, 0, 1, 1, 1, 1]);
    await sameAsCpu((a, b) => ops.maximum(a, b), [SPECIAL, other], 0, [gpu]);
    await sameAsCpu((a, b) => ops.minimum(a, b), [SPECIAL, other], 0, [gpu]);
    // NaN != anything is true (Vulkan's `!=` is ordered: false for NaN), in scalar and vec4 kernels.
    for (const dir of ["ne", "eq", "lt"] as const) {
      await sameAsCpu((a, b) => ops.compare(a, b, dir), [SPECIAL, other], 0, [gpu]);
    }
    const a = hostTensor([5], "i32", [7, -7, -2147483648, 5, 0]);
    const b = hostTensor([5], "i32", [2, 2, -1, 0, 3]);
    await sameAsCpu((x, y) => ops.div(x, y), [a, b], 0, [gpu]);
    const ua = hostTensor([4], "u32", [7, 0xffffffff, 1, 5]);
    const ub = hostTensor([4], "u32", [0, 2, 31, 32]);
    await sameAsCpu((x, y) => ops.div(x, y), [ua, ub], 0, [gpu]);
    await sameAsCpu((x, y) => ops.shiftLeft(x, y), [ua, ub], 0, [gpu]);
    await sameAsCpu((x, y) => ops.shiftRightLogical(x, y), [ua, ub], 0, [gpu]);
    const sb = hostTensor([4], "i32", [1, 31, 32, -1]);
    const sa = hostTensor([4], "i32", [-8, -8, -8, -8]);
    await sameAsCpu((x, y) => ops.shiftRightLogical(x, y), [sa, sb], 0, [gpu]);
  },
});

Deno.test({
  name: "webgpu: u8 and bool arithmetic wraps at 8 bits; not",
  ...opts,
  fn: async () => {
    const a = hostTensor([4], "u8", [200, 10, 0, 255]);
    const b = hostTensor([4], "u8", [100, 20, 1, 255]);
    for (const f of [ops.add, ops.sub, ops.mul, ops.shiftLeft]) {
      await sameAsCpu((x, y) => f(x, y), [a, b], 0, [gpu]);
    }
    await sameAsCpu((x) => ops.not(x), [a], 0, [gpu]);
    const p = hostTensor([3], "bool", [1, 0, 1]);
    await sameAsCpu((x) => ops.not(x), [p], 0, [gpu]);
    await sameAsCpu((x) => ops.sum(ops.convert(x, "u8")), [a], 0, [gpu]);
  },
});

Deno.test({
  name: "webgpu: threefry bits over 1001 draws equal the CPU backend's",
  ...opts,
  fn: async () => {
    const key = hostTensor([2], "u32", [0x13198a2e, 0x03707344]);
    await sameAsCpu((k) => randomBits(k, [7, 11, 13]), [key], 0, [gpu]);
  },
});

Deno.test({
  name: "webgpu: more than 65535 workgroups use a 2-D grid",
  ...opts,
  fn: async () => {
    const n = 65536 * 64 + 3;
    const out = await evaluate(gpu, () => ops.convert(ops.iota([n], 0, "u32"), "i32"));
    assertEquals(out.data.length, n);
    assertEquals([out.data[0], out.data[65535 * 64], out.data[n - 1]], [0, 65535 * 64, n - 1]);
  },
});

Deno.test({
  name: "webgpu: vec4 map kernels (broadcasts keeping or dropping the last dim, lanes, helpers)",
  ...opts,
  fn: async () => {
    const x = rand([64, 32], 16), bias = rand([32], 17), col = rand([64, 1], 18);
    // NaN lanes exercise the vec4 max/min helpers.
    const y = { ...rand([64, 32], 19) };
    (y.data as Float32Array)[5] = NaN;
    await sameAsCpu(
      (a, b, c, d) => {
        const t = ops.add(ops.mul(a, ops.broadcastTo(b, [64, 32])), ops.broadcastTo(c, [64, 32]));
        const u = ops.add(ops.tanh(t), ops.erf(ops.mul(t, 0.5)));
        const v = ops.maximum(ops.minimum(u, d), ops.transpose(ops.reshape(a, [32, 64]), [1, 0]));
        return ops.where(ops.gt(v, 0.1), ops.mul(v, 2), ops.sub(ops.exp(v), 1));
      },
      [x, bias, col, y],
      1e-6,
      [gpu],
    );
    // Integer paths: u8 wraps, int division by zero, converts with and without lanes.
    const n = 1024;
    const a8 = hostTensor([n], "u8", Array.from({ length: n }, (_, i) => (i * 37) % 256));
    const b8 = hostTensor([n], "u8", Array.from({ length: n }, (_, i) => (i * 11) % 256));
    await sameAsCpu((p, q) => ops.add(ops.mul(p, q), ops.shiftLeft(p, 3)), [a8, b8], 0, [gpu]);
    await sameAsCpu(
      (p, q) => ops.div(ops.convert(p, "i32"), ops.convert(q, "i32")),
      [a8, b8],
      0,
      [gpu],
    );
    const f = hostTensor([n], "f32", Array.from({ length: n }, (_, i) => (i - 500) * 7.3));
    await sameAsCpu((p) => ops.convert(p, "u8"), [f], 0, [gpu]);
    await sameAsCpu((p) => ops.convert(ops.convert(p, "i32"), "f32"), [f], 0, [gpu]);
  },
});
