/**
 * `ImageFilter.GaussianBlur(radius)` as Pillow computes it (libImaging/BoxBlur.c): three passes of
 * an "extended" box blur per axis (Gwosdek et al. 2011), whose fractional radius is derived from
 * the Gaussian's variance. Not a true Gaussian; bit-exact with Pillow.
 */
import type { RGBImage } from "./image.ts";

/** `img.filter(ImageFilter.GaussianBlur(radius))`. */
export function gaussianBlur(img: RGBImage, radius: number): RGBImage {
  if (typeof radius !== "number" || !Number.isFinite(radius) || radius < 0) {
    throw new RangeError(`gaussianBlur: radius must be a finite number >= 0, got ${radius}`);
  }
  if (radius === 0) return { width: img.width, height: img.height, data: img.data.slice() };
  return boxBlur(img, gaussianBoxRadius(Math.fround(radius), 3), 3);
}

/** `img.filter(ImageFilter.BoxBlur(radius))` with `passes` passes (Pillow uses 1). */
export function boxBlur(img: RGBImage, radius: number, passes = 1): RGBImage {
  const r = Math.fround(radius);
  const { width: w, height: h } = img;
  const out = img.data.slice();
  if (r === 0) return { width: w, height: h, data: out };
  // Passes along one axis never mix lines, so each line takes all its passes at once: rows
  // first (Pillow's horizontal passes), then columns (its passes over the transposed image).
  const n = Math.max(w, h) * 3;
  const a = new Uint8Array(n), b = new Uint8Array(n);
  const rowParams = lineParams(r, w), colParams = lineParams(r, h);
  for (let y = 0; y < h; y++) {
    const row = out.subarray(y * w * 3, (y + 1) * w * 3);
    a.set(row);
    row.set(blurPasses(a, b, w, rowParams, passes).subarray(0, w * 3));
  }
  for (let x = 0; x < w; x++) {
    for (let y = 0, p = x * 3; y < h; y++, p += w * 3) {
      a[y * 3] = out[p];
      a[y * 3 + 1] = out[p + 1];
      a[y * 3 + 2] = out[p + 2];
    }
    const res = blurPasses(a, b, h, colParams, passes);
    for (let y = 0, p = x * 3; y < h; y++, p += w * 3) {
      out[p] = res[y * 3];
      out[p + 1] = res[y * 3 + 1];
      out[p + 2] = res[y * 3 + 2];
    }
  }
  return { width: w, height: h, data: out };
}

// ---------------------------------------------------------------------------------------------

/** Pillow's _gaussian_blur_radius, in C float arithmetic. */
function gaussianBoxRadius(radius: number, passes: number): number {
  const fr = Math.fround;
  const sigma2 = fr(fr(radius * radius) / passes);
  const L = fr(Math.sqrt(12.0 * sigma2 + 1.0));
  const l = fr(Math.floor((L - 1.0) / 2.0));
  let a = fr(fr(2 * l + 1) * fr(fr(l * fr(l + 1)) - fr(3 * sigma2)));
  a = fr(a / fr(6 * fr(sigma2 - fr(fr(l + 1) * fr(l + 1)))));
  return fr(l + a);
}

type LineParams = { radius: number; ww: number; fw: number; edgeA: number; edgeB: number };

function lineParams(floatRadius: number, n: number): LineParams {
  const radius = Math.trunc(floatRadius);
  // (UINT32)(1 << 24) / (floatRadius * 2 + 1) is a float division, truncated to an integer.
  const ww = Math.trunc(Math.fround(16777216 / Math.fround(Math.fround(floatRadius * 2) + 1)));
  const fw = Math.floor((16777216 - (radius * 2 + 1) * ww) / 2);
  return { radius, ww, fw, edgeA: Math.min(radius + 1, n), edgeB: Math.max(n - radius - 1, 0) };
}

/** `passes` line blurs ping-ponging between a and b; returns the buffer holding the result. */
function blurPasses(
  a: Uint8Array,
  b: Uint8Array,
  n: number,
  p: LineParams,
  passes: number,
): Uint8Array {
  let src = a, dst = b;
  for (let i = 0; i < passes; i++) {
    blurLine(src, dst, n, p);
    [src, dst] = [dst, src];
  }
  return src;
}

