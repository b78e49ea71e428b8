/**
 * Pillow's convolution resampling (libImaging/Resample.c) over a region of an image: coefficient
 * tables in 22-bit fixed point, then a horizontal pass into a uint8 intermediate and a vertical
 * pass, run by the WebAssembly SIMD kernels or by the TypeScript loops (same values).
 */
import { createImage, crop, type RGBImage } from "./image.ts";
import { type ResampleKernels, resampleKernels } from "./wasm/resample.ts";

/** Resampling filters of `resize`, named as Pillow's `Image.Resampling`. */
export type ResizeFilter = "nearest" | "box" | "bilinear" | "hamming" | "bicubic" | "lanczos";

/**
 * Which implementation runs the convolution passes: the WebAssembly SIMD kernels (default, when
 * the runtime supports them) or the plain TypeScript loops. Both give Pillow's exact values;
 * tests pin each in turn.
 */
export function setResizeBackend(b: "wasm" | "js"): void {
  backend = b;
}
let backend: "wasm" | "js" = "wasm";

type Kernel = { fn: (x: number) => number; support: number };

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);

/** Pillow's clip8 table: index (value >> 22) + 640 saturates to [0, 255]. */
const CLIP8 = (() => {
  const t = new Uint8Array(1280);
  for (let i = 0; i < 1280; i++) t[i] = Math.max(0, Math.min(255, i - 640));
  return t;
})();

const HAMMING_A = Math.fround(0.54), HAMMING_B = Math.fround(0.46);

