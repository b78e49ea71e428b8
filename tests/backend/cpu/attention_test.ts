/**
 * The fused attention primitives (lib/ir/attention.ts) on the CPU backend: the reference
 * kernels against the unfused softmax path (nn.softmax and two dot_generals), the fused
 * executable's kernel (GEMM + wasm SIMD rows, one thread and the pool) against the reference,
 * the decomposed forms (what StableHLO and WebGPU run) against the primitives, and gradients
 * of the fused path against the unfused path's.
 */
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { Compiled, evaluate } from "../../../lib/backend/jit.ts";
import type { CpuExecutable } from "../../../lib/backend/cpu/array.ts";
import type { FusedExecutable } from "../../../lib/backend/cpu/executable.ts";
import type { DeviceArray } from "../../../lib/backend/backend.ts";
import { flatten } from "../../../lib/ir/pytree.ts";
import { WorkerPool } from "../../../lib/backend/cpu/threads.ts";
import { valueAndGrad } from "../../../lib/autodiff/grad.ts";
import {
  attention,
  attentionDecomposed,
  attentionGrad,
  attentionGradDecomposed,
  attentionPacked,
} from "../../../lib/ir/attention.ts";
import { type HostTensor, hostTensor } from "../../../lib/ir/host_tensor.ts";
import { softmax } from "../../../lib/ir/nn.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assertAllClose, assertEquals, assertThrows } from "../../assert.ts";

const reference = new CpuBackend({ mode: "reference" });
const fused = new CpuBackend({ mode: "fused" });
const single = new CpuBackend({ mode: "fused", threads: false });

function rand(shape: number[], seed: number, amp = 1): HostTensor {
  let s = seed * 2654435761 >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  return hostTensor(
    shape,
    "f32",
    Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * amp),
  );
}

/** The unfused path of the ViT before the fused primitive. */
function unfused(q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  const s = ops.dotGeneral(ops.mul(q, scale), k, {
    lhsBatch: [0, 1],
    rhsBatch: [0, 1],
    lhsContract: [3],
    rhsContract: [3],
  });
  return ops.dotGeneral(softmax(s, -1), v, {
    lhsBatch: [0, 1],
    rhsBatch: [0, 1],
    lhsContract: [3],
    rhsContract: [2],
  });
}

const weights = (t: Tensor) => ops.constant(rand(t.shape as number[], 99 + t.size % 7, 2));

// [b, h, n, m, d]: tails of the 4-wide loops, several row blocks (m * rows > 64 Ki), n != m
const SHAPES = [[1, 1, 1, 1, 1], [2, 3, 13, 11, 5], [1, 2, 300, 300, 8], [2, 1, 7, 29, 16]];

