/**
 * Pillow 9.4 reference images (scripts/fixtures/make_augment_fixtures.py) on non-square images and
 * argument values beyond the reference manifest: every resample filter with and without
 * fractional boxes, rotations (incl. the right-angle fast paths), shears, translations, arbitrary
 * affine matrices, all point and enhance ops over a range of arguments, blurs, flips, reflect
 * padding, torchvision's crop-then-resize and the test transform, and a low-contrast image for equalize / autocontrast edge cases.
 */
import { boxBlur } from "../../lib/augment/blur.ts";
import { grayscale } from "../../lib/augment/color.ts";
import { cropReflect } from "../../lib/augment/crops.ts";
import {
  affine,
  type AffineMatrix,
  type AffineResample,
  flipLeftRight,
  flipTopBottom,
  rotate,
  rotate180,
  rotate270,
  rotate90,
} from "../../lib/augment/geometry.ts";
import type { RGB, RGBImage } from "../../lib/augment/image.ts";
import { applyOp } from "../../lib/augment/ops.ts";
import {
  resize,
  resizedCrop,
  type ResizeFilter,
  setResizeBackend,
} from "../../lib/augment/resize.ts";
import { createTestTransform } from "../../lib/augment/transforms.ts";
import { assert, assertEquals } from "../assert.ts";
import { assertImageClose, fixture, FIXTURES, readJson } from "./helpers.ts";

type Case = {
  kind: string;
  source: string;
  file: string;
  [k: string]: unknown;
};
const manifest = readJson<{ pillow: string; sources: Record<string, string>; cases: Case[] }>(
  FIXTURES + "extra/manifest.json",
);
const sources: Record<string, RGBImage> = {};
for (const [name, file] of Object.entries(manifest.sources)) {
  sources[name] = await fixture("extra/" + file);
}

function replay(c: Case, img: RGBImage): RGBImage {
  switch (c.kind) {
    case "resize":
      return resize(img, ...(c.size as [number, number]), {
        resample: c.resample as ResizeFilter,
        box: (c.box as [number, number, number, number] | null) ?? undefined,
      });
    case "op":
      // applyOp takes timm's two filters; a nearest rotation calls the geometry core directly.
      if (c.op === "Rotate" && c.resample === "nearest") {
        return rotate(img, (c.args as number[])[0], { resample: "nearest", fill: c.fill as RGB });
      }
      return applyOp(c.op as string, img, c.args as number[], {
        resample: (c.resample ?? undefined) as "bilinear" | "bicubic",
        fill: c.fill as RGB,
      });
    case "affine":
      return affine(img, c.matrix as AffineMatrix, {
        resample: c.resample as AffineResample,
        fill: c.fill as RGB,
      });
    case "transpose":
      return ({
        flip_lr: flipLeftRight,
        flip_tb: flipTopBottom,
        rot90: rotate90,
        rot180: rotate180,
        rot270: rotate270,
      } as Record<string, (i: RGBImage) => RGBImage>)[c.method as string](img);
    case "grayscale":
      return grayscale(img);
    case "boxblur":
      return boxBlur(img, c.radius as number);
    case "crop_resize": {
      const [left, top, w, h] = c.region as number[];
      const size = c.size as number;
      return resizedCrop(img, left, top, w, h, size, size, "bicubic");
    }
    case "test_transform":
      return createTestTransform({
        imageSize: c.image_size as number,
        testCropRatio: c.ratio as number,
      })(img);
    case "reflect_crop":
      return cropReflect(img, c.top as number, c.left as number, c.w as number, c.h as number);
  }
  throw new Error(`unknown case kind ${c.kind}`);
}

Deno.test("extra fixtures: every Pillow 9.4 case on non-square images is bit-exact", async () => {
  assert(manifest.cases.length > 400, "manifest has the expected cases");
  const failures: string[] = [];
  const kinds = new Map<string, number>();
  for (const c of manifest.cases) {
    const want = await fixture("extra/" + c.file);
    const got = replay(c, sources[c.source]);
    try {
      assertImageClose(got, want, `${c.file} ${JSON.stringify({ ...c, file: undefined })}`);
    } catch (e) {
      failures.push((e as Error).message);
    }
    kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
  }
  assertEquals(failures, []);
  assertEquals([...kinds.keys()].sort(), [
    "affine",
    "boxblur",
    "crop_resize",
    "grayscale",
    "op",
    "reflect_crop",
    "resize",
    "test_transform",
    "transpose",
  ]);
});

Deno.test("extra fixtures: the TypeScript resize fallback is bit-exact too", async () => {
  setResizeBackend("js");
  try {
    let n = 0;
    for (const c of manifest.cases) {
      if (!["resize", "crop_resize", "test_transform"].includes(c.kind)) continue;
      assertImageClose(replay(c, sources[c.source]), await fixture("extra/" + c.file), c.file);
      n++;
    }
    assert(n > 80, `${n} resize cases`);
  } finally {
    setResizeBackend("wasm");
  }
});
