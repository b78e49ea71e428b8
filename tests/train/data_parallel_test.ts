/**
 * Data-parallel invariants on the CPU backend's virtual devices:
 * - with no randomness in the step, 4 replicas sharing a global batch of 8 follow one replica
 *   with the batch of 8 within 1e-5 for 20 steps (plain and with gradient accumulation);
 * - with droppath and Mixup on, each replica draws its own keys, derived as the original's
 *   `shard_prng_key` (values from jax 0.10), so replicas fed the same images compute different
 *   gradients.
 */
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { Compiled } from "../../lib/backend/jit.ts";
import { resolveConfig } from "../../lib/config/mod.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { flatten } from "../../lib/ir/pytree.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { initViT } from "../../lib/model/init.ts";
import { initOptState, stepScalars } from "../../lib/optim/optimizer.ts";
import { DeviceTrees } from "../../lib/train/device_trees.ts";
import {
  compileTrainPrograms,
  microInputs,
  replicaRng,
  type StepShape,
} from "../../lib/train/programs.ts";
import { stepConfigOf } from "../../lib/train/run_config.ts";
import { buildGradStep, type MixInputs } from "../../lib/train/step.ts";
import { assert, assertAllClose, assertEquals } from "../assert.ts";

const SIZE = 8;

function config(extra: Record<string, unknown> = {}) {
  return resolveConfig(
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
      ...extra,
    },
    "<test>",
    [],
  );
}

function hostBatch(step: number, n: number) {
  const px = 3 * SIZE * SIZE;
  const images = new Uint8Array(n * px);
  for (let i = 0; i < images.length; i++) images[i] = (i * 37 + step * 101) % 256;
  const labels = Int32Array.from({ length: n }, (_, i) => (i + step) % 3);
  return { images, labels, count: n };
}

/** 20 steps of the global batch 8 on `devices` devices; returns the final parameters. */
async function run20(devices: number, accum: number): Promise<HostTensor[]> {
  const backend = new CpuBackend({ devices });
  const cfg = stepConfigOf(config(), devices);
  const params = initViT(cfg.vit, 0);
  const opt = initOptState(params);
  const shape: StepShape = {
    microBatch: 8 / accum / devices,
    accum,
    imageSize: SIZE,
    mixing: false,
    devices,
  };
  const programs = await compileTrainPrograms(backend, cfg, shape, params, opt);
  const trees = new DeviceTrees(backend);
  let p = await trees.upload(params), o = await trees.upload(opt);
  const seeds = { dropout: 1, mixup: 2 }, mix = { mixup: 0, cutmix: 0 };
  for (let step = 0; step < 20; step++) {
    const whole = hostBatch(step, 8);
    const out = await programs.run(p, o, (i) => {
      const b = 8 / accum, px = 3 * SIZE * SIZE;
      const part = {
        images: whole.images.subarray(i * b * px, (i + 1) * b * px),
        labels: whole.labels.subarray(i * b, (i + 1) * b),
        count: b,
      };
      return Promise.resolve(microInputs(shape, seeds, mix, part, step, i));
    }, stepScalars(cfg.optimizer, step, 3e-3));
    p = out.params;
    o = out.opt;
  }
  const per = await Promise.all(
    flatten(p).leaves.map((l) => backend.toHostPerDevice(l as never)),
  );
  programs.dispose();
  // Replicated state stays identical on every device.
  for (const copies of per) {
    for (const c of copies) assertEquals(Array.from(c.data), Array.from(copies[0].data));
  }
  return per.map((copies) => copies[0]);
}

Deno.test("data parallel: 4 replicas match 1 replica within 1e-5 after 20 steps", async () => {
  const one = await run20(1, 1);
  const before = flatten<HostTensor>(initViT(stepConfigOf(config()).vit, 0)).leaves;
  for (const [devices, accum] of [[4, 1], [2, 2]]) {
    const many = await run20(devices, accum);
    let moved = 0, differs = 0;
    one.forEach((t, i) => {
      assertAllClose(many[i].data, t.data, {
        atol: 1e-5,
        rtol: 1e-5,
        msg: `${devices} devices x ${accum}: leaf ${i}`,
      });
      for (let j = 0; j < t.data.length; j++) {
        if (t.data[j] !== before[i].data[j]) moved++;
        if (t.data[j] !== many[i].data[j]) differs++;
      }
    });
    assert(moved > 0, "training moved no parameter");
    assert(differs > 0, "replicas sum in another order: the results should not be bit-identical");
  }
});

