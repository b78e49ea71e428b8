/**
 * Resizing as Pillow's `Image.resize` (libImaging/Resample.c): a separable two-pass convolution
 * (horizontal into a uint8 intermediate, then vertical) whose kernel support grows with the
 * downscale factor (antialiasing), coefficients normalized to sum 1 and held in 22-bit fixed
 * point. Nearest is Pillow's scale-only affine path. Results match Pillow bit for bit.
 */
import { checkImage, createImage, crop, type RGBImage } from "./image.ts";
import { resampleRegion, type ResizeFilter } from "./resample.ts";

export { crop } from "./image.ts";
export { type ResizeFilter, setResizeBackend } from "./resample.ts";

export const RESIZE_FILTERS: readonly ResizeFilter[] = [
  "nearest",
  "box",
  "bilinear",
  "hamming",
  "bicubic",
  "lanczos",
];

export type ResizeOptions = {
  /** Default "bicubic", as Pillow's default for RGB images. */
  resample?: ResizeFilter;
  /** Source region `[left, top, right, bottom]` in (possibly fractional) pixels, as Pillow. */
  box?: readonly [number, number, number, number];
};

/** `img.resize((width, height), resample, box)` as Pillow computes it. */
export function resize(
  img: RGBImage,
  width: number,
  height: number,
  opts: ResizeOptions = {},
): RGBImage {
  checkImage(img, "resize");
  const resample = opts.resample ?? "bicubic";
  if (!RESIZE_FILTERS.includes(resample)) {
    throw new RangeError(
      `resize: unknown resample "${resample}"; valid: ${RESIZE_FILTERS.join(", ")}`,
    );
  }
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`resize: target size must be positive integers, got ${width}x${height}`);
  }
  if (opts.box !== undefined && (!Array.isArray(opts.box) || opts.box.length !== 4)) {
    throw new RangeError(`resize: box must be [left, top, right, bottom], got ${opts.box}`);
  }
  // Pillow parses the box as C floats.
  const box = (opts.box ?? [0, 0, img.width, img.height]).map(Math.fround);
  if (box.some((v) => !Number.isFinite(v))) {
    throw new RangeError(`resize: box must be four finite numbers, got ${opts.box}`);
  }
  const [l, t, r, b] = box;
  if (l < 0 || t < 0) throw new RangeError(`resize: box offset can't be negative: ${opts.box}`);
  if (r > img.width || b > img.height) {
    throw new RangeError(
      `resize: box ${opts.box} exceeds the ${img.width}x${img.height} source image`,
    );
  }
  if (r - l < 0 || b - t < 0) throw new RangeError(`resize: box can't be empty: ${opts.box}`);

  // Integer box of exactly the target size: a plain crop.
  if (Number.isInteger(l) && Number.isInteger(t) && r - l === width && b - t === height) {
    return crop(img, l, t, width, height);
  }
  if (resample === "nearest") return resizeNearest(img, width, height, l, t, r, b);
  return resampleRegion(img, 0, 0, img.width, img.height, width, height, resample, l, t, r, b);
}

/**
 * Crop then resize, as torchvision's `resized_crop` on a PIL image: `img.crop(region)` followed by
 * `.resize((width, height), resample)`. The crop is not materialized; taps are clamped to the
 * region exactly as they would be to the edges of the cropped image.
 */
export function resizedCrop(
  img: RGBImage,
  left: number,
  top: number,
  w: number,
  h: number,
  width: number,
  height: number,
  resample: Exclude<ResizeFilter, "nearest"> = "bicubic",
): RGBImage {
  const ints = [left, top, w, h, width, height].every(Number.isInteger);
  if (
    !ints || left < 0 || top < 0 || left + w > img.width || top + h > img.height || w < 1 ||
    h < 1 || width < 1 || height < 1
  ) {
    throw new RangeError(
      `resizedCrop: region (${left}, ${top}) ${w}x${h} is not inside the ` +
        `${img.width}x${img.height} image`,
    );
  }
  if (w === width && h === height) return crop(img, left, top, w, h);
  return resampleRegion(img, left, top, w, h, width, height, resample, 0, 0, w, h);
}

// ---------------------------------------------------------------------------------------------

/** Pillow's nearest resize: ImagingScaleAffine with a = [(r-l)/w, 0, l, 0, (b-t)/h, t]. */
function resizeNearest(
  img: RGBImage,
  width: number,
  height: number,
  l: number,
  t: number,
  r: number,
  b: number,
): RGBImage {
  const a0 = Math.fround(r - l) / width, a4 = Math.fround(b - t) / height;
  const out = createImage(width, height);
  // Positions accumulate by repeated addition, as Pillow's loop does. Columns between the first
  // and last valid one are copied from their table entry (0 where invalid, as Pillow's calloc).
  const xin = new Int32Array(width);
  let xmin = width, xmax = 0;
  let xo = l + a0 * 0.5;
  for (let x = 0; x < width; x++) {
    const xi = coord(xo);
    if (xi >= 0 && xi < img.width) {
      xmax = x + 1;
      if (x < xmin) xmin = x;
      xin[x] = xi * 3;
    }
    xo += a0;
  }
  let yo = t + a4 * 0.5;
  const src = img.data, dst = out.data;
  for (let y = 0; y < height; y++) {
    const yi = coord(yo);
    yo += a4;
    if (yi < 0 || yi >= img.height) continue;
    const rowIn = yi * img.width * 3;
    let o = (y * width + xmin) * 3;
    for (let x = xmin; x < xmax; x++) {
      const p = rowIn + xin[x];
      dst[o++] = src[p];
      dst[o++] = src[p + 1];
      dst[o++] = src[p + 2];
    }
  }
  return out;
}

/** Pillow's COORD: -1 for negatives, else truncation. */
function coord(v: number): number {
  return v < 0 ? -1 : Math.trunc(v);
}
