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
  const line = new Uint8Array(Math.max(w, h) * 3);
  const params = lineParams(r);
  for (let p = 0; p < passes; p++) {
    for (let y = 0; y < h; y++) blurLine(out, y * w * 3, 3, w, params, line);
  }
  for (let p = 0; p < passes; p++) {
    for (let x = 0; x < w; x++) blurLine(out, x * 3, w * 3, h, params, line);
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

type LineParams = { radius: number; ww: number; fw: number };

function lineParams(floatRadius: number): LineParams {
  const radius = Math.trunc(floatRadius);
  // (UINT32)(1 << 24) / (floatRadius * 2 + 1) is a float division, truncated to an integer.
  const ww = Math.trunc(Math.fround(16777216 / Math.fround(Math.fround(floatRadius * 2) + 1)));
  const fw = Math.floor((16777216 - (radius * 2 + 1) * ww) / 2);
  return { radius, ww, fw };
}

/**
 * One extended-box pass over `n` pixels starting at `base` with pixel step `step`, in place
 * (through the `tmp` line, as Pillow commits each line after computing it). Three channels.
 */
function blurLine(
  buf: Uint8Array,
  base: number,
  step: number,
  n: number,
  { radius, ww, fw }: LineParams,
  tmp: Uint8Array,
): void {
  const lastx = n - 1;
  const edgeA = Math.min(radius + 1, n);
  const edgeB = Math.max(n - radius - 1, 0);
  // at(i): channel offset of pixel i within buf.
  const at = (i: number) => base + i * step;
  for (let c = 0; c < 3; c++) {
    let acc = buf[at(0) + c] * (radius + 1);
    for (let x = 0; x < edgeA - 1; x++) acc += buf[at(x) + c];
    acc += buf[at(lastx) + c] * (radius - edgeA + 1);
    const save = (x: number, left: number, right: number) => {
      const bulk = acc * ww + (buf[at(left) + c] + buf[at(right) + c]) * fw;
      tmp[x * 3 + c] = (bulk + 8388608) / 16777216; // >> 24 (truncating store)
    };
    if (edgeA <= edgeB) {
      for (let x = 0; x < edgeA; x++) {
        acc += buf[at(x + radius) + c] - buf[at(0) + c];
        save(x, 0, x + radius + 1);
      }
      for (let x = edgeA; x < edgeB; x++) {
        acc += buf[at(x + radius) + c] - buf[at(x - radius - 1) + c];
        save(x, x - radius - 1, x + radius + 1);
      }
      for (let x = edgeB; x <= lastx; x++) {
        acc += buf[at(lastx) + c] - buf[at(x - radius - 1) + c];
        save(x, x - radius - 1, lastx);
      }
    } else {
      for (let x = 0; x < edgeB; x++) {
        acc += buf[at(x + radius) + c] - buf[at(0) + c];
        save(x, 0, x + radius + 1);
      }
      for (let x = edgeB; x < edgeA; x++) {
        acc += buf[at(lastx) + c] - buf[at(0) + c];
        save(x, 0, lastx);
      }
      for (let x = edgeA; x <= lastx; x++) {
        acc += buf[at(lastx) + c] - buf[at(x - radius - 1) + c];
        save(x, x - radius - 1, lastx);
      }
    }
  }
  for (let x = 0; x < n; x++) {
    const o = at(x);
    buf[o] = tmp[x * 3];
    buf[o + 1] = tmp[x * 3 + 1];
    buf[o + 2] = tmp[x * 3 + 2];
  }
}
