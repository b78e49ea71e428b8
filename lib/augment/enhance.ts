/**
 * PIL.ImageEnhance: each enhancer blends a "degenerate" image towards the original,
 * `out = degenerate + factor * (image - degenerate)`, in C float arithmetic as ImagingBlend
 * (truncated; clipped to [0, 255] when the factor is outside [0, 1]).
 */
import { applyLut, grayscale, luma } from "./color.ts";
import type { RGBImage } from "./image.ts";

/** ImageEnhance.Brightness: blend against black. */
export function brightness(img: RGBImage, factor: number): RGBImage {
  checkFactor(factor, "brightness");
  return blendWithConstant(img, 0, factor);
}

/** ImageEnhance.Contrast: blend against the gray level int(mean(L) + 0.5). */
export function contrast(img: RGBImage, factor: number): RGBImage {
  checkFactor(factor, "contrast");
  const l = luma(img);
  let sum = 0;
  for (let i = 0; i < l.length; i++) sum += l[i];
  const mean = Math.trunc(sum / l.length + 0.5);
  return blendWithConstant(img, mean, factor);
}

/** ImageEnhance.Color: blend against the grayscale (L) image; factor 0 is grayscale. */
export function color(img: RGBImage, factor: number): RGBImage {
  checkFactor(factor, "color");
  if (Math.fround(factor) === 0) return grayscale(img); // Image.blend's alpha == 0 shortcut
  const l = luma(img);
  const n = l.length;
  const degenerate = new Uint8Array(n * 3);
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    degenerate[p] = degenerate[p + 1] = degenerate[p + 2] = l[i];
  }
  return blend(degenerate, img, factor);
}

/** ImageEnhance.Sharpness: blend against the SMOOTH-filtered image (borders unchanged). */
export function sharpness(img: RGBImage, factor: number): RGBImage {
  checkFactor(factor, "sharpness");
  return blend(smooth(img), img, factor);
}

/** `Image.blend(a, b, alpha)` with `a` given as raw interleaved RGB bytes of b's size. */
export function blend(a: Uint8Array, b: RGBImage, alpha: number): RGBImage {
  const { width, height } = b;
  const f = Math.fround(alpha);
  if (f === 0) return { width, height, data: a.slice() };
  if (f === 1) return { width, height, data: b.data.slice() };
  const src = b.data, n = src.length, out = new Uint8Array(n);
  const fr = Math.fround;
  // ImagingBlend computes in C floats: (float)a + alpha * (float)(b - a). The product depends
  // only on b - a, so it comes from a 511-entry table; the sum is rounded to float per value.
  const prod = new Float64Array(511);
  for (let d = -255; d <= 255; d++) prod[d + 255] = fr(f * d);
  if (f >= 0 && f <= 1) {
    for (let i = 0; i < n; i++) out[i] = fr(a[i] + prod[src[i] - a[i] + 255]);
  } else {
    for (let i = 0; i < n; i++) {
      const t = fr(a[i] + prod[src[i] - a[i] + 255]);
      out[i] = t <= 0 ? 0 : t >= 255 ? 255 : t;
    }
  }
  return { width, height, data: out };
}

/**
 * `img.filter(ImageFilter.SMOOTH)`: the 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13 in C floats with a
 * +0.5 rounding offset; the outermost rows and columns are copied unchanged.
 */
export function smooth(img: RGBImage): Uint8Array {
  const { width: w, height: h, data: src } = img;
  const out = src.slice();
  if (w < 3 || h < 3) return out;
  const fr = Math.fround;
  // Products of a byte and a float kernel weight, as tables (exact: the C products are floats).
  const k1 = fr(1 / 13), k5 = fr(5 / 13);
  const p1 = new Float64Array(256), p5 = new Float64Array(256);
  for (let v = 0; v < 256; v++) {
    p1[v] = fr(v * k1);
    p5[v] = fr(v * k5);
  }
  const stride = w * 3;
  for (let y = 1; y < h - 1; y++) {
    const up = (y - 1) * stride, mid = y * stride, dn = (y + 1) * stride;
    for (let x = 3; x < stride - 3; x++) {
      // Pillow sums the row below, then the row itself, then the row above, each left to right.
      const rb = fr(fr(p1[src[dn + x - 3]] + p1[src[dn + x]]) + p1[src[dn + x + 3]]);
      const rm = fr(fr(p1[src[mid + x - 3]] + p5[src[mid + x]]) + p1[src[mid + x + 3]]);
      const ra = fr(fr(p1[src[up + x - 3]] + p1[src[up + x]]) + p1[src[up + x + 3]]);
      const ss = fr(fr(fr(0.5 + rb) + rm) + ra);
      out[mid + x] = ss > 255 ? 255 : ss;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/** Blend against a constant gray: a 256-entry table, since each output depends on one input. */
function blendWithConstant(img: RGBImage, level: number, alpha: number): RGBImage {
  const f = Math.fround(alpha);
  const { width, height } = img;
  if (f === 0) return { width, height, data: new Uint8Array(img.data.length).fill(level) };
  if (f === 1) return { width, height, data: img.data.slice() };
  const fr = Math.fround;
  const inside = f >= 0 && f <= 1;
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    const t = fr(level + fr(f * (v - level)));
    lut[v] = inside ? t : t <= 0 ? 0 : t >= 255 ? 255 : t;
  }
  return applyLut(img, lut);
}

function checkFactor(factor: number, what: string): void {
  if (typeof factor !== "number" || !Number.isFinite(factor)) {
    throw new RangeError(`${what}: enhance factor must be a finite number, got ${factor}`);
  }
}
