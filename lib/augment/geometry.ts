/**
 * Geometric ops as Pillow computes them (libImaging/Geometry.c): flips and right-angle turns,
 * `Image.transform(size, AFFINE, matrix, resample, fillcolor=...)` and `Image.rotate`.
 *
 * The affine matrix maps output to input: the sample point of output pixel (x, y) is
 * `(a*(x+.5) + b*(y+.5) + c, d*(x+.5) + e*(y+.5) + f)`. Points outside the source keep the fill
 * colour. Bilinear reads a 2x2 and bicubic a 4x4 neighbourhood, clamped at the edges; Pillow's
 * bicubic for transforms is the a = -1 cubic (unlike resize's a = -0.5).
 */
import { checkFill, checkImage, createImage, type RGB, type RGBImage } from "./image.ts";
import { pyMod, roundDigits } from "./pymath.ts";

export type AffineResample = "nearest" | "bilinear" | "bicubic";
export const AFFINE_RESAMPLES: readonly AffineResample[] = ["nearest", "bilinear", "bicubic"];

export type AffineMatrix = readonly [number, number, number, number, number, number];

export type AffineOptions = {
  /** Default "nearest", as Pillow. */
  resample?: AffineResample;
  /** Colour of the area outside the source; default black, as Pillow with no fillcolor. */
  fill?: RGB;
};

/** `img.transform(img.size, Image.AFFINE, matrix, resample, fillcolor=fill)`. */
export function affine(img: RGBImage, matrix: AffineMatrix, opts: AffineOptions = {}): RGBImage {
  checkImage(img, "affine");
  const resample = opts.resample ?? "nearest";
  const fill = opts.fill ?? [0, 0, 0];
  checkFill(fill, "affine");
  if (!AFFINE_RESAMPLES.includes(resample)) {
    throw new RangeError(
      `affine: unknown resample "${resample}"; valid: ${AFFINE_RESAMPLES.join(", ")}`,
    );
  }
  if (matrix.length !== 6 || !matrix.every(Number.isFinite)) {
    throw new RangeError(`affine: matrix must be six finite numbers, got [${matrix}]`);
  }
  const out = createImage(img.width, img.height, fill);
  // Shears and translations keep one coordinate exactly at pixel centres (fraction 0), where
  // Pillow's interpolation reduces exactly to the taps of one row or column: same values, less
  // work (x + 0 and 0 * finite are exact).
  const rowExact = matrix[3] === 0 && matrix[4] === 1 && matrix[5] === 0;
  const colExact = matrix[0] === 1 && matrix[1] === 0 && matrix[2] === 0;
  if (resample === "nearest") affineNearest(img, matrix, out);
  else if (rowExact || colExact) affineAxis(img, matrix, out, resample, rowExact);
  else if (resample === "bilinear") affineBilinear(img, matrix, out);
  else affineBicubic(img, matrix, out);
  return out;
}

/** `img.rotate(degrees, resample, fillcolor=fill)` (counter-clockwise, about the centre). */
export function rotate(img: RGBImage, degrees: number, opts: AffineOptions = {}): RGBImage {
  checkImage(img, "rotate");
  if (!Number.isFinite(degrees)) throw new RangeError(`rotate: angle must be finite: ${degrees}`);
  const angle = pyMod(degrees, 360);
  // Pillow's exact fast paths.
  if (angle === 0) return { width: img.width, height: img.height, data: img.data.slice() };
  if (angle === 180) return rotate180(img);
  if ((angle === 90 || angle === 270) && img.width === img.height) {
    return angle === 90 ? rotate90(img) : rotate270(img);
  }
  const w = img.width, h = img.height;
  const cx = w / 2, cy = h / 2;
  const rad = -(angle * (Math.PI / 180));
  const m = [
    roundDigits(Math.cos(rad), 15),
    roundDigits(Math.sin(rad), 15),
    0,
    roundDigits(-Math.sin(rad), 15),
    roundDigits(Math.cos(rad), 15),
    0,
  ];
  m[2] = m[0] * -cx + m[1] * -cy + 0;
  m[5] = m[3] * -cx + m[4] * -cy + 0;
  m[2] += cx;
  m[5] += cy;
  return affine(img, m as unknown as AffineMatrix, opts);
}

