import { assert, assertEquals } from "../assert.ts";
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { resolveConfig } from "../../lib/config/mod.ts";
import { flatten, unflatten } from "../../lib/ir/pytree.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { initViT } from "../../lib/model/init.ts";
import { Evaluator, formatEvalProgress } from "../../lib/train/evaluate.ts";
import { loaderWorkers, stepConfigOf } from "../../lib/train/run_config.ts";
import { makeDataset, tinyConfig } from "./e2e_helpers.ts";

Deno.test("eval: a validation set smaller than valid-batch-size runs at its own size", async () => {
  const dir = await Deno.makeTempDir();
  const backend = new CpuBackend();
  try {
    const data = await makeDataset(dir); // 20 validation images
    const config = resolveConfig({ ...tinyConfig(dir, data), "valid-batch-size": 64 }, "<test>");
    const cfg = stepConfigOf(config);
    const params = initViT(cfg.vit, 1);
    const { leaves, def } = flatten<HostTensor>(params);
    const device = unflatten(def, await Promise.all(leaves.map((l) => backend.fromHost(l))));
    const evaluator = await Evaluator.create(backend, cfg, params, 64);
    const seen: number[] = [];
    const r = await evaluator.run(config, device, () => {}, (p) => seen.push(p.images));
    assertEquals(r.samples, 20);
    assertEquals(evaluator.compiledSizes, [20], "no program for a padded batch of 64");
    assertEquals(seen, [20]);
    // The same set again: same program, and now the progress knows the total.
    let line = "";
    await evaluator.run(config, device, () => {}, (p) => line = formatEvalProgress(p));
    assertEquals(evaluator.compiledSizes, [20]);
    assert(/^eval 20\/20 images \| \d+ img\/s \| ETA 0s$/.test(line), line);
    evaluator.dispose();
  } finally {
    backend.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("eval progress line: images, img/s and ETA once the total is known", () => {
  assertEquals(
    formatEvalProgress({ images: 1200, total: 10000, seconds: 4 }),
    "eval 1,200/10,000 images | 300 img/s | ETA 29s",
  );
  assertEquals(
    formatEvalProgress({ images: 64, total: undefined, seconds: 1 }),
    "eval 64 images | 64 img/s",
  );
});

Deno.test("loader workers: clamped to the cores, with a message", () => {
  const config = resolveConfig({ "train-loader-workers": 40, labels: 10 }, "<test>");
  const lines: string[] = [];
  assertEquals(loaderWorkers(config, "train-loader-workers", (l) => lines.push(l), 2), 2);
  assertEquals(lines, ["train-loader-workers 40 exceeds the 2 cores of this machine: using 2"]);
  assertEquals(loaderWorkers(config, "valid-loader-workers", (l) => lines.push(l), 8), 5);
  assertEquals(lines.length, 1);
});

Deno.test("eval: batches that do not split over the devices are padded, every sample counted once", async () => {
  const dir = await Deno.makeTempDir();
  const one = new CpuBackend(), three = new CpuBackend({ devices: 3 });
  try {
    const data = await makeDataset(dir); // 20 validation images: batches of 8, 8 and 4
    const config = resolveConfig({ ...tinyConfig(dir, data), "valid-batch-size": 8 }, "<test>");
    const params = initViT(stepConfigOf(config).vit, 1);
    const evalOn = async (backend: CpuBackend, batch: number) => {
      const cfg = stepConfigOf(config, backend.replicas);
      const { leaves, def } = flatten<HostTensor>(params);
      const device = unflatten(def, await Promise.all(leaves.map((l) => backend.fromHost(l))));
      const lines: string[] = [];
      const evaluator = await Evaluator.create(backend, cfg, params, batch, (l) => lines.push(l));
      const r = await evaluator.run(config, device, () => {});
      const sizes = evaluator.compiledSizes;
      evaluator.dispose();
      return { r, lines, sizes };
    };
    const ref = await evalOn(one, 8), padded = await evalOn(three, 8);
    assertEquals(ref.lines, []);
    assertEquals(padded.lines, [
      "validation: batches of 8 images are padded to 9 to split over 3 devices; the 1 padding " +
      "row(s) are not counted",
    ]);
    assertEquals(padded.sizes, [9]);
    assertEquals([ref.r.samples, padded.r.samples], [20, 20]);
    for (const k of ["loss", "acc1", "acc5"] as const) {
      assert(Math.abs(padded.r[k] - ref.r[k]) < 1e-5, `${k}: ${padded.r[k]} vs ${ref.r[k]}`);
    }
    // The whole set in one partial batch: its own size, rounded up to split over 3 (20 -> 21).
    const small = await evalOn(three, 64);
    assertEquals([small.r.samples, small.sizes], [20, [21]]);
    assert(Math.abs(small.r.loss - ref.r.loss) < 1e-5);
  } finally {
    one.dispose();
    three.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
