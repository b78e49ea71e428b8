/**
 * The fused attention kernels on WebGPU (lib/backend/webgpu/attention.ts): the packed forward
 * (output and lse) and the gradient (dq, dk, dv; the cotangent with the lse's column and without)
 * against the CPU backend on the same graphs, at the CPU attention tests' tolerances; gradients of
 * the fused path on WebGPU against the unfused softmax path's on the CPU; the decomposed fallback
 * for head dims the kernels do not serve; and the plan of a ViT-S/16 step, which holds no
 * [B, heads, N, N] buffer (while the expanded form's does).
 */
import { GPU_80GB, planTrainStep, VIT_S16 } from "../../../bench/webgpu.ts";
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { Compiled, evaluate } from "../../../lib/backend/jit.ts";
import type { GpuExecutable } from "../../../lib/backend/webgpu/executable.ts";
import { fusedAttentionFits, tileRows } from "../../../lib/backend/webgpu/attention.ts";
import { adapterProfile } from "../../../lib/backend/webgpu/device.ts";
import { compilePlan } from "../../../lib/backend/webgpu/memory.ts";
import { valueAndGrad } from "../../../lib/autodiff/grad.ts";
import {
  attention,
  attentionGrad,
  attentionPacked,
  expandAttention,
} from "../../../lib/ir/attention.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { type HostTensor, hostTensor } from "../../../lib/ir/host_tensor.ts";
import { softmax } from "../../../lib/ir/nn.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertAllClose, assertEquals } from "../../assert.ts";
import { webgpuBackend, webgpuGate } from "./gate.ts";

const cpu = new CpuBackend();
const gpu = await webgpuBackend();
// The GPU kernels (tiles in workgroup memory between barriers) on this adapter; llvmpipe compiles
// them slowly, so only small head dims run them here.
const tiled = await webgpuBackend({ matmul: "tiled" });

function rand(shape: number[], seed: number, amp = 1): HostTensor {
  let s = seed * 2654435761 >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  return hostTensor(
    shape,
    "f32",
    Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * amp),
  );
}

const QK = { lhsBatch: [0, 1], rhsBatch: [0, 1], lhsContract: [3], rhsContract: [3] };
const PV = { lhsBatch: [0, 1], rhsBatch: [0, 1], lhsContract: [3], rhsContract: [2] };

/** The ViT's attention before the fused primitive. */
function unfused(q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  return ops.dotGeneral(softmax(ops.dotGeneral(ops.mul(q, scale), k, QK), -1), v, PV);
}

// [b, h, n, m, d]: one of everything; tails of the vec4 lanes and of the row tiles, n != m;
// ViT-S/16's 197 tokens and 64-wide heads over several tiles. (Head dims up to 128 run the same
// code; llvmpipe takes tens of seconds to compile a 128-wide gradient kernel, so none here.)
// Several tiles of streamed and of own rows (64 each here) with tails: [1, 2, 150, 70, 8].
const SHAPES = [
  [1, 1, 1, 1, 1],
  [2, 3, 13, 11, 5],
  [2, 1, 7, 29, 16],
  [1, 2, 150, 70, 8],
  [2, 6, 197, 197, 64],
  [1, 2, 70, 65, 32],
];

for (const [b, h, n, m, d] of SHAPES) {
  const q = rand([b, h, n, d], 1, 3), k = rand([b, h, m, d], 2, 3), v = rand([b, h, m, d], 3);
  const scale = 1 / Math.sqrt(d);
  const name = `[${b},${h},${n},${m},${d}]`;
  const fwd = (a: Tensor, c: Tensor, e: Tensor) => attentionPacked(a, c, e, scale);
  const bwd = (a: Tensor, c: Tensor, e: Tensor, gg: Tensor) =>
    attentionGrad(a, c, e, attentionPacked(a, c, e, scale), gg, scale);

  Deno.test({
    name: `webgpu attention ${name}: output, lse and dq, dk, dv = the CPU backend's, fused`,
    ...webgpuGate,
    fn: async () => {
      const want = await evaluate(cpu, fwd, q, k, v);
      const isLse = (i: number) => i % (d + 1) === d;
      const part = (t: HostTensor, lse: boolean) => [...t.data].filter((_, i) => isLse(i) === lse);
      const gs = [rand([b, h, n, d + 1], 4), rand([b, h, n, d], 6)];
      const wantB = await Promise.all(gs.map((g) => evaluate(cpu, bwd, q, k, v, g)));
      for (const be of d <= 16 ? [gpu, tiled] : [gpu]) {
        const got = await evaluate(be, fwd, q, k, v);
        const tol = { atol: 2e-6, rtol: 2e-5 };
        assertAllClose(part(got, false), part(want, false), {
          ...tol,
          msg: `output, ${be.description}`,
        });
        assertAllClose(part(got, true), part(want, true), {
          ...tol,
          msg: `lse, ${be.description}`,
        });
        // the cotangent with the lse's column, and the output's alone (the lse read by nothing)
        for (const [j, g] of gs.entries()) {
          const gotB = await evaluate(be, bwd, q, k, v, g);
          assertEquals(gotB.shape, [b, h, n + 2 * m, d]);
          assertAllClose(gotB.data, wantB[j].data, {
            atol: 1e-5,
            rtol: 1e-4,
            msg: `dq, dk, dv with g [${g.shape}], ${be.description}`,
          });
        }
        // and no kernel stored anything of the scores' size
        const exe = await be.compile(trace(bwd, q, k, v, gs[1]).graph);
        try {
          const kernels = (exe as GpuExecutable).kernels;
          assertEquals(kernels.filter((x) => x.label.startsWith("attention")).length, 2);
          if (n * m > (n + 2 * m) * d) {
            const big = kernels.flatMap((x) => x.bindings).filter((t) => t.size >= b * h * n * m);
            assertEquals(big.map(String), []);
          }
        } finally {
          exe.dispose();
        }
      }
    },
  });
}

