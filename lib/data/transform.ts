/**
 * Transforms by description. Loader workers build their transform from plain, serializable
 * options (a function cannot be posted to a Worker); this turns the description into the
 * function, from `lib/augment/transforms.ts` or from any module that exports a factory.
 */
import type { RGBImage } from "../augment/image.ts";
import type { TestTransformOptions, TrainTransformOptions } from "../augment/transforms.ts";
import type { Rng } from "../ir/rng.ts";

/** The options are defined once, next to `createTrainTransform` / `createTestTransform`. */
export type { TestTransformOptions, TrainTransformOptions };

export type TransformSpec =
  | { kind: "train"; options: TrainTransformOptions }
  | { kind: "valid"; options: TestTransformOptions }
  /** `import(module)[factory](options)` must return `(img, rng) => RGBImage`. */
  | { kind: "module"; module: string; factory: string; options: unknown; imageSize: number }
  /** Decode only: batches carry labels, not pixels. */
  | { kind: "none" };

export type SampleTransform = (img: RGBImage, rng: Rng) => RGBImage;

const AUGMENT_MODULE = new URL("../augment/transforms.ts", import.meta.url).href;

/** The output side length a spec produces, or 0 for `none`. */
export function transformImageSize(spec: TransformSpec): number {
  if (spec.kind === "none") return 0;
  if (spec.kind === "module") return spec.imageSize;
  return spec.options.imageSize;
}

/** Builds the transform a spec describes; undefined for `none`. */
export async function loadTransform(spec: TransformSpec): Promise<SampleTransform | undefined> {
  switch (spec.kind) {
    case "none":
      return undefined;
    case "train": {
      const mod = await importModule(AUGMENT_MODULE);
      const make = factory(mod, "createTrainTransform", AUGMENT_MODULE);
      return make(spec.options) as SampleTransform;
    }
    case "valid": {
      const mod = await importModule(AUGMENT_MODULE);
      const make = factory(mod, "createTestTransform", AUGMENT_MODULE);
      const fn = make(spec.options) as (img: RGBImage) => RGBImage;
      return (img) => fn(img);
    }
    case "module": {
      const mod = await importModule(spec.module);
      return factory(mod, spec.factory, spec.module)(spec.options) as SampleTransform;
    }
  }
}

async function importModule(url: string): Promise<Record<string, unknown>> {
  try {
    return await import(url);
  } catch (e) {
    throw new Error(`cannot load the transform module ${url}: ${(e as Error).message}`);
  }
}

function factory(
  mod: Record<string, unknown>,
  name: string,
  url: string,
): (options: unknown) => unknown {
  const f = mod[name];
  if (typeof f !== "function") throw new Error(`${url} does not export a function "${name}"`);
  return f as (options: unknown) => unknown;
}