for (const [b, h, n, m, d] of SHAPES) {
  const q = rand([b, h, n, d], 1, 3), k = rand([b, h, m, d], 2, 3), v = rand([b, h, m, d], 3);
  const scale = 1 / Math.sqrt(d);
  const name = `[${b},${h},${n},${m},${d}]`;

  Deno.test(`attention ${name}: reference kernel = unfused softmax path, lse = logsumexp`, async () => {
    const got = await evaluate(reference, (a, c, e) => attentionPacked(a, c, e, scale), q, k, v);
    const want = await evaluate(reference, (a, c, e) => unfused(a, c, e, scale), q, k, v);
    const o = got.data.filter((_: number, i: number) => i % (d + 1) !== d);
    assertAllClose(o, want.data, { atol: 2e-6, rtol: 1e-5, msg: "output" });
    // lse by hand in f64
    const lse: number[] = [];
    for (let bh = 0; bh < b * h; bh++) {
      for (let i = 0; i < n; i++) {
        const s = Array.from({ length: m }, (_, j) => {
          let dot = 0;
          for (let e = 0; e < d; e++) {
            dot += q.data[(bh * n + i) * d + e] * k.data[(bh * m + j) * d + e];
          }
          return dot * scale;
        });
        const mx = Math.max(...s);
        lse.push(mx + Math.log(s.reduce((a, x) => a + Math.exp(x - mx), 0)));
      }
    }
    const gotLse = got.data.filter((_: number, i: number) => i % (d + 1) === d);
    assertAllClose(gotLse, lse, { atol: 1e-5, rtol: 1e-6, msg: "lse" });
  });

  Deno.test(`attention ${name}: fused kernels = reference kernels (one thread and the pool)`, async () => {
    const fwd = (a: Tensor, c: Tensor, e: Tensor) => attentionPacked(a, c, e, scale);
    const bwd = (a: Tensor, c: Tensor, e: Tensor, gg: Tensor) =>
      attentionGrad(a, c, e, attentionPacked(a, c, e, scale), gg, scale);
    const wantF = await evaluate(reference, fwd, q, k, v);
    for (const be of [single, fused]) {
      assertAllClose((await evaluate(be, fwd, q, k, v)).data, wantF.data, {
        atol: 2e-6,
        rtol: 2e-5,
        msg: "forward",
      });
    }
    // the cotangent with the lse's column, and the output's alone
    for (const g of [rand([b, h, n, d + 1], 4), rand([b, h, n, d], 6)]) {
      const wantB = await evaluate(reference, bwd, q, k, v, g);
      for (const be of [single, fused]) {
        assertAllClose((await evaluate(be, bwd, q, k, v, g)).data, wantB.data, {
          atol: 1e-5,
          rtol: 1e-4,
          msg: `backward, g [${g.shape}]`,
        });
      }
    }
  });

  Deno.test(`attention ${name}: decomposed forms = primitives`, async () => {
    const g = rand([b, h, n, d + 1], 5);
    const want = await evaluate(
      reference,
      (a, c, e, gg) => {
        const o = attentionPacked(a, c, e, scale);
        return [o, attentionGrad(a, c, e, o, gg, scale)];
      },
      q,
      k,
      v,
      g,
    );
    const got = await evaluate(
      reference,
      (a, c, e, gg) => {
        const o = attentionDecomposed(a, c, e, scale);
        return [o, attentionGradDecomposed(a, c, e, o, gg, scale)];
      },
      q,
      k,
      v,
      g,
    );
    assertAllClose(got[0].data, want[0].data, { atol: 2e-6, rtol: 1e-5, msg: "forward" });
    assertAllClose(got[1].data, want[1].data, { atol: 1e-5, rtol: 1e-4, msg: "backward" });
  });

  Deno.test(`attention ${name}: gradients = the unfused path's`, async () => {
    const loss = (f: typeof unfused) => (p: Tensor[]) => {
      const o = f(p[0], p[1], p[2], scale);
      return ops.sum(ops.mul(o, weights(o)));
    };
    for (const be of [reference, fused]) {
      const [, want] = await evaluate(
        be,
        (...p: Tensor[]) => valueAndGrad(loss(unfused))(p),
        q,
        k,
        v,
      );
      const [, got] = await evaluate(
        be,
        (...p: Tensor[]) => valueAndGrad(loss(attention))(p),
        q,
        k,
        v,
      );
      for (let i = 0; i < 3; i++) {
        assertAllClose(got[i].data, want[i].data, { atol: 2e-5, rtol: 1e-4, msg: `d${"qkv"[i]}` });
      }
    }
  });
}

Deno.test("attention: shape errors name the operand", () => {
  const q = ops.input(0, "q", [1, 2, 3, 4], "f32");
  assertThrows(() => attention(q, ops.input(1, "k", [1, 2, 3, 5], "f32"), q, 1), /k \[1,2,3,5\]/);
  assertThrows(() => attention(ops.input(2, "x", [2, 3, 4], "f32"), q, q, 1), /q must be f32/);
});

Deno.test("attention: the kernels run fused, split across the pool on later calls, same results", async () => {
  const [b, h, n, d] = [4, 3, 37, 8];
  const q = rand([b, h, n, d], 7), k = rand([b, h, n, d], 8), v = rand([b, h, n, d], 9);
  const fn = (p: Tensor[]) => {
    const o = attention(p[0], p[1], p[2], 0.3);
    return ops.sum(ops.mul(o, weights(o)));
  };
  const step = (...p: Tensor[]) => valueAndGrad(fn)(p);
  const compiled = await Compiled.create(fused, step, q, k, v);
  try {
    const exe = (compiled.executable as CpuExecutable).replicas[0] as FusedExecutable;
    assertEquals(exe.stats.attention, 2);
    const first = await hostOf(fused, await compiled.call([q, k, v]));
    const jobs = WorkerPool.shared()?.counts.jobs ?? 0;
    // the pool times a whole run first, then splits (WorkerPool.job)
    for (let i = 0; i < 4; i++) {
      const again = await hostOf(fused, await compiled.call([q, k, v]));
      again.forEach((t, j) =>
        assertEquals([...t.data], [...first[j].data], `call ${i}, output ${j}`)
      );
    }
    if (exe.stats.threads > 1) {
      assertEquals(exe.stats.threadedAttention, 2);
      const split = WorkerPool.shared()!.counts.jobs - jobs;
      assertEquals(split >= 2, true, `${split} split jobs`);
    }
  } finally {
    compiled.dispose();
  }
});

async function hostOf(be: CpuBackend, out: unknown): Promise<HostTensor[]> {
  const { leaves } = flatten<DeviceArray>(out);
  const host = await Promise.all(leaves.map((l) => be.toHost(l)));
  for (const l of leaves) be.free(l);
  return host;
}