/**
 * Pillow's ImagingLineBoxBlur over an interleaved RGB line of n pixels: a running box sum of
 * width 2r+1 (weight ww) plus the two pixels just outside it (weight fw), edge pixels repeated,
 * in 8.24 fixed point. `(bulk + 2^23) >> 24` is taken on the sum mod 2^32 (Math.imul), which is
 * exact because the true value stays below 2^32.
 */
function blurLine(inp: Uint8Array, out: Uint8Array, n: number, p: LineParams): void {
  const { radius, ww, fw, edgeA, edgeB } = p;
  const R = 8388608;
  const r3 = radius * 3, L = (n - 1) * 3;
  const f0 = inp[0], f1 = inp[1], f2 = inp[2];
  const l0 = inp[L], l1 = inp[L + 1], l2 = inp[L + 2];
  // The sum for pixel -1: the first pixel radius+1 times, then pixels 0..edgeA-2, then the last
  // pixel for the part of the window beyond the line.
  let a0 = f0 * (radius + 1), a1 = f1 * (radius + 1), a2 = f2 * (radius + 1);
  for (let x = 0; x < edgeA - 1; x++) {
    a0 += inp[x * 3];
    a1 += inp[x * 3 + 1];
    a2 += inp[x * 3 + 2];
  }
  const m = radius - edgeA + 1;
  a0 += l0 * m;
  a1 += l1 * m;
  a2 += l2 * m;
  // Three stretches: the window's left edge clamped to pixel 0, both edges inside, the right
  // edge clamped to the last pixel (when the window is wider than the line, the middle stretch
  // has both clamped).
  const firstEnd = Math.min(edgeA, edgeB);
  let x = 0;
  for (; x < firstEnd; x++) {
    const q = x * 3, a = q + r3, b = a + 3;
    a0 += inp[a] - f0;
    a1 += inp[a + 1] - f1;
    a2 += inp[a + 2] - f2;
    out[q] = (Math.imul(a0, ww) + Math.imul(f0 + inp[b], fw) + R) >>> 24;
    out[q + 1] = (Math.imul(a1, ww) + Math.imul(f1 + inp[b + 1], fw) + R) >>> 24;
    out[q + 2] = (Math.imul(a2, ww) + Math.imul(f2 + inp[b + 2], fw) + R) >>> 24;
  }
  if (edgeA <= edgeB) {
    for (; x < edgeB; x++) {
      const q = x * 3, l = q - r3 - 3, a = q + r3, b = a + 3;
      const v0 = inp[l], v1 = inp[l + 1], v2 = inp[l + 2];
      a0 += inp[a] - v0;
      a1 += inp[a + 1] - v1;
      a2 += inp[a + 2] - v2;
      out[q] = (Math.imul(a0, ww) + Math.imul(v0 + inp[b], fw) + R) >>> 24;
      out[q + 1] = (Math.imul(a1, ww) + Math.imul(v1 + inp[b + 1], fw) + R) >>> 24;
      out[q + 2] = (Math.imul(a2, ww) + Math.imul(v2 + inp[b + 2], fw) + R) >>> 24;
    }
  } else {
    for (; x < edgeA; x++) {
      const q = x * 3;
      a0 += l0 - f0;
      a1 += l1 - f1;
      a2 += l2 - f2;
      out[q] = (Math.imul(a0, ww) + Math.imul(f0 + l0, fw) + R) >>> 24;
      out[q + 1] = (Math.imul(a1, ww) + Math.imul(f1 + l1, fw) + R) >>> 24;
      out[q + 2] = (Math.imul(a2, ww) + Math.imul(f2 + l2, fw) + R) >>> 24;
    }
  }
  for (; x < n; x++) {
    const q = x * 3, l = q - r3 - 3;
    const v0 = inp[l], v1 = inp[l + 1], v2 = inp[l + 2];
    a0 += l0 - v0;
    a1 += l1 - v1;
    a2 += l2 - v2;
    out[q] = (Math.imul(a0, ww) + Math.imul(v0 + l0, fw) + R) >>> 24;
    out[q + 1] = (Math.imul(a1, ww) + Math.imul(v1 + l1, fw) + R) >>> 24;
    out[q + 2] = (Math.imul(a2, ww) + Math.imul(v2 + l2, fw) + R) >>> 24;
  }
}
