/**
 * Virtual devices on the CPU backend: N replicas with real cross-replica sums, in both the
 * fused executor and the reference interpreter, and refusals of programs for another replica
 * count (no silent identity).
 */
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { ReplicaGroup } from "../../../lib/backend/cpu/replicas.ts";
import { splitAxis0 } from "../../../lib/backend/replicas.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assertAllClose, assertEquals, assertRejects } from "../../assert.ts";
import { mlpInputs, mlpSpecs, mlpTrainStep } from "../stablehlo/mlp.ts";

const f32 = (...shape: number[]) => ({ shape, dtype: "f32" as const });

for (const mode of ["fused", "reference"] as const) {
  Deno.test(`cpu replicas (${mode}): all_reduce_sum adds every device's value`, async () => {
    const cpu = new CpuBackend({ mode, devices: 3 });
    const g = trace((x: Tensor) => ops.mul(ops.allReduceSum(ops.add(x, 1), 3), 2), f32(2)).graph;
    const exe = await cpu.compile(g);
    const x = await cpu.fromHostPerDevice(
      [[1, 2], [10, 20], [100, 200]].map((v) => hostTensor([2], "f32", v)),
    );
    const [y] = await exe.execute([x]);
    const per = await cpu.toHostPerDevice(y);
    // (1+1 + 10+1 + 100+1) * 2 = 228, (2+1 + 20+1 + 200+1) * 2 = 450 on every device
    assertEquals(per.map((t) => Array.from(t.data)), [[228, 450], [228, 450], [228, 450]]);
    assertEquals(Array.from((await cpu.toHost(y)).data), [228, 450]);
  });

  Deno.test(`cpu replicas (${mode}): a 4-device MLP step averages gradients`, async () => {
    // Each device trains on its own batch; the new parameters are the mean of what each
    // device alone would compute (SGD is linear in the gradient).
    const inputs = [0, 1, 2, 3].map(mlpInputs);
    const one = new CpuBackend({ mode });
    const alone = await Promise.all(inputs.map(async (ins) => {
      const exe = await one.compile(trace(mlpTrainStep(1), ...mlpSpecs()).graph);
      const args = await Promise.all(ins.map((t) => one.fromHost(t)));
      return await Promise.all((await exe.execute(args)).map((o) => one.toHost(o)));
    }));
    const cpu = new CpuBackend({ mode, devices: 4 });
    const exe = await cpu.compile(trace(mlpTrainStep(4), ...mlpSpecs()).graph);
    const args = await Promise.all(
      inputs[0].map((_, i) => cpu.fromHostPerDevice(inputs.map((row) => row[i]))),
    );
    const outs = await exe.execute(args);
    for (const [j, o] of outs.entries()) {
      const per = await cpu.toHostPerDevice(o);
      for (const [r, t] of per.entries()) {
        const want = j === 0
          ? alone[r][0].data
          : alone[0][j].data.map((_, i) => alone.reduce((s, a) => s + a[j].data[i], 0) / 4);
        assertAllClose(Array.from(t.data), Array.from(want), {
          atol: 1e-6,
          rtol: 1e-6,
          msg: `output ${j} of device ${r}`,
        });
      }
    }
  });
}

Deno.test("cpu replicas: programs for another replica count are refused", async () => {
  const g = trace((x: Tensor) => ops.allReduceSum(x, 4), f32(2)).graph;
  await assertRejects(
    () => new CpuBackend().compile(g),
    "all-reduces over 4 replicas but the backend has 1 device",
  );
  await assertRejects(
    () => new CpuBackend({ devices: 2 }).compile(g),
    "all-reduces over 4 replicas but the backend has 2 devices",
  );
  // A program without all-reduces runs independently on every device.
  const cpu = new CpuBackend({ devices: 2 });
  const exe = await cpu.compile(trace((x: Tensor) => ops.neg(x), f32(2)).graph);
  const x = await cpu.fromHostPerDevice(splitAxis0(hostTensor([4], "f32", [1, 2, 3, 4]), 2));
  const per = await cpu.toHostPerDevice((await exe.execute([x]))[0]);
  assertEquals(per.map((t) => Array.from(t.data)), [[-1, -2], [-3, -4]]);
  const single = await new CpuBackend().fromHost(hostTensor([2], "f32", [1, 2]));
  await assertRejects(
    () => exe.execute([single]),
    "argument 0: f32[2] has 1 device copy, the backend runs 2 devices",
  );
  await assertRejects(
    () => cpu.fromHostPerDevice([hostTensor([2], "f32"), hostTensor([3], "f32")]),
    "f32[3] and f32[2] differ",
  );
});

Deno.test("cpu replicas: a failing replica releases the others waiting at an all-reduce", async () => {
  const group = new ReplicaGroup(2);
  const waiting = group.sum(0, "f32", new Float32Array([1]));
  group.abort(new Error("replica 1 failed"));
  await assertRejects(() => waiting, "replica 1 failed");
  await assertRejects(() => group.sum(1, "f32", new Float32Array([1])), "replica 1 failed");
});