Deno.test("data parallel: replica keys are shard_prng_key of PRNGKey(seed + process)", () => {
  // jax.random.split(jax.random.PRNGKey(7), 3) under jax 0.10 (threefry partitionable).
  assertEquals([0, 1, 2].map((d) => replicaRng(7, 0, d).key), [
    [3625411723, 1954958720],
    [195045567, 4062205631],
    [966301609, 1948237315],
  ]);
  // Process 1 of a job keys from seed + 1, as the original's TrainState does.
  assertEquals(replicaRng(6, 1, 2).key, replicaRng(7, 0, 2).key);
  const shape = { microBatch: 4, accum: 1, imageSize: SIZE, mixing: true, devices: 2 };
  const per = microInputs(
    shape,
    { dropout: 1, mixup: 2 },
    { mixup: 0.8, cutmix: 1 },
    hostBatch(0, 8),
    5,
    0,
  );
  assertEquals(per.length, 2);
  assertEquals(
    Array.from(per[0].key.data),
    replicaRng(1, 0, 0).child(5).child(0).key,
  );
  assert(per[0].key.data.join() !== per[1].key.data.join(), "devices share a dropout key");
  const draw = (m: MixInputs<HostTensor>) =>
    [m.perm, m.imageLam, m.labelLam, m.box].map((t) => Array.from(t.data).join()).join("|");
  assert(draw(per[0].mix!) !== draw(per[1].mix!), "devices share a Mixup/CutMix draw");
  // Each device gets its own rows of the host batch.
  assertEquals(Array.from(per[1].batch.labels.data), [1, 2, 0, 1]);
});

Deno.test("data parallel: with droppath, replicas fed the same images draw different masks", async () => {
  const devices = 2;
  const cfg = stepConfigOf(config({ droppath: 0.5 }), devices);
  const backend = new CpuBackend({ devices });
  const params = initViT(cfg.vit, 0);
  const shape = { microBatch: 4, accum: 1, imageSize: SIZE, mixing: false, devices };
  const grad = buildGradStep(cfg);
  const one = microInputs(
    shape,
    { dropout: 1, mixup: 2 },
    { mixup: 0, cutmix: 0 },
    {
      ...hostBatch(0, 8),
      // the same four images on both devices
      images: new Uint8Array([...hostBatch(0, 4).images, ...hostBatch(0, 4).images]),
      labels: Int32Array.from([0, 1, 2, 0, 0, 1, 2, 0]),
    },
    0,
    0,
  );
  const compiled = await Compiled.create(
    backend,
    (p: unknown, b: never, k: Tensor) => grad(p, b, null as unknown as MixInputs<Tensor>, k),
    params,
    one[0].batch,
    one[0].key,
  );
  const trees = new DeviceTrees(backend);
  const gradsWith = async (keys: HostTensor[]) => {
    const ins = await trees.uploadPerDevice(one.map((m, d) => ({ b: m.batch, k: keys[d] }))) as {
      b: unknown;
      k: unknown;
    };
    const out = await compiled.call([await trees.upload(params), ins.b, ins.k]);
    return await Promise.all(
      flatten(out.grads).leaves.map((l) => backend.toHostPerDevice(l as never)),
    );
  };
  const own = await gradsWith(one.map((m) => m.key));
  assert(
    own.some((copies) => copies[0].data.join() !== copies[1].data.join()),
    "replicas with their own keys computed the same gradients",
  );
  const shared = await gradsWith([one[0].key, one[0].key]);
  for (const copies of shared) assertEquals(copies[0].data.join(), copies[1].data.join());
  compiled.dispose();
});
