/**
 * Statistical checks of the random parts against their defining distributions: RandomResizedCrop
 * box area / aspect / position and its fallback, RandAugment op choice, apply rate, magnitude
 * noise and sign, 3a's choice among its three ops, RandomErasing box sizes and noise.
 */
import { Rng } from "../../lib/ir/rng.ts";
import { randomResizedCropParams } from "../../lib/augment/crops.ts";
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  randomErasing,
  randomErasingBox,
} from "../../lib/augment/erasing.ts";
import { grayscale, solarize } from "../../lib/augment/color.ts";
import type { AugmentHparams } from "../../lib/augment/levels.ts";
import { chooseRandOps, createAutoAugment, sampleOp } from "../../lib/augment/autoaugment.ts";
import { parsePolicy, type RandAugmentSpec } from "../../lib/augment/policy.ts";
import { roundHalfEven } from "../../lib/augment/pymath.ts";
import { createImage, type RGBImage } from "../../lib/augment/image.ts";
import { assert, assertEquals } from "../assert.ts";

const HP: AugmentHparams = { translateConst: 100, imgMean: [123, 116, 103] };

function meanVar(xs: number[]): [number, number] {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return [m, xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length];
}

/** |observed - expected| within `z` binomial standard errors. */
function assertRate(count: number, n: number, p: number, what: string, z = 4.5) {
  const se = Math.sqrt((p * (1 - p)) / n);
  assert(Math.abs(count / n - p) <= z * se, `${what}: rate ${count / n} vs expected ${p}`);
}

Deno.test("RandomResizedCrop: area, log-aspect and offsets follow U(0.08, 1), U(log 3/4, log 4/3)", () => {
  const rng = Rng.fromSeed(1);
  const W = 1000, H = 1000, n = 20000;
  const areas: number[] = [], logAspects: number[] = [], tops: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = randomResizedCropParams(rng, W, H);
    assert(r.top >= 0 && r.left >= 0 && r.top + r.height <= H && r.left + r.width <= W);
    const a = (r.width * r.height) / (W * H);
    // Below area 0.7 every draw fits the square image on the first try, so these boxes are
    // exactly the unconditioned draws (up to rounding of w and h).
    if (a < 0.7 && a > 0.09) {
      areas.push(a);
      logAspects.push(Math.log(r.width / r.height));
      if (r.height < H) tops.push(r.top / (H - r.height));
    }
  }
  const [am, av] = meanVar(areas);
  assert(Math.abs(am - 0.395) < 0.01, `area mean ${am} (uniform on [0.09, 0.7]: 0.395)`);
  assert(Math.abs(av - 0.61 ** 2 / 12) < 0.002, `area variance ${av}`);
  const [lm, lv] = meanVar(logAspects);
  const span = Math.log(4 / 3) - Math.log(3 / 4);
  assert(Math.abs(lm) < 0.01, `log-aspect mean ${lm}`);
  assert(Math.abs(lv - span ** 2 / 12) < 0.003, `log-aspect variance ${lv} vs ${span ** 2 / 12}`);
  const [tm, tv] = meanVar(tops);
  assert(Math.abs(tm - 0.5) < 0.01 && Math.abs(tv - 1 / 12) < 0.005, `top offset ${tm} ${tv}`);
});

Deno.test("RandomResizedCrop: the centred fallback clamps the aspect ratio", () => {
  const rng = Rng.fromSeed(2);
  // A 10000x100 strip: a box of >= 8% of its area is >= 245 high at any allowed aspect, so all
  // ten tries fail and the centred fallback is taken.
  for (let i = 0; i < 50; i++) {
    assertEquals(randomResizedCropParams(rng, 10000, 100), {
      top: 0,
      left: Math.floor((10000 - 133) / 2),
      height: 100,
      width: roundHalfEven(100 * 4 / 3),
    });
    assertEquals(randomResizedCropParams(rng, 90, 10000), {
      top: Math.floor((10000 - 120) / 2),
      left: 0,
      height: roundHalfEven(90 / 0.75),
      width: 90,
    });
  }
  assertEquals([
    roundHalfEven(58.5),
    roundHalfEven(59.5),
    roundHalfEven(-1.5),
    roundHalfEven(2.5000001),
  ], [58, 60, -2, 3]);
});

Deno.test("RandAugment: uniform op choice with replacement; weighted choice without", () => {
  const rng = Rng.fromSeed(3);
  const spec = parsePolicy("rand-m9-mstd0.5-inc1") as RandAugmentSpec;
  const counts = new Map<string, number>();
  let repeats = 0;
  const n = 15000;
  for (let i = 0; i < n; i++) {
    const ops = chooseRandOps(spec, rng);
    assertEquals(ops.length, 2);
    if (ops[0] === ops[1]) repeats++;
    for (const o of ops) counts.set(o.name, (counts.get(o.name) ?? 0) + 1);
  }
  assertEquals(counts.size, 15);
  for (const [name, c] of counts) assertRate(c, 2 * n, 1 / 15, name);
  assertRate(repeats, n, 1 / 15, "same op twice");

  const w = parsePolicy("rand-m9-tweights") as RandAugmentSpec;
  const p = w.weights!;
  const picked = new Array(p.length).fill(0);
  for (let i = 0; i < n; i++) {
    const ops = chooseRandOps(w, rng);
    assert(ops[0] !== ops[1], "weighted choice never repeats");
    for (const o of ops) picked[w.ops.indexOf(o)]++;
  }
  // P(i in a 2-draw successive sample) = p_i + sum_{j != i} p_j p_i / (1 - p_j).
  for (let i = 0; i < p.length; i++) {
    let q = p[i];
    for (let j = 0; j < p.length; j++) if (j !== i) q += (p[j] * p[i]) / (1 - p[j]);
    assertRate(picked[i], n, q, w.ops[i].name);
  }
});

