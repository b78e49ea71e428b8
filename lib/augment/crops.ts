/**
 * The crops of the train and test transforms, as torchvision (v2) does them on PIL images:
 * RandomResizedCrop, Resize(short side), CenterCrop, and RandomCrop with reflect padding.
 */
import type { Rng } from "../ir/rng.ts";
import { createImage, type RGBImage } from "./image.ts";
import { roundHalfEven } from "./pymath.ts";
import { resize, resizedCrop } from "./resize.ts";

/** A crop region in torchvision's (top, left, height, width) terms. */
export type CropRegion = { top: number; left: number; height: number; width: number };

/**
 * torchvision's `RandomResizedCrop.get_params`: up to 10 tries of area fraction U(scale) and
 * log-uniform aspect ratio, `round` half to even; else a centred crop with the aspect clamped.
 */
export function randomResizedCropParams(
  rng: Rng,
  width: number,
  height: number,
  scale: readonly [number, number] = [0.08, 1.0],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): CropRegion {
  const area = height * width;
  const logLo = Math.log(ratio[0]), logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniformRange(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniformRange(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const top = rng.randint(0, height - h);
      const left = rng.randint(0, width - w);
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w: number, h: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    w = width;
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    h = height;
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  } else {
    w = width;
    h = height;
  }
  return {
    top: Math.floor((height - h) / 2),
    left: Math.floor((width - w) / 2),
    height: h,
    width: w,
  };
}

/** `RandomResizedCrop(size, interpolation=BICUBIC)`: crop, then resize to size x size. */
export function randomResizedCrop(img: RGBImage, size: number, rng: Rng): RGBImage {
  const r = randomResizedCropParams(rng, img.width, img.height);
  return resizedCrop(img, r.left, r.top, r.width, r.height, size, size, "bicubic");
}

/** `Resize(size)` with an int: the short side becomes `size`, the long `int(size * long / short)`. */
export function resizeShortSide(img: RGBImage, size: number): RGBImage {
  const { width: w, height: h } = img;
  const short = Math.min(w, h), long = Math.max(w, h);
  const newLong = Math.trunc((size * long) / short);
  const [nw, nh] = w <= h ? [size, newLong] : [newLong, size];
  if (nw === w && nh === h) return img;
  return resize(img, nw, nh, { resample: "bicubic" });
}

/**
 * `CenterCrop(size)`: offsets `round((H - size) / 2)` half to even; an image smaller than the crop
 * is first padded with zeros as torchvision does.
 */
export function centerCrop(img: RGBImage, size: number): RGBImage {
  const { width: w, height: h } = img;
  const padL = size > w ? Math.floor((size - w) / 2) : 0;
  const padT = size > h ? Math.floor((size - h) / 2) : 0;
  const pw = Math.max(w, size), ph = Math.max(h, size);
  const top = roundHalfEven((ph - size) / 2), left = roundHalfEven((pw - size) / 2);
  const out = createImage(size, size);
  for (let y = 0; y < size; y++) {
    const sy = top + y - padT;
    if (sy < 0 || sy >= h) continue;
    const x0 = Math.max(0, padL - left), x1 = Math.min(size, w + padL - left);
    if (x1 <= x0) continue;
    const s = (sy * w + (left + x0 - padL)) * 3;
    out.data.set(img.data.subarray(s, s + (x1 - x0) * 3), (y * size + x0) * 3);
  }
  return out;
}

/**
 * `RandomCrop(size, padding=pad, padding_mode="reflect")`: a size x size window at a uniform
 * offset of the image reflect-padded by `pad` (edge pixel not repeated), read without padding.
 */
export function randomCropReflect(img: RGBImage, size: number, pad: number, rng: Rng): RGBImage {
  const ph = img.height + 2 * pad, pw = img.width + 2 * pad;
  if (ph < size || pw < size) {
    throw new RangeError(
      `randomCropReflect: padded image ${pw}x${ph} is smaller than the crop ${size}`,
    );
  }
  const top = rng.randint(0, ph - size), left = rng.randint(0, pw - size);
  return cropReflect(img, top - pad, left - pad, size, size);
}

/** DeiT-III's "simple random crop": Resize(size), then RandomCrop(size, 4, reflect). */
export function simpleRandomCrop(img: RGBImage, size: number, rng: Rng): RGBImage {
  return randomCropReflect(resizeShortSide(img, size), size, 4, rng);
}

/** Pad every side by `pad` pixels, reflecting without repeating the edge (torchvision "reflect"). */
export function padReflect(img: RGBImage, pad: number): RGBImage {
  if (!Number.isInteger(pad) || pad < 0) {
    throw new RangeError(`padReflect: pad must be a non-negative integer, got ${pad}`);
  }
  return cropReflect(img, -pad, -pad, img.width + 2 * pad, img.height + 2 * pad);
}

/** A w x h window at (top, left) of the image extended by reflection (numpy's "reflect"). */
export function cropReflect(
  img: RGBImage,
  top: number,
  left: number,
  w: number,
  h: number,
): RGBImage {
  const out = createImage(w, h);
  const xs = new Int32Array(w);
  for (let x = 0; x < w; x++) xs[x] = reflectIndex(left + x, img.width) * 3;
  const src = img.data, dst = out.data;
  let o = 0;
  for (let y = 0; y < h; y++) {
    const row = reflectIndex(top + y, img.height) * img.width * 3;
    for (let x = 0; x < w; x++) {
      const p = row + xs[x];
      dst[o++] = src[p];
      dst[o++] = src[p + 1];
      dst[o++] = src[p + 2];
    }
  }
  return out;
}

function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  i = ((i % period) + period) % period;
  return i < n ? i : period - i;
}
