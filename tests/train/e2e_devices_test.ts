/**
 * `train --backend cpu --devices N` end to end through real shards: 3 virtual devices end within
 * 1e-4 of 1 device (summed in another order, so not bit for bit), every validation sample is
 * counted once, and a batch that does not split is refused before any work, naming
 * train-batch-size.
 */
import { resolveConfig } from "../../lib/config/mod.ts";
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { leavesWithPaths } from "../../lib/ir/pytree.ts";
import { train } from "../../lib/train/loop.ts";
import { assert, assertAllClose, assertEquals, assertRejects } from "../assert.ts";
import { makeDataset, tinyConfig } from "./e2e_helpers.ts";

Deno.test("train --devices 3 ends within 1e-4 of --devices 1; --devices 5 is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-devices-" });
  try {
    const data = await makeDataset(dir);
    const run = async (devices: number) => {
      const json = {
        ...tinyConfig(`${dir}/d${devices}`, data, 6),
        // No randomness in the step: replicas would draw their own masks otherwise.
        "mixup": 0,
        "cutmix": 0,
        "droppath": 0,
        "train-batch-size": 12,
        "valid-batch-size": 6,
        "devices": devices,
      };
      const r = await train(resolveConfig(json, "<test>", []));
      const state = await loadTrainingState(`${dir}/d${devices}/out/tiny-state.msgpack`);
      return { r, params: leavesWithPaths<HostTensor>(state.params) };
    };
    const one = await run(1), three = await run(3);
    assertEquals([one.r.step, three.r.step], [6, 6]);
    assertEquals(three.r.lastEval!["val/samples"], 20);
    assertAllClose([three.r.lastEval!["val/loss"]], [one.r.lastEval!["val/loss"]], { atol: 1e-4 });
    let differs = 0;
    one.params.forEach(([path, t], i) => {
      assertEquals(three.params[i][0], path);
      assertAllClose(three.params[i][1].data, t.data, { atol: 1e-4, msg: path });
      for (let j = 0; j < t.data.length; j++) {
        if (t.data[j] !== three.params[i][1].data[j]) differs++;
      }
    });
    assert(differs > 0, "3 devices gave bit-identical parameters: was the batch really split?");

    const five = { ...tinyConfig(`${dir}/d5`, data, 6), "train-batch-size": 48, "devices": 5 };
    await assertRejects(
      () => train(resolveConfig(five, "<test>", [])),
      "train-batch-size: 48 images do not split over 1 process(es) x 5 device(s)",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
