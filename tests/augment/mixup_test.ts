/**
 * Mixup / CutMix parameters against deit3-jax's definitions, recomputed independently here:
 * the CutMix mask over linspace(0, 1, W) x linspace(0, 1, H) and its kept fraction.
 */
import { Rng } from "../../lib/ir/rng.ts";
import { mixBatchHost, sampleMixup } from "../../lib/augment/mixup.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";

const isPermutation = (p: Int32Array) => [...p].sort((a, b) => a - b).every((v, i) => v === i);

Deno.test("mixup: disabled, mixup only, cutmix only, and the 50/50 choice", () => {
  const rng = Rng.fromSeed(11);
  const none = sampleMixup(rng, { mixup: 0, cutmix: 0, batchSize: 4, imageSize: 8 });
  assertEquals(none, { kind: "none", lam: 1, perm: Int32Array.from([0, 1, 2, 3]) });
  const n = 4000;
  const lams: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = sampleMixup(rng, { mixup: 0.8, cutmix: 0, batchSize: 16, imageSize: 8 });
    assertEquals(m.kind, "mixup");
    assert(isPermutation(m.perm) && m.box === undefined);
    lams.push(m.lam);
  }
  // Beta(0.8, 0.8): mean 1/2, variance ab / ((a+b)^2 (a+b+1)) = 0.0962.
  const mean = lams.reduce((a, b) => a + b, 0) / n;
  const v = lams.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  assert(Math.abs(mean - 0.5) < 0.02 && Math.abs(v - 0.0962) < 0.008, `Beta ${mean} ${v}`);
  let mix = 0;
  for (let i = 0; i < n; i++) {
    const k = sampleMixup(rng, { mixup: 0.8, cutmix: 1, batchSize: 8, imageSize: 8 }).kind;
    assert(k === "mixup" || k === "cutmix");
    if (k === "mixup") mix++;
  }
  assert(Math.abs(mix / n - 0.5) < 0.04, `mixup share ${mix / n}`);
});

Deno.test("cutmix: the box is the mask region and lam the kept fraction", () => {
  const size = 24, n = 3000;
  const rng = Rng.fromSeed(12);
  let area = 0;
  for (let i = 0; i < n; i++) {
    const m = sampleMixup(rng.child(i), { mixup: 0, cutmix: 1, batchSize: 5, imageSize: size });
    assertEquals(m.kind, "cutmix");
    assert(isPermutation(m.perm));
    const [y0, y1, x0, x1] = m.box!;
    assert(0 <= y0 && y0 <= y1 && y1 <= size && 0 <= x0 && x0 <= x1 && x1 <= size);
    // Independent check: the mask (1 = keep) averaged over the image equals lam.
    let kept = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) if (!(y >= y0 && y < y1 && x >= x0 && x < x1)) kept++;
    }
    assertEquals(m.lam, 1 - ((y1 - y0) * (x1 - x0)) / (size * size));
    assert(Math.abs(m.lam - kept / (size * size)) < 1e-12);
    area += 1 - m.lam;
  }
  // E[pasted area] with side s = sqrt(1 - U), centre U(0, 1)^2, clipped to the image:
  // per axis E[len] given s is s - s^2/4, so E = E_u[(s - s^2/4)^2] with s^2 = u uniform.
  let expected = 0;
  const steps = 100000;
  for (let k = 0; k < steps; k++) {
    const s = Math.sqrt((k + 0.5) / steps);
    expected += (s - (s * s) / 4) ** 2 / steps;
  }
  assert(Math.abs(area / n - expected) < 0.02, `mean pasted area ${area / n} vs ${expected}`);
});

Deno.test("mixup: invalid options throw", () => {
  const rng = Rng.fromSeed(0);
  assertThrows(
    () => sampleMixup(rng, { mixup: -1, cutmix: 0, batchSize: 2, imageSize: 4 }),
    "mixup",
  );
  assertThrows(
    () => sampleMixup(rng, { mixup: 0, cutmix: 1, batchSize: 0, imageSize: 4 }),
    "batchSize",
  );
  assertThrows(
    () => sampleMixup(rng, { mixup: 0, cutmix: 1, batchSize: 2, imageSize: 1.5 }),
    "imageSize",
  );
});

Deno.test("mixBatchHost: mixup blends rows and labels; cutmix pastes the box", () => {
  const shape = { batch: 3, height: 4, width: 5, channels: 2, classes: 3 };
  const per = 4 * 5 * 2;
  const images = Float32Array.from({ length: 3 * per }, (_, i) => i);
  const labels = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const perm = Int32Array.from([2, 0, 1]);
  const m = mixBatchHost(images, labels, { kind: "mixup", lam: 0.25, perm }, shape);
  assertEquals(m.labels[0 * 3 + 2], 0.75); // row 0 takes 3/4 of row 2's label
  assertEquals(m.images[7], 0.25 * 7 + 0.75 * (2 * per + 7));
  const c = mixBatchHost(images, labels, {
    kind: "cutmix",
    lam: 1 - 4 / 20,
    perm,
    box: [1, 3, 2, 4],
  }, shape);
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 5; x++) {
      const inBox = y >= 1 && y < 3 && x >= 2 && x < 4;
      const i = (y * 5 + x) * 2;
      assertEquals(c.images[per + i], inBox ? images[i] : images[per + i], `pixel ${x},${y}`);
    }
  }
  assert(Math.abs(c.labels[1 * 3 + 0] - 0.2) < 1e-7 && Math.abs(c.labels[1 * 3 + 1] - 0.8) < 1e-7);
  assertThrows(() =>
    mixBatchHost(images, labels, { kind: "none", lam: 1, perm }, {
      ...shape,
      classes: 4,
    }), "do not match");
});
