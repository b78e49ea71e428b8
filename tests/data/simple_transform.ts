/**
 * A transform for loader tests, independent of lib/augment: nearest-neighbour resize to
 * `imageSize`, then the first pixel records the sample's first random draw (so tests can see
 * which random stream each augmented copy used), and the second pixel the image's source width.
 */
import type { RGBImage } from "../../lib/augment/image.ts";
import type { Rng } from "../../lib/ir/rng.ts";

export function createSimpleTransform(
  opts: { imageSize: number; failWidth?: number },
): (img: RGBImage, rng: Rng) => RGBImage {
  const s = opts.imageSize;
  return (img, rng) => {
    if (img.width === opts.failWidth) throw new Error(`refusing width ${img.width}`);
    const data = new Uint8Array(s * s * 3);
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        const sx = Math.floor(x * img.width / s), sy = Math.floor(y * img.height / s);
        data.set(
          img.data.subarray((sy * img.width + sx) * 3, (sy * img.width + sx) * 3 + 3),
          (y * s + x) * 3,
        );
      }
    }
    data[0] = Math.floor(rng.uniform() * 256);
    data[3] = img.width;
    return { width: s, height: s, data };
  };
}
