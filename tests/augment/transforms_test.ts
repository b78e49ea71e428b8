/** The train / test transforms: shapes, reproducibility, stage composition and validation. */
import { Rng } from "../../lib/ir/rng.ts";
import {
  createTestTransform,
  createTrainTransform,
  type TrainTransformOptions,
} from "../../lib/augment/transforms.ts";
import {
  centerCrop,
  padReflect,
  randomResizedCropParams,
  resizeShortSide,
} from "../../lib/augment/crops.ts";
import { flipLeftRight } from "../../lib/augment/geometry.ts";
import { resizedCrop } from "../../lib/augment/resize.ts";
import type { RGBImage } from "../../lib/augment/image.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { fixture } from "./helpers.ts";

const photo = await fixture("extra/src-land.png"); // 67x45
const portrait = await fixture("extra/src-port.png"); // 38x59

const base: TrainTransformOptions = {
  imageSize: 32,
  randomCrop: "rrc",
  colorJitter: 0.3,
  autoAugment: "rand-m9-mstd0.5-inc1",
  randomErasing: 0.25,
};

const equal = (a: RGBImage, b: RGBImage) =>
  a.width === b.width && a.height === b.height && a.data.every((v, i) => v === b.data[i]);

Deno.test("train transform: imageSize x imageSize for every crop mode and policy", () => {
  const rng = Rng.fromSeed(7);
  for (const randomCrop of ["rrc", "src", "none"] as const) {
    for (
      const autoAugment of [
        "rand-m9-mstd0.5-inc1",
        "3a",
        "v0",
        "v0r",
        "original",
        "originalr",
        "augmix-m3",
        "augmix-m3-w2-d2-b1",
        "rand-n3-m12-mmax15-tweights",
        "none",
      ]
    ) {
      const t = createTrainTransform({ ...base, randomCrop, autoAugment, randomErasing: 0.5 });
      for (const [i, img] of [photo, portrait].entries()) {
        const out = t(img, rng.child(i));
        assertEquals([out.width, out.height, out.data.length], [32, 32, 32 * 32 * 3]);
      }
    }
  }
});

Deno.test("train transform: a (seed, sample path) reproduces the image; other paths differ", () => {
  const t = createTrainTransform(base);
  const root = Rng.fromSeed(1234);
  const a = t(photo, root.child(0, 17));
  const b = t(photo, Rng.fromSeed(1234).child(0, 17));
  assert(equal(a, b), "same path, same image");
  let distinct = 0;
  for (let i = 0; i < 10; i++) if (!equal(a, t(photo, root.child(0, i)))) distinct++;
  assert(distinct >= 9, `other sample paths give other images (${distinct}/10)`);
  // The handed-in Rng is not advanced: it only derives child streams.
  const r = Rng.fromSeed(5);
  t(photo, r);
  assertEquals(r.uniform(), Rng.fromSeed(5).uniform());
});

Deno.test("train transform: stages compose as crop -> flip (p 1/2), each from its own stream", () => {
  const t = createTrainTransform({
    ...base,
    colorJitter: 0,
    autoAugment: "none",
    randomErasing: 0,
  });
  let flipped = 0;
  const n = 200;
  for (let i = 0; i < n; i++) {
    const rng = Rng.fromSeed(9).child(i);
    const r = randomResizedCropParams(rng.child(0), photo.width, photo.height);
    const cropped = resizedCrop(photo, r.left, r.top, r.width, r.height, 32, 32, "bicubic");
    const out = t(photo, rng);
    if (equal(out, cropped)) continue;
    assert(equal(out, flipLeftRight(cropped)), `sample ${i} is the crop or its mirror`);
    flipped++;
  }
  assert(Math.abs(flipped / n - 0.5) < 0.15, `flip rate ${flipped / n}`);
  const noFlip = createTrainTransform({
    ...base,
    randomCrop: "none",
    colorJitter: 0,
    autoAugment: "none",
    randomErasing: 0,
    hflip: false,
  });
  assert(equal(noFlip(portrait, Rng.fromSeed(1)), centerCrop(resizeShortSide(portrait, 32), 32)));
});

Deno.test("test transform: Resize(int(size / ratio)) then CenterCrop", () => {
  const t = createTestTransform({ imageSize: 24, testCropRatio: 0.875 });
  const out = t(photo);
  assertEquals([out.width, out.height], [24, 24]);
  assert(equal(out, centerCrop(resizeShortSide(photo, 27), 24)));
});

Deno.test("transforms: invalid options and images are rejected when created / applied", () => {
  assertThrows(() => createTrainTransform({ ...base, imageSize: 0 }), "imageSize");
  assertThrows(
    () => createTrainTransform({ ...base, randomCrop: "rc" as "rrc" }),
    "randomCrop must be one of rrc, src, none",
  );
  assertThrows(() => createTrainTransform({ ...base, autoAugment: "rand-k3" }), "valid forms");
  assertThrows(() => createTrainTransform({ ...base, colorJitter: -1 }), "colorJitter");
  assertThrows(() => createTrainTransform({ ...base, randomErasing: 2 }), "randomErasing");
  assertThrows(() => createTestTransform({ imageSize: 24, testCropRatio: 0 }), "testCropRatio");
  const t = createTrainTransform(base);
  assertThrows(
    () => t({ width: 4, height: 4, data: new Uint8Array(10) }, Rng.fromSeed(0)),
    "train transform: image data has 10 bytes, expected 4x4x3 = 48",
  );
});

Deno.test("train / test transforms: degenerate 1x1 and 2x3 inputs still give imageSize^2", () => {
  const dot = { width: 1, height: 1, data: Uint8Array.from([200, 10, 30]) };
  const small = { width: 2, height: 3, data: Uint8Array.from({ length: 18 }, (_, i) => i * 13) };
  for (const randomCrop of ["rrc", "src", "none"] as const) {
    for (const autoAugment of ["rand-m9-mstd0.5-inc1", "3a", "augmix-m3"]) {
      const t = createTrainTransform({ ...base, randomCrop, autoAugment, randomErasing: 1 });
      for (const [i, img] of [dot, small].entries()) {
        const out = t(img, Rng.fromSeed(i));
        assertEquals([out.width, out.height], [32, 32]);
      }
    }
  }
  const out = createTestTransform({ imageSize: 8, testCropRatio: 0.875 })(dot);
  assert(out.width === 8 && out.data.every((v, i) => v === dot.data[i % 3]));
});

Deno.test("padReflect: numpy-style reflection without repeating the edge pixel", () => {
  const row = { width: 3, height: 1, data: Uint8Array.from([1, 1, 1, 2, 2, 2, 3, 3, 3]) };
  const p = padReflect(row, 2);
  assertEquals([p.width, p.height], [7, 5]);
  // Columns 3 2 | 1 2 3 | 2 1 (edge not repeated); every row equal (height 1 reflects onto itself).
  const firstRow = [...p.data.subarray(0, 21)].filter((_, i) => i % 3 === 0);
  assertEquals(firstRow, [3, 2, 1, 2, 3, 2, 1]);
  assert(p.data.every((v, i) => v === p.data[i % 21]));
});
