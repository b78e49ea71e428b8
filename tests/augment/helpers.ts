/** Shared helpers for the augmentation tests: fixture loading and image comparison. */
import type { RGBImage } from "../../lib/augment/image.ts";
import { assert } from "../assert.ts";
import { readPng } from "./png.ts";

export const FIXTURES = new URL("../fixtures/augment/", import.meta.url).pathname;

export function readJson<T = unknown>(path: string): T {
  return JSON.parse(Deno.readTextFileSync(path)) as T;
}

export async function fixture(rel: string): Promise<RGBImage> {
  return await readPng(FIXTURES + rel);
}

export type Diff = { max: number; differing: number; share: number };

export function diffImages(got: RGBImage, want: RGBImage): Diff {
  assert(
    got.width === want.width && got.height === want.height,
    `size ${got.width}x${got.height} != expected ${want.width}x${want.height}`,
  );
  let max = 0, differing = 0;
  for (let i = 0; i < got.data.length; i++) {
    const d = Math.abs(got.data[i] - want.data[i]);
    if (d) differing++;
    if (d > max) max = d;
  }
  return { max, differing, share: differing / got.data.length };
}

/** Asserts max |diff| <= maxDiff and that at most `maxShare` of the values differ. */
export function assertImageClose(
  got: RGBImage,
  want: RGBImage,
  what: string,
  maxDiff = 0,
  maxShare = 0,
): Diff {
  const d = diffImages(got, want);
  assert(
    d.max <= maxDiff && d.share <= maxShare,
    `${what}: max diff ${d.max} (allowed ${maxDiff}), ${d.differing} values differ ` +
      `(${(d.share * 100).toFixed(3)}%, allowed ${(maxShare * 100).toFixed(3)}%)`,
  );
  return d;
}
