/**
 * WebGPU runtime and planning: donation, freed arrays, argument checks, output copies,
 * zero-size arrays, adapter limits (binding size and storage buffers per kernel), buffer
 * reuse, queued steps, and how many kernels common patterns fuse into.
 */
import { Compiled, evaluate } from "../../../lib/backend/jit.ts";
import { GpuArray, WebGpuBackend } from "../../../lib/backend/webgpu/backend.ts";
import type { GpuExecutable } from "../../../lib/backend/webgpu/executable.ts";
import { hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertAllClose, assertEquals, assertRejects } from "../../assert.ts";
import { webgpuBackend, webgpuGate } from "./gate.ts";

const gpu = await webgpuBackend();
const opts = webgpuGate;
const f32 = (shape: number[], data: number[]) => hostTensor(shape, "f32", data);

async function kernelsOf(fn: (...xs: Tensor[]) => unknown, ...specs: unknown[]) {
  const c = await Compiled.create(gpu, fn, ...specs);
  const labels = (c.executable as GpuExecutable).kernels.map((k) => k.label);
  c.dispose();
  return labels;
}

Deno.test({
  name: "webgpu runtime: donated inputs are consumed; outputs stay correct",
  ...opts,
  fn: async () => {
    const x = f32([4], [1, 2, 3, 4]);
    const c = await Compiled.create(gpu, (p: Tensor) => ops.add(ops.mul(p, 2), 1), x);
    const dev = await gpu.fromHost(x) as GpuArray;
    const out = await c.call([dev], { donate: [true] });
    assert(dev.freed, "the donated array is released");
    assertEquals(Array.from((await gpu.toHost(out)).data), [3, 5, 7, 9]);
    await assertRejects(() => c.call([dev]), /freed or donated/);
    // Chained steps reuse the donated memory: no growth after the first step.
    let p = out;
    const before = gpu.pool.allocatedBytes;
    for (let i = 0; i < 5; i++) p = await c.call([p], { donate: [true] });
    assertEquals(gpu.pool.allocatedBytes, before);
    assertEquals((await gpu.toHost(p)).data[0], 3 * 32 + 31);
    c.dispose();
  },
});

Deno.test({
  name: "webgpu runtime: argument checks name the argument",
  ...opts,
  fn: async () => {
    const c = await Compiled.create(gpu, (a: Tensor) => ops.neg(a), f32([2], [1, 2]));
    const wrong = await gpu.fromHost(f32([3], [1, 2, 3]));
    await assertRejects(() => c.executable.execute([wrong]), /argument 0 is f32\[3\]/);
    await assertRejects(() => c.executable.execute([]), /takes 1 arrays, got 0/);
    const freed = await gpu.fromHost(f32([2], [1, 2]));
    gpu.free(freed);
    await assertRejects(() => c.executable.execute([freed]), /argument 0 .* freed/);
    c.dispose();
  },
});

Deno.test({
  name: "webgpu runtime: outputs that are inputs, constants or repeated are copies",
  ...opts,
  fn: async () => {
    const k = f32([2, 2], [1, 2, 3, 4]);
    const out = await evaluate(gpu, (a: Tensor) => {
      const s = ops.sum(a);
      return [a, ops.constant(k), s, s];
    }, f32([3], [5, 6, 7]));
    assertEquals(Array.from(out[0].data), [5, 6, 7]);
    assertEquals(Array.from(out[1].data), [1, 2, 3, 4]);
    assertEquals([out[2].data[0], out[3].data[0]], [18, 18]);
  },
});

Deno.test({
  name: "webgpu runtime: zero-size arrays and scalar outputs",
  ...opts,
  fn: async () => {
    const out = await evaluate(
      gpu,
      (a: Tensor) => [ops.mul(a, 2), ops.sum(a), ops.constant(7)],
      f32([0, 3], []),
    );
    assertEquals(out[0].shape, [0, 3]);
    assertEquals(out[0].data.length, 0);
    assertEquals([out[1].data[0], out[2].data[0]], [0, 7]);
  },
});