const KERNELS: Record<Exclude<ResizeFilter, "nearest">, Kernel> = {
  box: { support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: {
    support: 1,
    fn: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  hamming: {
    support: 1,
    fn: (x) => {
      if (x < 0) x = -x;
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x = x * Math.PI;
      return Math.sin(x) / x * (HAMMING_A + HAMMING_B * Math.cos(x));
    },
  },
  bicubic: {
    support: 2,
    fn: (x) => {
      // Keys' cubic convolution with a = -0.5.
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: {
    support: 3,
    fn: (x) => (-3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0),
  },
};

function sinc(x: number): number {
  if (x === 0) return 1;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

type Coeffs = { ksize: number; bounds: Int32Array; kk: Int32Array };

/**
 * Pillow's precompute_coeffs + normalize_coeffs_8bpc: for each output index, the first input
 * index, the tap count, and the taps in 22-bit fixed point. `in0`/`in1` are C floats.
 */
function precomputeCoeffs(
  inSize: number,
  in0: number,
  in1: number,
  outSize: number,
  kernel: Kernel,
): Coeffs {
  const scale = Math.fround(in1 - in0) / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = kernel.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const invScale = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const v = kernel.fn((x + xmin - center + 0.5) * invScale);
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = v < 0
        ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

/**
 * Pillow's ImagingResampleInner over the sub-image (rx, ry, rw, rh) of `src`, which plays the
 * role of the whole input image (so taps are clamped to it); (l, t, r, b) is the box within it.
 */
export function resampleRegion(
  src: RGBImage,
  rx: number,
  ry: number,
  rw: number,
  rh: number,
  outW: number,
  outH: number,
  filter: Exclude<ResizeFilter, "nearest">,
  l: number,
  t: number,
  r: number,
  b: number,
): RGBImage {
  const kernel = KERNELS[filter];
  const needH = outW !== rw || l !== 0 || r !== outW;
  const needV = outH !== rh || t !== 0 || b !== outH;
  if (!needH && !needV) return crop(src, rx, ry, rw, rh);
  const vert = precomputeCoeffs(rh, t, b, outH, kernel);
  const horiz = needH ? precomputeCoeffs(rw, l, r, outW, kernel) : null;
  // Source rows the vertical pass reads (the horizontal pass only computes those).
  const yFirst = needV ? vert.bounds[0] : 0;
  const yLast = needV ? vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1] : rh;
  const wasm = backend === "wasm" ? resampleKernels() : null;
  if (wasm) {
    return passesWasm(
      wasm,
      src,
      rx,
      ry + yFirst,
      rw,
      yLast - yFirst,
      horiz,
      needV ? vert : null,
      yFirst,
      outW,
      outH,
    );
  }

  let mid: Uint8Array, midW: number, midRow0: number, midX0: number, midStride: number;
  if (horiz) {
    mid = new Uint8Array(outW * (yLast - yFirst) * 3);
    horizontalPass(src, rx, ry + yFirst, yLast - yFirst, horiz, outW, mid);
    if (!needV) return { width: outW, height: outH, data: mid };
    midW = outW;
    midRow0 = yFirst;
    midX0 = 0;
    midStride = outW * 3;
  } else {
    mid = src.data;
    midW = rw;
    midRow0 = -ry;
    midX0 = rx;
    midStride = src.width * 3;
  }
  const out = createImage(midW, outH);
  verticalPass(mid, midStride, midX0, midRow0, midW, vert, outH, out.data);
  return out;
}

/**
 * Both passes in the SIMD kernels: the source rows [row0, row0 + rows) of the region are copied
 * into kernel memory, passed horizontally (when `horiz`) and then vertically (when `vert`, whose
 * bounds are shifted by `yShift`, the first copied row).
 */
function passesWasm(
  k: ResampleKernels,
  src: RGBImage,
  rx: number,
  row0: number,
  rw: number,
  rows: number,
  horiz: Coeffs | null,
  vert: Coeffs | null,
  yShift: number,
  outW: number,
  outH: number,
): RGBImage {
  const midW = horiz ? outW : rw;
  const hb = horiz ? horiz.bounds.length * 4 : 0, hk = horiz ? horiz.kk.length * 4 : 0;
  const vb = vert ? vert.bounds.length * 4 : 0, vk = vert ? vert.kk.length * 4 : 0;
  const inBytes = rw * rows * 3, midBytes = horiz ? midW * rows * 3 : 0;
  const outBytes = vert ? midW * outH * 3 : 0;
  const [pIn, pMid, pOut, pHb, pHk, pVb, pVk] = k.alloc([
    inBytes,
    midBytes,
    outBytes,
    hb,
    hk,
    vb,
    vk,
  ]);
  const mem = k.bytes(), ints = k.ints();
  const rowBytes = rw * 3;
  if (rx === 0 && rw === src.width) {
    mem.set(src.data.subarray(row0 * rowBytes, (row0 + rows) * rowBytes), pIn);
  } else {
    for (let y = 0; y < rows; y++) {
      const s = ((row0 + y) * src.width + rx) * 3;
      mem.set(src.data.subarray(s, s + rowBytes), pIn + y * rowBytes);
    }
  }
  let cur = pIn, curStride = rowBytes;
  if (horiz) {
    ints.set(horiz.bounds, pHb >> 2);
    ints.set(horiz.kk, pHk >> 2);
    k.hpass(pIn, rowBytes, rows, outW, pHb, pHk, horiz.ksize, pMid);
    cur = pMid;
    curStride = outW * 3;
    if (!vert) return { width: outW, height: outH, data: mem.slice(pMid, pMid + midBytes) };
  }
  const vbounds = vert!.bounds;
  for (let i = 0; i < outH; i++) {
    ints[(pVb >> 2) + 2 * i] = vbounds[2 * i] - yShift;
    ints[(pVb >> 2) + 2 * i + 1] = vbounds[2 * i + 1];
  }
  ints.set(vert!.kk, pVk >> 2);
  k.vpass(cur, curStride, midW * 3, outH, pVb, pVk, vert!.ksize, pOut);
  return { width: midW, height: outH, data: mem.slice(pOut, pOut + outBytes) };
}

function horizontalPass(
  src: RGBImage,
  rx: number,
  row0: number,
  rows: number,
  c: Coeffs,
  outW: number,
  out: Uint8Array,
): void {
  const { ksize, bounds, kk } = c;
  const data = src.data;
  const clip = CLIP8;
  let o = 0;
  // Math.imul and `| 0` keep the sums in int32 (they cannot overflow, as in Pillow), which lets
  // V8 drop its overflow checks.
  for (let y = 0; y < rows; y++) {
    const rowBase = ((row0 + y) * src.width + rx) * 3;
    for (let xx = 0; xx < outW; xx++) {
      const n = bounds[xx * 2 + 1] | 0;
      let p = (rowBase + bounds[xx * 2] * 3) | 0;
      let k = (xx * ksize) | 0;
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let i = 0; i < n; i = (i + 1) | 0, p = (p + 3) | 0) {
        const w = kk[k] | 0;
        k = (k + 1) | 0;
        s0 = (s0 + Math.imul(data[p], w)) | 0;
        s1 = (s1 + Math.imul(data[p + 1], w)) | 0;
        s2 = (s2 + Math.imul(data[p + 2], w)) | 0;
      }
      out[o++] = clip[(s0 >> PRECISION_BITS) + 640];
      out[o++] = clip[(s1 >> PRECISION_BITS) + 640];
      out[o++] = clip[(s2 >> PRECISION_BITS) + 640];
    }
  }
}

/**
 * Vertical pass, accumulated one source row at a time (integer sums are order-independent, so
 * this equals Pillow's per-pixel loop while streaming through memory).
 */
function verticalPass(
  mid: Uint8Array,
  stride: number,
  x0: number,
  row0: number,
  width: number,
  c: Coeffs,
  outH: number,
  out: Uint8Array,
): void {
  const { ksize, bounds, kk } = c;
  const rowLen = width * 3;
  const acc = new Int32Array(rowLen);
  const clip = CLIP8;
  for (let yy = 0; yy < outH; yy++) {
    acc.fill(HALF);
    const ymin = bounds[yy * 2] - row0, n = bounds[yy * 2 + 1];
    for (let i = 0; i < n; i++) {
      const w = kk[yy * ksize + i];
      const base = (ymin + i) * stride + x0 * 3;
      for (let j = 0; j < rowLen; j++) acc[j] += mid[base + j] * w;
    }
    const o = yy * rowLen;
    for (let j = 0; j < rowLen; j++) out[o + j] = clip[(acc[j] >> PRECISION_BITS) + 640];
  }
}
