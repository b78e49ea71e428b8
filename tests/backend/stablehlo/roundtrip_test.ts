/**
 * Numbers without XLA: emitted programs are parsed back (tests/backend/stablehlo/parse/parse.ts reads
 * each op by its StableHLO meaning) and run on the CPU backend. The op table's independently
 * computed values must come out, and whole programs (gradients, a ViT training step with
 * threefry dropout, Mixup and LAMB, rematerialization) must give the same bits as the graph
 * they were emitted from.
 */
import { expandAttention } from "../../../lib/ir/attention.ts";
import { checkpoint } from "../../../lib/autodiff/checkpoint.ts";
import { valueAndGrad } from "../../../lib/autodiff/grad.ts";
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { type EmitOptions, emitStableHlo } from "../../../lib/backend/stablehlo/emit.ts";
import { exportTrainStep } from "../../../lib/train/export.ts";
import { paramSpecs } from "../../../lib/model/params.ts";
import { vitConfigOf } from "../../../lib/train/run_config.ts";
import { parseStableHlo } from "./parse/parse.ts";
import { resolveConfig } from "../../../lib/config/mod.ts";
import type { Graph } from "../../../lib/ir/graph.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { type HostTensor, hostTensor, numel } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import { leavesWithPaths } from "../../../lib/ir/pytree.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { bf16ToF32, f32ToBf16 } from "../../../lib/ir/dtype.ts";
import { assert, assertAllClose, assertEquals, assertThrows } from "../../assert.ts";
import { OP_CASES } from "../op_table.ts";
import { GRAD_CASES } from "../grad_table.ts";
import { mlpSpecs, mlpTrainStep } from "./mlp.ts";

const cpu = new CpuBackend();

async function run(graph: Graph, inputs: HostTensor[], backend = cpu): Promise<HostTensor[]> {
  const exe = await backend.compile(graph);
  const outs = await exe.execute(await Promise.all(inputs.map((t) => backend.fromHost(t))));
  return await Promise.all(outs.map((o) => backend.toHost(o)));
}

function roundTrip(graph: Graph, options?: EmitOptions): Graph {
  return parseStableHlo(emitStableHlo(graph, options)).graph;
}

for (const c of OP_CASES) {
  Deno.test(`stablehlo round trip: op ${c.name}`, async () => {
    const { graph } = trace(c.fn, ...c.inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })));
    const [out] = await run(roundTrip(graph), c.inputs);
    assertEquals(out.shape, c.expectedShape);
    assertEquals(out.dtype, c.expectedDtype ?? "f32");
    assertAllClose(Array.from(out.data), Array.from(c.expected), { atol: c.atol ?? 0 });
  });
}

Deno.test("stablehlo round trip: u32 and i32 compares keep their signedness", async () => {
  const a = hostTensor([3], "u32", [0x80000000, 1, 0xffffffff]);
  const b = hostTensor([3], "u32", [1, 0x80000000, 0xfffffffe]);
  const { graph } = trace(
    (x: Tensor, y: Tensor) => [
      ops.lt(x, y),
      ops.lt(
        ops.convert(ops.shiftRightLogical(x, 1), "i32"),
        ops.convert(ops.shiftRightLogical(y, 1), "i32"),
      ),
    ],
    a,
    b,
  );
  const [u, i] = await run(roundTrip(graph), [a, b]);
  assertEquals(Array.from(u.data), [0, 1, 0]);
  assertEquals(Array.from(i.data), [0, 1, 0]);
});