Deno.test({
  name: "webgpu runtime: tensors above the binding size limit are bound as windows",
  ...opts,
  fn: async () => {
    // A 4 KiB limit splits anything above 1024 elements into several bindings.
    const small = await webgpuBackend({ maxBindingBytes: 4096 });
    const { CpuBackend } = await import("../../../lib/backend/cpu/backend.ts");
    const cpu = new CpuBackend();
    const x = hostTensor([40, 100], "f32", Array.from({ length: 4000 }, (_, i) => Math.sin(i)));
    const w = hostTensor([100, 60], "f32", Array.from({ length: 6000 }, (_, i) => Math.cos(i)));
    const fn = (a: Tensor, b: Tensor) => {
      const h = ops.tanh(ops.matmul(a, b)); // [40, 60]: output and both operands split
      return [
        ops.add(h, 1),
        ops.sum(h, 0),
        ops.transpose(a, [1, 0]),
        ops.matmul(ops.transpose(h, [1, 0]), a),
      ];
    };
    const want = await evaluate(cpu, fn, x, w);
    for (
      const be of [
        small,
        await webgpuBackend({ maxBindingBytes: 4096, matmul: "tiled", maxTile: 16 }),
      ]
    ) {
      const got = await evaluate(be, fn, x, w);
      got.forEach((g: { data: Float32Array }, i: number) =>
        assertAllClose(Array.from(g.data), Array.from(want[i].data as Float32Array), { atol: 1e-4 })
      );
      be.dispose();
    }
  },
});

Deno.test({
  name: "webgpu runtime: tensors above the adapter's maxBufferSize fail at compile with the limit",
  ...opts,
  fn: async () => {
    const n = Math.floor(gpu.ctx.limits.maxBufferSize / 4) + 1024;
    await assertRejects(
      () => Compiled.create(gpu, (a: Tensor) => ops.broadcastTo(a, [n]), f32([1], [1])),
      /maxBufferSize/,
    );
  },
});

Deno.test({
  name: "webgpu runtime: a kernel reading more buffers than the adapter binds is split",
  ...opts,
  fn: async () => {
    const max = gpu.ctx.limits.maxStorageBuffersPerShaderStage;
    const n = max + 6;
    const inputs = Array.from({ length: n }, (_, i) => f32([2], [i, 2 * i]));
    const fn = (...xs: Tensor[]) => xs.reduce((acc, x, i) => ops.add(acc, ops.mul(x, i + 1)));
    const c = await Compiled.create(gpu, fn, ...inputs);
    for (const k of (c.executable as GpuExecutable).kernels) {
      assert(k.bindings.length <= max, `${k.label} binds ${k.bindings.length}`);
    }
    const out = await gpu.toHost(await c.call(inputs));
    const want = [0, 1].map((j) => inputs.reduce((s, x, i) => s + x.data[j] * (i + 1), 0));
    assertAllClose(Array.from(out.data), want, { atol: 1e-3 });
    c.dispose();
  },
});

Deno.test({
  name: "webgpu runtime: steps queue without waiting; results come back in order",
  ...opts,
  fn: async () => {
    const c = await Compiled.create(gpu, (a: Tensor) => ops.add(a, 1), f32([3], [0, 0, 0]));
    let x = await gpu.fromHost(f32([3], [0, 1, 2]));
    const seen: Promise<unknown>[] = [];
    for (let i = 0; i < 4; i++) {
      x = await c.call([x]);
      seen.push(gpu.toHost(x));
    }
    const hosts = await Promise.all(seen) as { data: Float32Array }[];
    assertEquals(hosts.map((h) => h.data[0]), [1, 2, 3, 4]);
    c.dispose();
  },
});

Deno.test({
  name: "webgpu fusion: matmul + bias + GELU is one kernel; sum / n is one kernel",
  ...opts,
  fn: async () => {
    const gelu = (z: Tensor) => ops.mul(z, ops.add(ops.tanh(z), 1));
    const k1 = await kernelsOf(
      (x, w, b) => gelu(ops.add(ops.matmul(x, w), ops.broadcastTo(b, [8, 16]))),
      f32([8, 4], Array(32).fill(0)),
      f32([4, 16], Array(64).fill(0)),
      f32([16], Array(16).fill(0)),
    );
    assertEquals(k1.length, 1, k1.join(", "));
    const k2 = await kernelsOf((x) => ops.mean(x), f32([100], Array(100).fill(0)));
    assertEquals(k2.length, 1, k2.join(", "));
  },
});

