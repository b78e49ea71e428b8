/** Policy strings parsed as timm parses them, and malformed ones rejected with the valid forms. */
import {
  parsePolicy,
  RAND_INCREASING_TRANSFORMS,
  RAND_TRANSFORMS,
  type RandAugmentSpec,
} from "../../lib/augment/policy_strings.ts";
import { applyOp, OP_NAMES } from "../../lib/augment/ops.ts";
import { createImage } from "../../lib/augment/image.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";

function rand(policy: string): RandAugmentSpec {
  const spec = parsePolicy(policy);
  assert(spec.kind === "rand", policy);
  return spec as RandAugmentSpec;
}

Deno.test("policy: rand-m9-mstd0.5-inc1 is timm's increasing RandAugment", () => {
  const s = rand("rand-m9-mstd0.5-inc1");
  assertEquals(s.ops.map((o) => o.name), [...RAND_INCREASING_TRANSFORMS]);
  assert(s.ops.every((o) => o.magnitude === 9 && o.prob === 0.5));
  assertEquals([s.numOps, s.magnitudeStd, s.magnitudeMax, s.weights], [
    2,
    0.5,
    undefined,
    undefined,
  ]);
});

Deno.test("policy: RandAugment sections n, p, mmax, mstd>100, defaults, any order", () => {
  const d = rand("rand");
  assertEquals(d.ops.map((o) => o.name), [...RAND_TRANSFORMS]);
  assertEquals([d.numOps, d.magnitudeStd, d.ops[0].magnitude, d.ops[0].prob], [2, 0, 10, 0.5]);
  const s = rand("rand-n3-p0.7-mmax15-m12-mstd101");
  assertEquals([s.numOps, s.ops[0].prob, s.magnitudeMax, s.ops[0].magnitude], [3, 0.7, 15, 12]);
  assertEquals(s.magnitudeStd, Infinity);
  // timm keeps the first mstd (hparams.setdefault) and tests bool(val) for inc.
  assertEquals(rand("rand-mstd0.2-mstd0.9").magnitudeStd, 0.2);
  assertEquals(rand("rand-inc0").ops[4].name, "PosterizeIncreasing");
});

Deno.test("policy: weighted op sets (tweights, t3aw, w0) and the 3a set", () => {
  const w = rand("rand-m9-tweights");
  assertEquals(w.ops.length, 15);
  assert(Math.abs(w.weights!.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert(Math.abs(w.weights![0] - 3 / 10.1) < 1e-12); // Rotate: weight 3 of a total 10.1
  assertEquals(rand("rand-t3a").ops.map((o) => o.name), [
    "SolarizeIncreasing",
    "Desaturate",
    "GaussianBlur",
  ]);
  assertEquals(rand("rand-t3aw").ops.length, 14);
  const w0 = rand("rand-w0");
  assertEquals(w0.weights![w0.ops.findIndex((o) => o.name === "Rotate")], 0.3);
  assertEquals(w0.weights![w0.ops.findIndex((o) => o.name === "Invert")], 0);
});

Deno.test("policy: AutoAugment and AugMix strings", () => {
  for (const name of ["v0", "v0r", "original", "originalr"]) {
    const s = parsePolicy(name);
    assert(s.kind === "auto" && s.subPolicies.length === 25, name);
  }
  const a3 = parsePolicy("3a");
  assert(a3.kind === "auto");
  assertEquals(a3.subPolicies.map((sp) => sp.map((o) => [o.name, o.prob, o.magnitude])), [
    [["Solarize", 1, 5]],
    [["Desaturate", 1, 10]],
    [["GaussianBlurRand", 1, 10]],
  ]);
  const v = parsePolicy("v0-mstd0.5");
  assert(v.kind === "auto" && v.magnitudeStd === 0.5);
  const m = parsePolicy("augmix-m5-w4-d2-a0.5-b1");
  assert(m.kind === "augmix");
  assertEquals([m.width, m.depth, m.alpha, m.blended, m.magnitudeStd], [4, 2, 0.5, true, Infinity]);
  assertEquals(m.ops[0].magnitude, 5);
  assertEquals(parsePolicy("none"), { kind: "none" });
});

Deno.test("policy: malformed strings throw, listing the valid forms", () => {
  for (
    const bad of [
      "",
      "randaugment",
      "rand-x9",
      "rand-m",
      "rand-m9.5",
      "rand-mstdx",
      "rand-tfoo",
      "rand-w1",
      "v1",
      "v0-m9",
      "augmix-q1",
      "Rand-m9",
    ]
  ) {
    assertThrows(() => parsePolicy(bad), "valid forms");
  }
  assertThrows(() => parsePolicy("rand-m9-foo"), 'section "foo"');
  assertThrows(() => parsePolicy("rand-n20-tweights"), "n must be at most 15");
  assertThrows(() => parsePolicy("rand-p1.5"), "p must be in [0, 1]");
});

Deno.test("applyOp: unknown op and bad arguments give clear errors", () => {
  const img = createImage(4, 3);
  assertThrows(() => applyOp("Rotat", img, [1]), "valid ops: AutoContrast");
  assertThrows(() => applyOp("Rotate", img, []), "expected 1 finite numeric argument");
  assertThrows(() => applyOp("Rotate", img, [NaN]), "expected 1");
  assertThrows(() => applyOp("Rotate", img, [3], { resample: "lanczos" as "bicubic" }), "resample");
  assertThrows(() => applyOp("Rotate", img, [3], { fill: [1, 2, 300] }), "fill");
  assertThrows(() => applyOp("Invert", { width: 4, height: 3, data: new Uint8Array(5) }), "36");
  assertThrows(() => applyOp("GaussianBlurRand", img, [1]), "pass { rng }");
  assertEquals(OP_NAMES.length, 27);
});