Deno.test({
  name: "webgpu attention: gradients of the fused path = the unfused path's on the CPU",
  ...webgpuGate,
  fn: async () => {
    const [b, h, n, d] = [2, 3, 37, 16];
    const q = rand([b, h, n, d], 7), k = rand([b, h, n, d], 8), v = rand([b, h, n, d], 9);
    const w = ops.constant(rand([b, h, n, d], 10, 2));
    const loss = (f: typeof unfused) => (p: Tensor[]) =>
      ops.sum(ops.mul(f(p[0], p[1], p[2], 0.25), w));
    const step = (f: typeof unfused) => (...p: Tensor[]) => valueAndGrad(loss(f))(p);
    const [wantLoss, want] = await evaluate(cpu, step(unfused), q, k, v);
    const [gotLoss, got] = await evaluate(gpu, step(attention), q, k, v);
    assertAllClose(gotLoss.data, wantLoss.data, { atol: 1e-5, rtol: 1e-5, msg: "loss" });
    for (let i = 0; i < 3; i++) {
      assertAllClose(got[i].data, want[i].data, { atol: 2e-5, rtol: 1e-4, msg: `d${"qkv"[i]}` });
    }
  },
});

Deno.test({
  name: "webgpu attention: a head dim above 128 runs the decomposed form, same results",
  ...webgpuGate,
  fn: async () => {
    const [b, h, n, d] = [1, 2, 9, 130];
    const q = rand([b, h, n, d], 11, 3), k = rand([b, h, n, d], 12, 3), v = rand([b, h, n, d], 13);
    const g = rand([b, h, n, d], 14);
    const fn = (a: Tensor, c: Tensor, e: Tensor, gg: Tensor) => {
      const o = attentionPacked(a, c, e, 0.1);
      return [o, attentionGrad(a, c, e, o, gg, 0.1)];
    };
    const want = await evaluate(cpu, fn, q, k, v, g);
    const compiled = await Compiled.create(gpu, fn, q, k, v, g);
    const labels = (compiled.executable as GpuExecutable).kernels.map((x) => x.label);
    assert(!labels.some((l) => l.startsWith("attention")), labels.join(" "));
    const got = await evaluate(gpu, fn, q, k, v, g);
    assertAllClose(got[0].data, want[0].data, { atol: 2e-6, rtol: 2e-5, msg: "forward" });
    assertAllClose(got[1].data, want[1].data, { atol: 1e-5, rtol: 1e-4, msg: "backward" });
  },
});

Deno.test("webgpu attention: tiles follow the adapter's workgroup memory; the fallback's bounds", () => {
  const tuning = (bytes: number) =>
    adapterProfile({ ...GPU_80GB.limits, maxComputeWorkgroupStorageSize: bytes }, false).tuning;
  assertEquals(tileRows(64, 49152), 64); // two 64 x 64 f32 tiles and 64 row terms: 33,280 bytes
  assertEquals(tileRows(64, 32768), 32);
  assertEquals(tileRows(64, 16384), 16); // WebGPU's guaranteed minimum
  assertEquals(tileRows(5, 16384), 64);
  assert(fusedAttentionFits(128, tuning(16384)));
  assert(!fusedAttentionFits(129, tuning(49152)));
  assert(fusedAttentionFits(64, tuning(1024))); // one row per tile: slow, still no scores stored
  assert(!fusedAttentionFits(64, tuning(512)));
});

Deno.test("webgpu plan: a ViT-S/16 step allocates no [batch, heads, N, N] buffer (the expanded form does)", () => {
  const batch = 2, heads = VIT_S16.heads, tokens = 197;
  const scoresShaped = (plan: ReturnType<typeof compilePlan>) =>
    // any layout of batch x heads x N x N scores (197 is prime: nothing else divides by 197^2)
    plan.kernels.flatMap((k) => k.bindings).filter((t) =>
      t.size % (tokens * tokens) === 0 && t.size >= batch * heads * tokens * tokens
    );
  const fused = planTrainStep(VIT_S16, batch, GPU_80GB);
  assertEquals(fused.kernels.filter((k) => k.label.startsWith("attention")).length, 24);
  assertEquals(scoresShaped(fused).map(String), []);
  // the control: the same step with attention expanded into primitive ops holds them
  const expanded = compilePlan(expandAttention(fused.graph), GPU_80GB);
  assert(scoresShaped(expanded).length > 0);
});
