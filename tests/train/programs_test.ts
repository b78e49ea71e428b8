/**
 * The step programs: gradient accumulation over two micro-batches of 4 must give the update of
 * one step on the batch of 8 (no dropout, no mixing, so the mean gradient is the same up to
 * float rounding), and micro-batch inputs are drawn per (step, micro-batch).
 */
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { resolveConfig } from "../../lib/config/mod.ts";
import { tensorLeaves, type Tree } from "../../lib/checkpoint/tree.ts";
import { flatten } from "../../lib/ir/pytree.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { initViT } from "../../lib/model/init.ts";
import { initOptState, stepScalars } from "../../lib/optim/optimizer.ts";
import { DeviceTrees } from "../../lib/train/device_trees.ts";
import { compileTrainPrograms, microInputs, type StepShape } from "../../lib/train/programs.ts";
import { stepConfigOf } from "../../lib/train/run_config.ts";
import { assert, assertAllClose, assertEquals } from "../assert.ts";

const SIZE = 8;

function tinyStepConfig() {
  const c = resolveConfig(
    {
      layers: 1,
      dim: 8,
      heads: 2,
      labels: 3,
      "patch-size": 4,
      "image-size": SIZE,
      droppath: 0,
      dropout: 0,
      optimizer: "adamw",
    },
    "<test>",
    [],
  );
  return stepConfigOf(c);
}

function hostBatch(rows: number[], labels: number[]) {
  const px = 3 * SIZE * SIZE;
  const images = new Uint8Array(rows.length * px);
  rows.forEach((r, i) => {
    for (let j = 0; j < px; j++) images[i * px + j] = (r * 37 + j * 11) % 256;
  });
  return { images, labels: Int32Array.from(labels), count: rows.length };
}

Deno.test("programs: accumulating 2 x 4 gives the update of one step of 8", async () => {
  const backend = new CpuBackend();
  try {
    const cfg = tinyStepConfig();
    const params = initViT(cfg.vit, 0);
    const opt = initOptState(params);
    const trees = new DeviceTrees(backend);
    const seeds = { dropout: 1, mixup: 2 }, mix = { mixup: 0, cutmix: 0 };
    const rows = [0, 1, 2, 3, 4, 5, 6, 7], labels = [0, 1, 2, 0, 1, 2, 0, 1];
    const run = async (shape: StepShape) => {
      const programs = await compileTrainPrograms(backend, cfg, shape, params, opt);
      try {
        const b = shape.microBatch;
        const out = await programs.run(
          await trees.upload(params),
          await trees.upload(opt),
          (i) =>
            Promise.resolve(microInputs(
              shape,
              seeds,
              mix,
              hostBatch(rows.slice(i * b, (i + 1) * b), labels.slice(i * b, (i + 1) * b)),
              0,
              i,
            )),
          stepScalars(cfg.optimizer, 0, 1e-2),
        );
        return { params: await trees.download(out.params), metrics: await out.metrics };
      } finally {
        programs.dispose();
      }
    };
    const single = await run({ microBatch: 8, accum: 1, imageSize: SIZE, mixing: false });
    const accum = await run({ microBatch: 4, accum: 2, imageSize: SIZE, mixing: false });
    const a = flatten<HostTensor>(single.params).leaves,
      b = flatten<HostTensor>(accum.params).leaves;
    assertEquals(a.length, b.length);
    let moved = 0;
    const before = flatten<HostTensor>(params).leaves;
    // The key bias's exact gradient is zero (a softmax does not change when every score of a row
    // shifts by q . b_k); its gradient is rounding noise, which Adam's first step scales up to
    // lr * g / (|g| + eps), so the two programs' noise is not compared, only its size.
    const wk = [...tensorLeaves(params as Tree)].find(([k]) => k.endsWith("wk/bias"))!;
    const keyBias = before.indexOf(wk[1]);
    assert(keyBias >= 0, "the key bias is a leaf of the tree");
    a.forEach((t, i) => {
      const atol = i === keyBias ? 1e-5 : 2e-6;
      assertAllClose(b[i].data, t.data, { atol, msg: `leaf ${i}` });
      for (let j = 0; j < t.data.length; j++) if (t.data[j] !== before[i].data[j]) moved++;
    });
    assert(moved > 0, "the step changed no parameter");
    assertAllClose([accum.metrics.loss], [single.metrics.loss], { atol: 1e-6 });
  } finally {
    backend.dispose();
  }
});

Deno.test("programs: micro-batch inputs differ by step and by micro-batch, and repeat", () => {
  const shape = { microBatch: 4, accum: 2, imageSize: SIZE, mixing: true };
  const seeds = { dropout: 1, mixup: 2 }, mix = { mixup: 0.8, cutmix: 1 };
  const batch = hostBatch([0, 1, 2, 3], [0, 1, 2, 0]);
  const key = (step: number, i: number) =>
    Array.from(microInputs(shape, seeds, mix, batch, step, i)[0].key.data);
  assertEquals(key(3, 1), key(3, 1));
  assert(JSON.stringify(key(3, 0)) !== JSON.stringify(key(3, 1)), "micro-batches share a key");
  assert(JSON.stringify(key(3, 0)) !== JSON.stringify(key(4, 0)), "steps share a key");
  const m = microInputs(shape, seeds, mix, batch, 3, 0)[0].mix!;
  assertEquals(m.perm.shape, [4]);
  assertEquals(microInputs({ ...shape, mixing: false }, seeds, mix, batch, 3, 0)[0].mix, null);
});
