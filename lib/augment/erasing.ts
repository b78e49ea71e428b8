/**
 * RandomErasing (Zhong et al.) on the uint8 image, with torchvision's box sampling and one of two
 * fills of per-pixel N(0, 1) noise z (`random-erasing-fill`):
 *
 * - `original` (default): what deit3-jax does. It applies torchvision's
 *   `transforms.v2.RandomErasing(p, value="random")` to the PIL image, which assigns the float
 *   noise into the uint8 tensor: truncation toward zero, wrapped modulo 256. So |z| < 1 becomes 0
 *   (68% of the box), z in (-3, -1] becomes 255/254/253 and z in [1, 3) 1/2: a near-black box with
 *   bright specks. The DeiT recipes were tuned with this fill.
 * - `normal`: timm's intended behaviour, N(0, 1) noise in *normalized* space; since batches here
 *   are uint8 and are normalized on device with the ImageNet mean/std, each erased value is stored
 *   as `clip(round((mean_c + std_c * z) * 255), 0, 255)`, which normalizes back to z up to uint8
 *   quantization and clipping: a mid-grey noisy box.
 */
import type { Rng } from "../ir/rng.ts";
import type { RGBImage } from "./image.ts";
import { roundHalfEven } from "./pymath.ts";

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export type ErasingOptions = {
  /** Probability of erasing at all. */
  probability: number;
  /** Erased area as a fraction of the image; torchvision default [0.02, 0.33]. */
  scale?: readonly [number, number];
  /** Aspect ratio range (h / w), sampled log-uniformly; default [0.3, 3.3]. */
  ratio?: readonly [number, number];
  /** How the noise is written into the uint8 box (see above); default "original". */
  fill?: ErasingFill;
};

export const ERASING_FILLS = ["original", "normal"] as const;
export type ErasingFill = typeof ERASING_FILLS[number];

export interface ErasingBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** The erase box (top, left, height, width), or null for no erasing (torchvision's 10 tries). */
export function randomErasingBox(
  rng: Rng,
  width: number,
  height: number,
  scale: readonly [number, number] = [0.02, 0.33],
  ratio: readonly [number, number] = [0.3, 3.3],
): ErasingBox | null {
  const area = width * height;
  const logLo = Math.log(ratio[0]), logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const eraseArea = area * rng.uniformRange(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniformRange(logLo, logHi));
    const h = roundHalfEven(Math.sqrt(eraseArea * aspect));
    const w = roundHalfEven(Math.sqrt(eraseArea / aspect));
    if (!(h < height && w < width)) continue;
    const top = rng.randint(0, height - h);
    const left = rng.randint(0, width - w);
    return { top, left, height: h, width: w };
  }
  return null;
}

/** Erase a random box with probability `p`, filling it with per-pixel normal noise. */
export function randomErasing(img: RGBImage, rng: Rng, opts: ErasingOptions): RGBImage {
  if (!(rng.uniform() < opts.probability)) return img;
  const box = randomErasingBox(rng, img.width, img.height, opts.scale, opts.ratio);
  if (!box) return img;
  const stream = new NormalStream(rng.nextKey());
  const noise = new Float32Array(3 * box.height * box.width);
  for (let i = 0; i < noise.length; i++) noise[i] = stream.next();
  return eraseBox(img, box, noise, opts.fill ?? "original");
}

/**
 * torchvision's `erase(img, i, j, h, w, v)` on an RGB image: `noise` is the float32 `v`, laid out
 * [3, box.height, box.width] as torchvision draws it, written with `fill`'s rule.
 */
export function eraseBox(
  img: RGBImage,
  box: ErasingBox,
  noise: Float32Array,
  fill: ErasingFill,
): RGBImage {
  const plane = box.height * box.width;
  if (noise.length !== 3 * plane) {
    throw new RangeError(`eraseBox: noise has ${noise.length} values, want 3 x ${plane}`);
  }
  if (!ERASING_FILLS.includes(fill)) throw new RangeError(`eraseBox: unknown fill "${fill}"`);
  const out = img.data.slice();
  for (let c = 0; c < 3; c++) {
    const m = IMAGENET_MEAN[c] * 255, s = IMAGENET_STD[c] * 255;
    for (let y = 0; y < box.height; y++) {
      let p = ((box.top + y) * img.width + box.left) * 3 + c;
      let n = c * plane + y * box.width;
      for (let x = 0; x < box.width; x++, p += 3, n++) {
        // original: torch's float -> uint8 assignment truncates toward zero and wraps mod 256.
        out[p] = fill === "original"
          ? Math.trunc(noise[n]) & 255
          : clip8(Math.round(m + s * noise[n]));
      }
    }
  }
  return { width: img.width, height: img.height, data: out };
}

// ---------------------------------------------------------------------------------------------

function clip8(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Bulk N(0, 1) noise: sfc32 seeded from one threefry key (so it stays a function of the sample's
 * Rng path) with polar Box-Muller; per-value threefry draws would dominate the erasing cost.
 */
class NormalStream {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare = 0;
  #hasSpare = false;

  constructor([k0, k1]: [number, number]) {
    this.#a = k0 | 0;
    this.#b = k1 | 0;
    this.#c = (k0 ^ 0x9e3779b9) | 0;
    this.#d = 1;
    for (let i = 0; i < 12; i++) this.#u32();
  }

  next(): number {
    if (this.#hasSpare) {
      this.#hasSpare = false;
      return this.#spare;
    }
    let u: number, v: number, s: number;
    do {
      u = this.#u32() / 2147483648 - 1;
      v = this.#u32() / 2147483648 - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.#spare = v * f;
    this.#hasSpare = true;
    return u * f;
  }

  #u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }
}
