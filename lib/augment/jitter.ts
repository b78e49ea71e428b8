/**
 * torchvision's `ColorJitter(brightness, contrast, saturation)` on a PIL image: each factor drawn
 * uniformly from [max(0, 1 - x), 1 + x], applied in a random order (a permutation of the four
 * adjustments, hue never enabled) through ImageEnhance Brightness / Contrast / Color. A value of 0
 * disables that adjustment.
 */
import type { Rng } from "../ir/rng.ts";
import { brightness, color, contrast } from "./enhance.ts";
import type { RGBImage } from "./image.ts";

export function colorJitter(
  img: RGBImage,
  rng: Rng,
  b: number,
  c: number,
  s: number,
): RGBImage {
  const order = rng.permutation(4);
  const factor = (x: number) => (x > 0 ? rng.uniformRange(Math.max(0, 1 - x), 1 + x) : null);
  const fb = factor(b), fc = factor(c), fs = factor(s);
  for (const fn of order) {
    if (fn === 0 && fb !== null) img = brightness(img, fb);
    else if (fn === 1 && fc !== null) img = contrast(img, fc);
    else if (fn === 2 && fs !== null) img = color(img, fs);
  }
  return img;
}