Deno.test("stablehlo round trip: constants keep every bit (hex blobs, NaN, -0, u32, bf16)", async () => {
  const n = 100;
  const big = hostTensor(
    [n],
    "f32",
    Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i) * 1e3 ** (i % 7 - 3))),
  );
  const specials = hostTensor([5], "f32", [NaN, Infinity, -Infinity, -0, 1e-45]);
  const u = hostTensor([3], "u32", [0, 0x9e3779b9, 0xffffffff]);
  const b = hostTensor([3], "bf16", [f32ToBf16(1.5), f32ToBf16(-3.25e-3), 0x7f80]);
  const { graph } = trace(
    () => [
      ops.constant(big),
      ops.constant(specials),
      ops.constant(u),
      ops.convert(ops.constant(b), "f32"),
    ],
  );
  const [o1, o2, o3, o4] = await run(roundTrip(graph), []);
  assertEquals(new Uint32Array(o1.data.buffer), new Uint32Array(big.data.buffer));
  assertEquals(new Uint32Array(o2.data.buffer), new Uint32Array(specials.data.buffer));
  assertEquals(Array.from(o3.data), [0, 0x9e3779b9, 0xffffffff]);
  assertEquals(Array.from(o4.data), Array.from(b.data).map(bf16ToF32));
});

Deno.test("stablehlo round trip: gradient programs give the same bits", async () => {
  for (const c of GRAD_CASES) {
    const { graph } = trace(
      (...xs: Tensor[]) => valueAndGrad((ps: Tensor[]) => c.fn(...ps))(xs),
      ...c.inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })),
    );
    // attention is emitted as its decomposition (lib/ir/attention.ts): the same graph here
    const want = await run(expandAttention(graph), c.inputs);
    const got = await run(roundTrip(graph), c.inputs);
    assertEquals(got.map((t) => Array.from(t.data)), want.map((t) => Array.from(t.data)), c.name);
  }
});

Deno.test("stablehlo round trip: bf16 compute rounds exactly the matmul operands", async () => {
  const x = hostTensor([2, 3], "f32", [0.1, -1.7, 2.3, 0.77, 1e-3, -5.5]);
  const w = hostTensor([3, 2], "f32", [1.01, -0.333, 0.5, 2.718, -1.414, 0.0625]);
  const { graph } = trace((a: Tensor, b: Tensor) => ops.tanh(ops.matmul(a, b)), x, w);
  const [got] = await run(roundTrip(graph, { compute: "bf16" }), [x, w]);
  const r = (t: HostTensor) => Array.from(t.data).map((v) => bf16ToF32(f32ToBf16(v)));
  const xs = r(x), ws = r(w);
  const want = [0, 1].flatMap((i) =>
    [0, 1].map((j) =>
      Math.fround(
        Math.tanh(
          Math.fround([0, 1, 2].reduce((s, k) =>
            Math.fround(s + Math.fround(xs[i * 3 + k] * ws[k * 2 + j])), 0)),
        ),
      )
    )
  );
  assertAllClose(Array.from(got.data), want, { atol: 2e-7 });
  const [full] = await run(graph, [x, w]);
  assert(
    Array.from(full.data).some((v, i) => Math.abs(v - got.data[i]) > 1e-4),
    "bf16 must differ from f32",
  );
});

Deno.test("stablehlo round trip: MLP step with remat barriers and replicas, same bits", async () => {
  const inputs = mlpSpecs().flatMap((s) =>
    leavesWithPaths<{ shape: number[]; dtype: "f32" | "i32" }>(s).map(([, t], k) =>
      hostTensor(
        t.shape,
        t.dtype,
        Array.from(
          { length: numel(t.shape) },
          (_, i) => t.dtype === "i32" ? (i * 7 + k) % 3 : Math.sin(i * 1.3 + k),
        ),
      )
    )
  );
  for (const replicas of [1, 4]) {
    const { graph } = trace(mlpTrainStep(replicas), ...mlpSpecs());
    const parsed = parseStableHlo(emitStableHlo(graph));
    assertEquals(parsed.numReplicas, replicas);
    const devices = new CpuBackend({ devices: replicas });
    assertEquals(
      (await run(parsed.graph, inputs, devices)).map((t) => Array.from(t.data)),
      (await run(graph, inputs, devices)).map((t) => Array.from(t.data)),
    );
  }
  const layer = (w: Tensor, h: Tensor) => ops.tanh(ops.matmul(h, w));
  const f = checkpoint(layer);
  const { graph } = trace(
    (w: Tensor, x: Tensor) => valueAndGrad((v: Tensor) => ops.sum(f(v, f(v, x))))(w),
    { shape: [3, 3], dtype: "f32" },
    { shape: [2, 3], dtype: "f32" },
  );
  const text = emitStableHlo(graph);
  assert(text.includes("optimization_barrier"));
  const ins = [
    hostTensor([3, 3], "f32", [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, -0.7, 0.8, 0.9]),
    hostTensor([2, 3], "f32", [1, -2, 3, 0.5, 0.25, -1]),
  ];
  assertEquals(
    (await run(parseStableHlo(text).graph, ins)).map((t) => Array.from(t.data)),
    (await run(graph, ins)).map((t) => Array.from(t.data)),
  );
});