Deno.test("AugmentOp: p 0.5, magnitude N(9, 0.5) clipped at 10, random sign, random filter", () => {
  const rng = Rng.fromSeed(4);
  const hp = { ...HP, magnitudeStd: 0.5 };
  const op = { name: "Rotate", prob: 0.5, magnitude: 9 };
  const n = 20000;
  let applied = 0, negative = 0, bilinear = 0, clipped = 0;
  const mags: number[] = [];
  for (let i = 0; i < n; i++) {
    const d = sampleOp(op, rng, hp);
    if (!d) continue;
    applied++;
    mags.push(d.magnitude);
    if (d.magnitude === 10) clipped++;
    assertEquals(Math.abs(d.args[0]), (d.magnitude / 10) * 30);
    if (d.args[0] < 0) negative++;
    if (d.resample === "bilinear") bilinear++;
  }
  assertRate(applied, n, 0.5, "applied");
  assertRate(negative, applied, 0.5, "negated");
  assertRate(bilinear, applied, 0.5, "bilinear");
  assertRate(clipped, applied, 0.02275, "clipped at 10 (P(z > 2))");
  assert(mags.every((m) => m >= 0 && m <= 10));
  // Mean of min(N(9, .5), 10): 9 - 0.5 * (phi(2) - 2 (1 - Phi(2))) = 8.99574.
  const [m] = meanVar(mags);
  assert(Math.abs(m - 8.9957) < 0.01, `magnitude mean ${m}`);
  // Non-signed ops never negate; mstd inf draws uniform magnitudes in [0, m].
  const u = { ...HP, magnitudeStd: Infinity };
  const mm: number[] = [];
  for (let i = 0; i < 5000; i++) {
    mm.push(sampleOp({ name: "Equalize", prob: 1, magnitude: 6 }, rng, u)!.magnitude);
  }
  const [um, uv] = meanVar(mm);
  assert(Math.abs(um - 3) < 0.1 && Math.abs(uv - 3) < 0.2, `uniform magnitude ${um} ${uv}`);
});

Deno.test("3a: solarize, grayscale and blur each chosen with probability 1/3", () => {
  const rng = Rng.fromSeed(5);
  const img: RGBImage = createImage(16, 12);
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 37 + (i >> 4) * 11) & 255;
  const sol = solarize(img, 128).data, gray = grayscale(img).data;
  const aa = createAutoAugment("3a", HP);
  const same = (a: Uint8Array, b: Uint8Array) => a.every((v, i) => v === b[i]);
  const n = 3000;
  const counts = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const out = aa(img, rng.child(i)).data;
    counts[same(out, sol) ? 0 : same(out, gray) ? 1 : 2]++;
  }
  for (const c of counts) assertRate(c, n, 1 / 3, "3a op");
});

Deno.test("RandomErasing: box area U(0.02, 0.33), log-uniform aspect, probability p, normal fill N(0,1)", () => {
  const rng = Rng.fromSeed(6);
  const W = 224, H = 224, n = 20000;
  const areas: number[] = [], logAspects: number[] = [];
  for (let i = 0; i < n; i++) {
    const b = randomErasingBox(rng, W, H)!;
    assert(b.top + b.height <= H && b.left + b.width <= W && b.height < H && b.width < W);
    areas.push((b.width * b.height) / (W * H));
    logAspects.push(Math.log(b.height / b.width));
  }
  const [am, av] = meanVar(areas);
  assert(Math.abs(am - 0.175) < 0.005, `erase area mean ${am}`);
  assert(Math.abs(av - 0.31 ** 2 / 12) < 0.001, `erase area variance ${av}`);
  const [lm] = meanVar(logAspects);
  assert(Math.abs(lm - (Math.log(0.3) + Math.log(3.3)) / 2) < 0.02, `log aspect mean ${lm}`);

  const img = createImage(64, 48, [10, 20, 30]);
  let erased = 0;
  const z: number[][] = [[], [], []];
  for (let i = 0; i < 2000; i++) {
    const out = randomErasing(img, rng, { probability: 0.25, fill: "normal" });
    if (out === img) continue;
    erased++;
    for (let p = 0; p < out.data.length; p++) {
      if (out.data[p] !== img.data[p] || (p % 3 === 0 && out.data[p + 1] !== img.data[p + 1])) {
        const c = p % 3;
        z[c].push((out.data[p] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]);
      }
    }
  }
  assertRate(erased, 2000, 0.25, "erasing probability");
  for (const zc of z) {
    const [m, v] = meanVar(zc);
    // uint8 quantization and clipping keep these close to, not exactly, N(0, 1).
    assert(Math.abs(m) < 0.05 && Math.abs(v - 1) < 0.08, `noise mean ${m} var ${v}`);
  }
});
