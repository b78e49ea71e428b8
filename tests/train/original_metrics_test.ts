/**
 * The logged metrics as the original deit3-jax defines them (src/training.py, TrainModule):
 * validation loss against one-hot labels (`det=True`: no smoothing, no mixing), and train
 * acc1/acc5 counted against the dominant class of the smoothed, mixed labels
 * (`labels == labels.max(-1)`, then `take_along_axis` over `lax.top_k`).
 */
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { evaluate } from "../../lib/backend/jit.ts";
import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import { oneHot } from "../../lib/ir/nn.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { vitForward } from "../../lib/model/vit.ts";
import { defaultAdamW } from "../../lib/optim/optimizer.ts";
import { vitConfigFromMeta } from "../../lib/train/doctor.ts";
import { normalizeImages, smoothLabels } from "../../lib/train/loss.ts";
import {
  applyMix,
  buildEvalStep,
  lossAndMetrics,
  type MixInputs,
  type TrainStepConfig,
} from "../../lib/train/step.ts";
import { configToJson, resolveConfig } from "../../lib/config/mod.ts";
import { configChanges } from "../../lib/train/run_state.ts";
import { assert, assertEquals } from "../assert.ts";

const REF = new URL("../fixtures/reference/vit-a", import.meta.url).pathname;
const meta = JSON.parse(await Deno.readTextFile(`${REF}/meta.json`));
const vit = vitConfigFromMeta(meta.config);
const params = await readFlaxMsgpackFile(`${REF}/params.msgpack`);
const io = await readFlaxMsgpackFile(`${REF}/io.msgpack`) as Record<string, HostTensor>;
const K = vit.labels!;
const cfg: TrainStepConfig = {
  vit,
  criterion: "ce",
  labelSmoothing: 0.1,
  deterministic: true,
  optimizer: defaultAdamW(vit.layers),
};

/** optax.softmax_cross_entropy per row, in float64, from flax's logits. */
function softmaxCrossEntropy(logits: ArrayLike<number>, targets: number[][]): number[] {
  return targets.map((t, b) => {
    const row = Array.from({ length: K }, (_, k) => logits[b * K + k]);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    return -t.reduce((s, tk, k) => s + tk * (row[k] - lse), 0);
  });
}

Deno.test("validation loss is the original's: cross-entropy against one-hot labels", async () => {
  const B = io.labels.shape[0];
  const labels = Array.from(io.labels.data as Int32Array);
  const oneHotRows = labels.map((l) => Array.from({ length: K }, (_, k) => (k === l ? 1 : 0)));
  const want = softmaxCrossEntropy(io.logits.data as Float32Array, oneHotRows);
  // The fixture's training loss (smoothing 0.1) is what the old validation loss reported.
  const smoothed = softmaxCrossEntropy(
    io.logits.data as Float32Array,
    oneHotRows.map((r) => r.map((v) => v * 0.9 + 0.1 / K)),
  );
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert(Math.abs(mean(smoothed) - io.loss.data[0]) < 1e-5, "host CE matches flax's train loss");

  // One padded row (label -1) must not count.
  const H = vit.imageSize, per = 3 * H * H;
  const images = new Uint8Array((B + 1) * per);
  images.set(io.images.data as Uint8Array);
  const batch = {
    images: hostTensor([B + 1, 3, H, H], "u8", images),
    labels: hostTensor([B + 1], "i32", [...labels, -1]),
  };
  const out = await evaluate(new CpuBackend(), buildEvalStep(cfg), params, batch);
  assertEquals(out.count.data[0], B);
  const ours = out.loss.data[0] / out.count.data[0];
  assert(Math.abs(ours - mean(want)) < 1e-5, `eval loss ${ours} vs original ${mean(want)}`);
  assert(Math.abs(ours - mean(smoothed)) > 1e-3, `not the smoothed loss ${mean(smoothed)}`);
});

/** The original's acc1/acc5 from logits and the final (smoothed, mixed) labels. */
function originalAccuracy(logits: Float32Array, labels: Float32Array, B: number) {
  let acc1 = 0, acc5 = 0, anyPositive1 = 0;
  for (let b = 0; b < B; b++) {
    const row = Array.from(labels.subarray(b * K, (b + 1) * K));
    const max = Math.max(...row);
    const set = row.map((v) => v === max);
    // lax.top_k: descending, ties by lower index.
    const order = Array.from({ length: K }, (_, k) => k)
      .sort((i, j) => logits[b * K + j] - logits[b * K + i] || i - j);
    acc1 += set[order[0]] ? 1 : 0;
    acc5 += order.slice(0, 5).some((k) => set[k]) ? 1 : 0;
    anyPositive1 += row[order[0]] > 0.1 / K + 1e-6 ? 1 : 0;
  }
  return { acc1: acc1 / B, acc5: acc5 / B, anyPositive1: anyPositive1 / B };
}

Deno.test("train acc1/acc5 under mixup and smoothing count the dominant class, as the original", async () => {
  const B = io.labels.shape[0];
  const backend = new CpuBackend();
  let discriminating = false;
  // Several mixes of the fixture batch (a perm that pairs different classes, lam either side).
  for (const [lam, perm] of [[0.6, [1, 0, 3, 2]], [0.3, [3, 2, 1, 0]], [0.55, [2, 3, 0, 1]]]) {
    const mix: MixInputs<HostTensor> = {
      perm: hostTensor([B], "i32", perm as number[]),
      imageLam: hostTensor([], "f32", [lam as number]),
      labelLam: hostTensor([], "f32", [lam as number]),
      box: hostTensor([4], "i32", [0, 0, 0, 0]),
    };
    const out = await evaluate(
      backend,
      (p: unknown, b: { images: Tensor; labels: Tensor }, m: MixInputs<Tensor>) => {
        const [, metrics] = lossAndMetrics(cfg, p, b, m, undefined);
        // The same mixed labels and logits, for the host's reference definition.
        const smoothed = smoothLabels(oneHot(b.labels, K), cfg.labelSmoothing);
        const [images, labels] = applyMix(normalizeImages(b.images), smoothed, m);
        const logits = vitForward(vit, p, images, { det: true });
        return { metrics, labels, logits };
      },
      params,
      { images: io.images, labels: io.labels },
      mix,
    );
    const ref = originalAccuracy(out.logits.data, out.labels.data, B);
    assertEquals(out.metrics.acc1.data[0], Math.fround(ref.acc1), `acc1 at lam ${lam}`);
    assertEquals(out.metrics.acc5.data[0], Math.fround(ref.acc5), `acc5 at lam ${lam}`);
    if (ref.anyPositive1 !== ref.acc1) discriminating = true;
  }
  // At least one mix where counting every positive class would have given another acc1.
  assert(discriminating, "the cases tell the two definitions apart");
  backend.dispose();
});

Deno.test("a run saved before random-erasing-fill existed resumes as the normal fill it used", () => {
  const config = resolveConfig({ labels: 10 }, "<test>");
  const saved = JSON.parse(configToJson(config)) as Record<string, unknown>;
  delete saved["random-erasing-fill"];
  assertEquals(
    configChanges(saved, config).filter((c) => c.key === "random-erasing-fill"),
    [{ key: "random-erasing-fill", saved: "normal", now: "original" }],
  );
  saved["random-erasing-fill"] = "original";
  assertEquals(configChanges(saved, config), []);
});
