/**
 * Point (lookup-table) ops as Pillow's ImageOps and timm compute them: invert, posterize, solarize,
 * solarize-add, autocontrast, equalize, and the RGB -> L -> RGB grayscale conversion.
 */
import { checkImage, type RGBImage } from "./image.ts";

/** Apply one 256-entry table to every channel, or three tables (R, G, B) when 768 long. */
export function applyLut(img: RGBImage, lut: Uint8Array): RGBImage {
  const src = img.data, n = src.length, out = new Uint8Array(n);
  if (lut.length === 256) {
    lut256(src, out, lut);
  } else if (lut.length === 768) {
    for (let i = 0; i < n; i += 3) {
      out[i] = lut[src[i]];
      out[i + 1] = lut[256 + src[i + 1]];
      out[i + 2] = lut[512 + src[i + 2]];
    }
  } else {
    throw new RangeError(`applyLut: table must have 256 or 768 entries, got ${lut.length}`);
  }
  return { width: img.width, height: img.height, data: out };
}

/** One table for every byte; four bytes per step through 32-bit words when aligned. */
function lut256(src: Uint8Array, out: Uint8Array, lut: Uint8Array): void {
  const n = src.length;
  let i = 0;
  if (src.byteOffset % 4 === 0) {
    const m = n >> 2;
    const s32 = new Uint32Array(src.buffer, src.byteOffset, m);
    const o32 = new Uint32Array(out.buffer, out.byteOffset, m);
    // Byte order does not matter: each byte maps through the same table in place.
    for (let j = 0; j < m; j++) {
      const v = s32[j];
      o32[j] = lut[v & 255] | (lut[(v >>> 8) & 255] << 8) | (lut[(v >>> 16) & 255] << 16) |
        (lut[v >>> 24] << 24);
    }
    i = m << 2;
  }
  for (; i < n; i++) out[i] = lut[src[i]];
}

/** ImageOps.invert. */
export function invert(img: RGBImage): RGBImage {
  return applyLut(img, makeLut((i) => 255 - i));
}

/** ImageOps.posterize: keep the top `bits` bits (timm returns the image unchanged for >= 8). */
export function posterize(img: RGBImage, bits: number): RGBImage {
  if (!Number.isInteger(bits) || bits < 0) {
    throw new RangeError(`posterize: bits must be a non-negative integer, got ${bits}`);
  }
  if (bits >= 8) return copy(img);
  const mask = ~(2 ** (8 - bits) - 1);
  return applyLut(img, makeLut((i) => i & mask));
}

/** ImageOps.solarize: invert every value >= threshold. */
export function solarize(img: RGBImage, threshold: number): RGBImage {
  checkNumber(threshold, "solarize threshold");
  return applyLut(img, makeLut((i) => (i < threshold ? i : 255 - i)));
}

/** timm's solarize_add: add `add` to every value below `threshold`, saturating at 255. */
export function solarizeAdd(img: RGBImage, add: number, threshold = 128): RGBImage {
  checkNumber(add, "solarizeAdd amount");
  checkNumber(threshold, "solarizeAdd threshold");
  return applyLut(img, makeLut((i) => (i < threshold ? Math.min(255, i + add) : i)));
}

/** ImageOps.autocontrast(img) with cutoff 0: stretch each channel's [min, max] to [0, 255]. */
export function autocontrast(img: RGBImage): RGBImage {
  const hist = histogram(img);
  const lut = new Uint8Array(768);
  for (let c = 0; c < 3; c++) {
    const h = hist.subarray(c * 256, c * 256 + 256);
    let lo = 0, hi = 255;
    while (lo < 256 && h[lo] === 0) lo++;
    while (hi >= 0 && h[hi] === 0) hi--;
    for (let i = 0; i < 256; i++) {
      if (hi <= lo) {
        lut[c * 256 + i] = i;
      } else {
        const scale = 255 / (hi - lo), offset = -lo * scale;
        const v = Math.trunc(i * scale + offset);
        lut[c * 256 + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return applyLut(img, lut);
}

/** ImageOps.equalize: per-channel histogram equalization with Pillow's integer steps. */
export function equalize(img: RGBImage): RGBImage {
  const hist = histogram(img);
  const lut = new Uint8Array(768);
  for (let c = 0; c < 3; c++) {
    const h = hist.subarray(c * 256, c * 256 + 256);
    let total = 0, last = 0, nonzero = 0;
    for (let i = 0; i < 256; i++) {
      if (h[i]) {
        total += h[i];
        last = h[i];
        nonzero++;
      }
    }
    const step = nonzero <= 1 ? 0 : Math.floor((total - last) / 255);
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      // Pillow clips table values to [0, 255] when building the lookup.
      lut[c * 256 + i] = step === 0 ? i : Math.min(255, Math.floor(n / step));
      n += h[i];
    }
  }
  return applyLut(img, lut);
}

/**
 * `img.convert("L")` (ITU-R 601-2 luma in 16-bit fixed point, as Pillow's L24 macro):
 * one value per pixel.
 */
export function luma(img: RGBImage): Uint8Array {
  const src = img.data, n = img.width * img.height, out = new Uint8Array(n);
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    out[i] = (src[p] * 19595 + src[p + 1] * 38470 + src[p + 2] * 7471 + 0x8000) >> 16;
  }
  return out;
}

/** `img.convert("L").convert("RGB")`. */
export function grayscale(img: RGBImage): RGBImage {
  checkImage(img, "grayscale");
  const src = img.data, n = src.length, out = new Uint8Array(n);
  for (let p = 0; p < n; p += 3) {
    const l = (src[p] * 19595 + src[p + 1] * 38470 + src[p + 2] * 7471 + 0x8000) >> 16;
    out[p] = l;
    out[p + 1] = l;
    out[p + 2] = l;
  }
  return { width: img.width, height: img.height, data: out };
}

/** Per-channel histograms, 3 x 256 counts (R, then G, then B), as `Image.histogram()`. */
export function histogram(img: RGBImage): Int32Array {
  const h = new Int32Array(768), src = img.data;
  for (let i = 0; i < src.length; i += 3) {
    h[src[i]]++;
    h[256 + src[i + 1]]++;
    h[512 + src[i + 2]]++;
  }
  return h;
}

function makeLut(f: (i: number) => number): Uint8Array {
  const lut = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    const v = f(i);
    lut[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return lut;
}

function copy(img: RGBImage): RGBImage {
  return { width: img.width, height: img.height, data: img.data.slice() };
}

function checkNumber(v: number, what: string): void {
  if (typeof v !== "number" || Number.isNaN(v)) throw new RangeError(`${what} must be a number`);
}