/** Mirror left-right. */
export function flipLeftRight(img: RGBImage): RGBImage {
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < h; y++) {
    const row = y * w * 3;
    for (let x = 0, xr = (w - 1) * 3; x < w * 3; x += 3, xr -= 3) {
      out[row + xr] = data[row + x];
      out[row + xr + 1] = data[row + x + 1];
      out[row + xr + 2] = data[row + x + 2];
    }
  }
  return { width: w, height: h, data: out };
}

/** Mirror top-bottom. */
export function flipTopBottom(img: RGBImage): RGBImage {
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(data.length), rowBytes = w * 3;
  for (let y = 0; y < h; y++) {
    out.set(data.subarray(y * rowBytes, (y + 1) * rowBytes), (h - 1 - y) * rowBytes);
  }
  return { width: w, height: h, data: out };
}

/** Pillow's Transpose.ROTATE_90 (counter-clockwise). */
export function rotate90(img: RGBImage): RGBImage {
  const { width: w, height: h } = img;
  return remap(img, h, w, (x, y) => x * w + (w - 1 - y));
}

/** Pillow's Transpose.ROTATE_180. */
export function rotate180(img: RGBImage): RGBImage {
  const { width: w, height: h } = img;
  return remap(img, w, h, (x, y) => (h - 1 - y) * w + (w - 1 - x));
}

/** Pillow's Transpose.ROTATE_270 (clockwise). */
export function rotate270(img: RGBImage): RGBImage {
  const { width: w, height: h } = img;
  return remap(img, h, w, (x, y) => (h - 1 - x) * w + y);
}

// ---------------------------------------------------------------------------------------------

/** Out pixel (x, y) of an outW x outH image takes source pixel index src(x, y). */
function remap(
  img: RGBImage,
  outW: number,
  outH: number,
  src: (x: number, y: number) => number,
): RGBImage {
  const out = new Uint8Array(outW * outH * 3), data = img.data;
  let o = 0;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const p = src(x, y) * 3;
      out[o++] = data[p];
      out[o++] = data[p + 1];
      out[o++] = data[p + 2];
    }
  }
  return { width: outW, height: outH, data: out };
}

function affineBilinear(img: RGBImage, m: AffineMatrix, out: RGBImage): void {
  const [a0, a1, a2, a3, a4, a5] = m;
  const W = img.width, H = img.height, src = img.data, dst = out.data;
  const stride = W * 3;
  let o = 0;
  for (let y = 0; y < out.height; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < out.width; x++, o += 3) {
      const xc = x + 0.5;
      let xin = a0 * xc + a1 * yc + a2;
      let yin = a3 * xc + a4 * yc + a5;
      if (xin < 0 || xin >= W || yin < 0 || yin >= H) continue;
      xin -= 0.5;
      yin -= 0.5;
      const xi = Math.floor(xin), yi = Math.floor(yin);
      const dx = xin - xi, dy = yin - yi;
      const x0 = (xi < 0 ? 0 : xi) * 3, x1 = (xi + 1 < W ? xi + 1 : W - 1) * 3;
      const r0 = (yi < 0 ? 0 : yi) * stride;
      const hasR1 = yi + 1 >= 0 && yi + 1 < H, r1 = (yi + 1) * stride;
      for (let c = 0; c < 3; c++) {
        const p = src[r0 + x0 + c];
        const v1 = p + (src[r0 + x1 + c] - p) * dx;
        let v2 = v1;
        if (hasR1) {
          const q = src[r1 + x0 + c];
          v2 = q + (src[r1 + x1 + c] - q) * dx;
        }
        dst[o + c] = v1 + (v2 - v1) * dy; // Uint8Array store truncates, as the C cast
      }
    }
  }
}

