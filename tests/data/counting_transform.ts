/**
 * The simple test transform, counting its calls (one per augmented copy of a decoded sample),
 * for tests that check what a resumed loader decodes. Counts only in the calling thread
 * (`workers: 0`).
 */
import type { RGBImage } from "../../lib/augment/image.ts";
import type { Rng } from "../../lib/ir/rng.ts";
import { createSimpleTransform } from "./simple_transform.ts";

export const calls = { count: 0 };

export function createCountingTransform(
  opts: { imageSize: number },
): (img: RGBImage, rng: Rng) => RGBImage {
  const inner = createSimpleTransform(opts);
  return (img, rng) => {
    calls.count++;
    return inner(img, rng);
  };
}
