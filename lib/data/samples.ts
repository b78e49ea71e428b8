/**
 * Tar members -> webdataset samples, with webdataset's grouping rules:
 * - the key is the member's directory plus its basename up to the first dot, the extension is
 *   the rest, lowercased (`a/n01_1.JPEG` -> key `a/n01_1`, extension `jpeg`);
 * - a sample ends when the key changes between consecutive members;
 * - names without a dot and meta files like `__index__` are dropped.
 * A repeated extension within one sample makes that sample bad (webdataset raises and loses the
 * rest of the shard; here only the sample is lost, and it is counted).
 */
import type { TarMember } from "./tar.ts";

export interface RawSample {
  key: string;
  /** Position of the sample within its shard (0-based), counting bad samples too. */
  index: number;
  /** Extension (lowercased) -> bytes. */
  parts: Map<string, Uint8Array>;
  /** Set when the sample is known to be bad before decoding (e.g. a duplicate extension). */
  problem?: string;
  /**
   * The sample the archive failed in (or right after): its members were read whole, but more
   * may have been lost. When it lacks its label or image, that loss is the shard's failure
   * (counted as `shard_read`), not a separate bad sample.
   */
  cutShort?: boolean;
}

/** The image extensions read as images, in order of preference. */
export const IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "webp"] as const;

/**
 * Groups consecutive members into samples. When the members fail part-way (a cut or corrupt
 * archive), the sample gathered so far is yielded (marked `cutShort`) before the error is
 * rethrown, as webdataset does: a cut inside sample 12 still delivers sample 11.
 */
export async function* groupSamples(members: AsyncIterable<TarMember>): AsyncGenerator<RawSample> {
  let current: RawSample | undefined;
  let index = 0;
  try {
    for await (const m of members) {
      const split = splitKey(m.name);
      if (!split) continue;
      const [key, ext] = split;
      if (!current || current.key !== key) {
        if (current) yield current;
        current = { key, index: index++, parts: new Map() };
      }
      if (current.parts.has(ext)) {
        current.problem ??= `duplicate ".${ext}" member in sample "${key}"`;
        continue;
      }
      current.parts.set(ext, m.data);
    }
  } catch (e) {
    if (current) yield { ...current, cutShort: true };
    throw e;
  }
  if (current) yield current;
}

/** `[key, lowercased extension]`, or undefined for members webdataset ignores. */
export function splitKey(name: string): [string, string] | undefined {
  const slash = name.lastIndexOf("/");
  const base = name.slice(slash + 1);
  if (slash < 0 && base.startsWith("__") && base.endsWith("__")) return undefined;
  if (/(^|\/)__[^/]*__(\/|$)/.test(name)) return undefined;
  const dot = base.indexOf(".");
  if (dot <= 0) return undefined;
  return [name.slice(0, slash + 1) + base.slice(0, dot), base.slice(dot + 1).toLowerCase()];
}

/** Labels must fit an int32 (the batch's type) and stay clear of -1, the padding label. */
export const MAX_LABEL = 2 ** 31 - 1;

/**
 * The `.cls` label: ASCII decimal text, in `[0, labels)` when `labels` (the class count) is
 * given, else in `[0, 2^31)`. Throws `SampleError` naming the sample otherwise: `missing_label`
 * without a `.cls`, `bad_label` for text that is not an integer or is out of range (a label at
 * or above the class count trains on nothing; -1 is the padding label; 4294967297 would wrap
 * to 1 in an int32).
 */
export function parseLabel(sample: RawSample, labels?: number, ext = "cls"): number {
  const bytes = sample.parts.get(ext);
  if (!bytes) {
    throw new SampleError("missing_label", `sample "${sample.key}" has no ".${ext}" member`);
  }
  const text = new TextDecoder().decode(bytes).trim();
  const shown = text.length > 20 ? text.slice(0, 20) + "..." : text;
  if (!/^[-+]?\d+$/.test(text)) {
    throw new SampleError(
      "bad_label",
      `sample "${sample.key}": ".${ext}" is not an integer ("${shown}")`,
    );
  }
  const label = Number(text);
  const limit = labels ?? MAX_LABEL + 1;
  if (!(label >= 0 && label < limit)) {
    const range = labels === undefined ? "0..2^31-1" : `0..${labels - 1} for ${labels} labels`;
    throw new SampleError(
      "bad_label",
      `sample "${sample.key}": label ${shown} is out of range (${range})`,
    );
  }
  return label;
}

/** The `.json` member parsed, or undefined. */
export function parseJson(sample: RawSample, ext = "json"): unknown {
  const bytes = sample.parts.get(ext);
  if (!bytes) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new SampleError(
      "bad_json",
      `sample "${sample.key}": ".${ext}" is not valid JSON (${(e as Error).message})`,
    );
  }
}

/** The image member's extension and bytes. */
export function imageBytes(sample: RawSample): [string, Uint8Array] {
  for (const ext of IMAGE_EXTENSIONS) {
    const bytes = sample.parts.get(ext);
    if (bytes) return [ext, bytes];
  }
  const has = [...sample.parts.keys()].map((e) => "." + e).join(", ") || "nothing";
  throw new SampleError(
    "missing_image",
    `sample "${sample.key}" has no image member (.jpg/.jpeg/.png/.webp); it has ${has}`,
  );
}

/**
 * Throws when the sample lacks both its image and its `.cls` label, naming both (counted as
 * `missing_image`): a shard of other data (webdataset's tensor or msgpack test shards) says
 * what it holds instead of only "no label". One missing part is left to `parseLabel` and
 * `imageBytes`.
 */
export function requireParts(sample: RawSample, labelExt = "cls"): void {
  if (sample.parts.has(labelExt) || IMAGE_EXTENSIONS.some((e) => sample.parts.has(e))) return;
  const has = [...sample.parts.keys()].map((e) => "." + e).join(", ") || "nothing";
  throw new SampleError(
    "missing_image",
    `sample "${sample.key}" has no image member (.jpg/.jpeg/.png/.webp) and no label member ` +
      `(.${labelExt}); it has ${has}`,
  );
}

/** A sample-level problem, tagged with the reason it is counted under. */
export class SampleError extends Error {
  constructor(readonly reason: SkipReason, message: string) {
    super(message);
    this.name = "SampleError";
  }
}

/** Why a sample or the rest of a shard was skipped. */
export type SkipReason =
  | "shard_open" // the shard could not be opened (HTTP error, missing file, pipe: failure)
  | "shard_read" // reading failed mid-shard (network, truncated or corrupt tar): rest skipped
  | "duplicate_member"
  | "missing_image"
  | "image_decode"
  | "missing_label"
  | "bad_label"
  | "bad_json"
  | "transform";