function affineBicubic(img: RGBImage, m: AffineMatrix, out: RGBImage): void {
  const [a0, a1, a2, a3, a4, a5] = m;
  const W = img.width, H = img.height, src = img.data, dst = out.data;
  const stride = W * 3;
  let o = 0;
  for (let y = 0; y < out.height; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < out.width; x++, o += 3) {
      const xc = x + 0.5;
      let xin = a0 * xc + a1 * yc + a2;
      let yin = a3 * xc + a4 * yc + a5;
      if (xin < 0 || xin >= W || yin < 0 || yin >= H) continue;
      xin -= 0.5;
      yin -= 0.5;
      let xi = Math.floor(xin), yi = Math.floor(yin);
      const dx = xin - xi, dy = yin - yi;
      xi--;
      yi--;
      const x0 = clampIndex(xi, W) * 3, x1 = clampIndex(xi + 1, W) * 3;
      const x2 = clampIndex(xi + 2, W) * 3, x3 = clampIndex(xi + 3, W) * 3;
      // Row y is clamped; rows y+1..y+3 outside the image repeat the previous row's value.
      const r0 = clampIndex(yi, H) * stride;
      const ok1 = yi + 1 >= 0 && yi + 1 < H, ok2 = yi + 2 >= 0 && yi + 2 < H;
      const ok3 = yi + 3 >= 0 && yi + 3 < H;
      const r1 = (yi + 1) * stride, r2 = (yi + 2) * stride, r3 = (yi + 3) * stride;
      for (let c = 0; c < 3; c++) {
        const v1 = cubic(
          src[r0 + x0 + c],
          src[r0 + x1 + c],
          src[r0 + x2 + c],
          src[r0 + x3 + c],
          dx,
        );
        const v2 = ok1
          ? cubic(src[r1 + x0 + c], src[r1 + x1 + c], src[r1 + x2 + c], src[r1 + x3 + c], dx)
          : v1;
        const v3 = ok2
          ? cubic(src[r2 + x0 + c], src[r2 + x1 + c], src[r2 + x2 + c], src[r2 + x3 + c], dx)
          : v2;
        const v4 = ok3
          ? cubic(src[r3 + x0 + c], src[r3 + x1 + c], src[r3 + x2 + c], src[r3 + x3 + c], dx)
          : v3;
        const v = cubic(v1, v2, v3, v4, dy);
        dst[o + c] = v <= 0 ? 0 : v >= 255 ? 255 : v;
      }
    }
  }
}

/**
 * Affine sampling when one input coordinate is the output pixel's own centre: with `rowExact`
 * the sample row is y itself (dy = 0) and only the horizontal interpolation remains; otherwise
 * the column is x itself (dx = 0) and only the vertical one remains (rows outside the image
 * repeat the previous one, as Pillow's bicubic does).
 */
function affineAxis(
  img: RGBImage,
  m: AffineMatrix,
  out: RGBImage,
  resample: "bilinear" | "bicubic",
  rowExact: boolean,
): void {
  const [a0, a1, a2, a3, a4, a5] = m;
  const W = img.width, H = img.height, src = img.data, dst = out.data;
  const stride = W * 3;
  const cubicFilter = resample === "bicubic";
  let o = 0;
  for (let y = 0; y < out.height; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < out.width; x++, o += 3) {
      const xc = x + 0.5;
      let xin = a0 * xc + a1 * yc + a2;
      let yin = a3 * xc + a4 * yc + a5;
      if (xin < 0 || xin >= W || yin < 0 || yin >= H) continue;
      xin -= 0.5;
      yin -= 0.5;
      const xi = Math.floor(xin), yi = Math.floor(yin);
      if (rowExact) {
        const dx = xin - xi, row = yi * stride;
        if (cubicFilter) {
          const x0 = row + clampIndex(xi - 1, W) * 3, x1 = row + clampIndex(xi, W) * 3;
          const x2 = row + clampIndex(xi + 1, W) * 3, x3 = row + clampIndex(xi + 2, W) * 3;
          for (let c = 0; c < 3; c++) {
            const v = cubic(src[x0 + c], src[x1 + c], src[x2 + c], src[x3 + c], dx);
            dst[o + c] = v <= 0 ? 0 : v >= 255 ? 255 : v;
          }
        } else {
          const x0 = row + (xi < 0 ? 0 : xi) * 3, x1 = row + (xi + 1 < W ? xi + 1 : W - 1) * 3;
          for (let c = 0; c < 3; c++) {
            const p = src[x0 + c];
            dst[o + c] = p + (src[x1 + c] - p) * dx;
          }
        }
      } else {
        const dy = yin - yi, col = xi * 3;
        if (cubicFilter) {
          const r0 = clampIndex(yi - 1, H) * stride + col;
          const r1 = yi >= 0 && yi < H ? yi * stride + col : r0;
          const r2 = yi + 1 >= 0 && yi + 1 < H ? (yi + 1) * stride + col : r1;
          const r3 = yi + 2 >= 0 && yi + 2 < H ? (yi + 2) * stride + col : r2;
          for (let c = 0; c < 3; c++) {
            const v = cubic(src[r0 + c], src[r1 + c], src[r2 + c], src[r3 + c], dy);
            dst[o + c] = v <= 0 ? 0 : v >= 255 ? 255 : v;
          }
        } else {
          const r0 = (yi < 0 ? 0 : yi) * stride + col;
          const r1 = yi + 1 >= 0 && yi + 1 < H ? (yi + 1) * stride + col : r0;
          for (let c = 0; c < 3; c++) {
            const p = src[r0 + c];
            dst[o + c] = p + (src[r1 + c] - p) * dy;
          }
        }
      }
    }
  }
}