Deno.test("stablehlo round trip: a ViT training step (droppath, Mixup/CutMix, LAMB) gives the same bits", async () => {
  const config = resolveConfig(
    {
      "layers": 2,
      "dim": 16,
      "heads": 2,
      "labels": 5,
      "patch-size": 4,
      "image-size": 8,
      "layerscale": true,
      "mixup": 0.8,
      "cutmix": 1.0,
      "droppath": 0.2,
      "dropout": 0.1,
      "optimizer": "lamb",
      "clip-grad": 1.0,
      "lr-decay": 0.75,
      "grad-ckpt": true,
      "train-dataset-shards": "x",
    },
    "tiny.json",
    [],
    { random: () => 0.5 },
  );
  const program = exportTrainStep(config, { batch: 4 });
  const parsed = parseStableHlo(program.text);
  assertEquals(
    parsed.aliases.length,
    3 * leavesWithPaths(paramSpecs(vitConfigOf(config))).length,
  );
  // Deterministic pseudo-random inputs in the spec's types.
  const inputs = parsed.graph.inputs.map((t, k) => {
    const n = numel(t.shape);
    const name = program.inputs[k];
    const v = (i: number) => {
      if (name.startsWith("batch.images")) return (i * 37 + k) % 256;
      if (name.startsWith("batch.labels")) return (i * 3 + 1) % 5;
      if (name.startsWith("mix.perm")) return [2, 0, 3, 1][i];
      if (name.startsWith("mix.box")) return [1, 6, 2, 5][i];
      if (name.startsWith("mix.")) return 0.7;
      if (name.startsWith("scalars.")) return 0.01 * (k + 1);
      if (name.startsWith("key")) return [0, 42][i];
      if (name.startsWith("opt.nu")) return Math.abs(Math.sin(i + k)) * 1e-3;
      return Math.sin(i * 0.37 + k) * 0.1;
    };
    return hostTensor([...t.shape], t.dtype, Array.from({ length: n }, (_, i) => v(i)));
  });
  const got = await run(parsed.graph, inputs);
  // The graph the text was emitted from, on the same inputs.
  const want = await run(program.graph, inputs);
  assertEquals(got.length, want.length);
  got.forEach((t, i) =>
    assertEquals(Array.from(t.data), Array.from(want[i].data), program.outputs[i])
  );
  // And it trains: the loss is finite and the parameters moved.
  const loss = got[program.outputs.findIndex((l) => l.startsWith("metrics.loss"))].data[0];
  assert(Number.isFinite(loss) && loss > 0, `loss ${loss}`);
});

Deno.test("stablehlo parse: errors name the line", () => {
  const { graph } = trace((x: Tensor) => ops.neg(x), { shape: [2], dtype: "f32" });
  const text = emitStableHlo(graph);
  assertThrows(
    () => parseStableHlo(text.replace("-> tensor<2xf32>\n", "-> tensor<3xf32>\n")),
    "line 3: stablehlo.negate computes f32[2], declared f32[3]",
  );
  assertThrows(
    () => parseStableHlo(text.replace("stablehlo.negate", "stablehlo.cosine")),
    "line 3: stablehlo.cosine: unsupported op",
  );
  assertThrows(
    () => parseStableHlo(text.replace('"stablehlo.negate"(%arg0)', '"stablehlo.negate"(%7)')),
    "line 3: %7 is not defined",
  );
});