Deno.test({
  name: "webgpu fusion: an AdamW-style update of param, mu and nu is one 3-output kernel",
  ...opts,
  fn: async () => {
    const z = f32([64], Array(64).fill(0.5));
    const labels = await kernelsOf(
      (p, g, m, v) => {
        const mu = ops.add(ops.mul(g, 0.1), ops.mul(m, 0.9));
        const nu = ops.add(ops.mul(ops.mul(g, g), 0.001), ops.mul(v, 0.999));
        const u = ops.div(mu, ops.add(ops.sqrt(nu), 1e-8));
        return [ops.sub(p, ops.mul(u, 1e-3)), mu, nu];
      },
      z,
      z,
      z,
      z,
    );
    assertEquals(labels.length, 1, labels.join(", "));
    assert(labels[0].includes("3 outputs"), labels[0]);
  },
});

Deno.test({
  name: "webgpu fusion: softmax takes at most four kernels, layer norm at most four",
  ...opts,
  fn: async () => {
    const x = f32([4, 64], Array(256).fill(0.25));
    const soft = await kernelsOf((a) => {
      const e = ops.exp(ops.sub(a, ops.max(a, -1, true)));
      return ops.div(e, ops.sum(e, -1, true));
    }, x);
    assert(soft.length <= 4, soft.join(", "));
    const ln = await kernelsOf((a) => {
      const c = ops.sub(a, ops.mean(a, -1, true));
      return ops.mul(c, ops.rsqrt(ops.add(ops.mean(ops.mul(c, c), -1, true), 1e-6)));
    }, x);
    assert(ln.length <= 4, ln.join(", "));
  },
});

Deno.test({
  name: "webgpu runtime: free returns buffers to the pool for reuse",
  ...opts,
  fn: async () => {
    const t = f32([1000], Array(1000).fill(1));
    const a = await gpu.fromHost(t);
    gpu.free(a);
    const before = gpu.pool.allocatedBytes;
    const b = await gpu.fromHost(t);
    assertEquals(gpu.pool.allocatedBytes, before);
    gpu.free(b);
    gpu.free(b); // freeing twice is harmless
  },
});

Deno.test({
  name: "webgpu runtime: no adapter gives a clear error naming the alternatives",
  ...opts,
  fn: async () => {
    const gpuApi = navigator.gpu as unknown as { requestAdapter: () => Promise<null> };
    const original = gpuApi.requestAdapter;
    gpuApi.requestAdapter = () => Promise.resolve(null);
    try {
      await assertRejects(() => WebGpuBackend.create(), /no GPU adapter found.*--backend cpu/);
    } finally {
      gpuApi.requestAdapter = original;
    }
  },
});

Deno.test({
  name:
    "webgpu runtime: u8 and bool uploads are widened on the device, in windows past the binding limit",
  ...opts,
  fn: async () => {
    // A 4 KiB binding limit: the 5003-byte upload takes several windows and an odd tail.
    const small = await webgpuBackend({ maxBindingBytes: 4096 });
    for (const be of [gpu, small]) {
      for (const n of [1, 3, 4, 7, 5003]) {
        const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 24);
        const a = await be.fromHost(hostTensor([n], "u8", bytes));
        assertEquals(Array.from((await be.toHost(a)).data), Array.from(bytes), `u8[${n}]`);
        be.free(a);
      }
      const flags = Uint8Array.from({ length: 1001 }, (_, i) => i % 3 === 0 ? 1 : 0);
      const b = await be.fromHost(hostTensor([7, 143], "bool", flags));
      // Read through a kernel too: the words the program sees are 0 and 1.
      const sum = await evaluate(be, (x: Tensor) => ops.sum(ops.convert(x, "i32")), {
        shape: [7, 143],
        dtype: "bool",
        data: flags,
      });
      assertEquals(sum.data[0], 334);
      assertEquals(Array.from((await be.toHost(b)).data), Array.from(flags));
      be.free(b);
    }
    small.dispose();
  },
});