/** Pillow's BICUBIC macro (a = -1), with its exact operation order. */
function cubic(v1: number, v2: number, v3: number, v4: number, d: number): number {
  const p1 = v2;
  const p2 = -v1 + v3;
  const p3 = 2 * (v1 - v2) + v3 - v4;
  const p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

function clampIndex(i: number, n: number): number {
  return i < 0 ? 0 : i < n ? i : n - 1;
}

/**
 * Pillow's nearest affine: a scale-only matrix takes ImagingScaleAffine (positions accumulated by
 * addition), others the 16.16 fixed-point walk (or doubles when coordinates leave its range).
 */
function affineNearest(img: RGBImage, m: AffineMatrix, out: RGBImage): void {
  const [a0, a1, a2, a3, a4, a5] = m;
  const W = img.width, H = img.height, src = img.data, dst = out.data;
  const ow = out.width, oh = out.height;
  const put = (o: number, xi: number, yi: number) => {
    const p = (yi * W + xi) * 3;
    dst[o] = src[p];
    dst[o + 1] = src[p + 1];
    dst[o + 2] = src[p + 2];
  };
  if (a1 === 0 && a3 === 0) {
    const xtab = new Int32Array(ow);
    let xmin = ow, xmax = 0, xo = a2 + a0 * 0.5;
    for (let x = 0; x < ow; x++) {
      const xi = xo < 0 ? -1 : Math.trunc(xo);
      if (xi >= 0 && xi < W) {
        xmax = x + 1;
        if (x < xmin) xmin = x;
        xtab[x] = xi;
      }
      xo += a0;
    }
    let yo = a5 + a4 * 0.5;
    for (let y = 0; y < oh; y++) {
      const yi = yo < 0 ? -1 : Math.trunc(yo);
      yo += a4;
      if (yi < 0 || yi >= H) continue;
      for (let x = xmin; x < xmax; x++) put((y * ow + x) * 3, xtab[x], yi);
    }
    return;
  }
  const fits = (x: number, y: number) =>
    Math.abs(x * a0 + y * a1 + a2) < 32768 && Math.abs(x * a3 + y * a4 + a5) < 32768;
  if (fits(0, 0) && fits(ow, oh) && fits(0, oh) && fits(ow, 0)) {
    const fix = (v: number) => Math.floor(v * 65536 + 0.5);
    const f0 = fix(a0), f1 = fix(a1), f3 = fix(a3), f4 = fix(a4);
    let f2 = fix(a2 + a0 * 0.5 + a1 * 0.5), f5 = fix(a5 + a3 * 0.5 + a4 * 0.5);
    for (let y = 0; y < oh; y++) {
      let xx = f2, yy = f5;
      for (let x = 0; x < ow; x++) {
        const xi = xx >> 16;
        if (xi >= 0 && xi < W) {
          const yi = yy >> 16;
          if (yi >= 0 && yi < H) put((y * ow + x) * 3, xi, yi);
        }
        xx = (xx + f0) | 0;
        yy = (yy + f3) | 0;
      }
      f2 = (f2 + f1) | 0;
      f5 = (f5 + f4) | 0;
    }
    return;
  }
  let xo = a2 + a1 * 0.5 + a0 * 0.5, yo = a5 + a4 * 0.5 + a3 * 0.5;
  for (let y = 0; y < oh; y++) {
    let xx = xo, yy = yo;
    for (let x = 0; x < ow; x++) {
      const xi = xx < 0 ? -1 : Math.trunc(xx);
      if (xi >= 0 && xi < W) {
        const yi = yy < 0 ? -1 : Math.trunc(yy);
        if (yi >= 0 && yi < H) put((y * ow + x) * 3, xi, yi);
      }
      xx += a0;
      yy += a3;
    }
    xo += a1;
    yo += a4;
  }
}
