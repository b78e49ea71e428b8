/** Batches as the training step takes them: uint8 `[B,3,H,W]` images and int32 labels. */
import type { RGBImage } from "../augment/image.ts";

export interface Batch {
  /** `[B,3,H,W]` uint8, NCHW. Empty when the loader decodes without a transform. */
  images: Uint8Array;
  /** `[B]`; -1 marks a padding row. */
  labels: Int32Array;
  /** `[B]`; 1 for real rows, 0 for padding (validation only). */
  mask?: Uint8Array;
  /** Real rows; the rest is padding. */
  count: number;
  /** Sample keys per row ("" for padding), when the loader was asked for them. */
  keys?: string[];
}

/**
 * Fills one batch row by row. With `repeats` r > 1 the rows are reordered as the original's
 * `collate_and_shuffle`: `concat(batch[i::r] for i in range(r))`, so the r augmented copies of a
 * sample, which arrive consecutively, land in r different parts of the batch (and so on
 * different devices).
 */
export class BatchBuilder {
  readonly images: Uint8Array;
  readonly labels: Int32Array;
  readonly keys?: string[];
  count = 0;
  #rows: Int32Array;
  #size: number;

  constructor(readonly batchSize: number, imageSize: number, repeats = 1, withKeys = false) {
    this.#size = imageSize;
    this.images = new Uint8Array(batchSize * 3 * imageSize * imageSize);
    this.labels = new Int32Array(batchSize).fill(-1);
    if (withKeys) this.keys = new Array(batchSize).fill("");
    this.#rows = interleaveRows(batchSize, repeats);
  }

  get full(): boolean {
    return this.count === this.batchSize;
  }

  /** Adds the next item; `img` may be undefined when decoding without a transform. */
  add(img: RGBImage | undefined, label: number, key: string): void {
    const row = this.#rows[this.count++];
    this.labels[row] = label;
    if (this.keys) this.keys[row] = key;
    if (img) writeCHW(img, this.images, row * 3 * this.#size * this.#size);
  }

  /**
   * The batch. A partial one (the end of a finite stream) is compacted so that its real rows
   * come first, still in interleaved order.
   */
  finish(): Batch {
    if (this.full) {
      return { images: this.images, labels: this.labels, keys: this.keys, count: this.count };
    }
    const used = Array.from(this.#rows.subarray(0, this.count)).sort((a, b) => a - b);
    const px = 3 * this.#size * this.#size;
    const images = new Uint8Array(this.images.length);
    const labels = new Int32Array(this.batchSize).fill(-1);
    const keys = this.keys ? new Array<string>(this.batchSize).fill("") : undefined;
    used.forEach((row, i) => {
      if (px) images.set(this.images.subarray(row * px, (row + 1) * px), i * px);
      labels[i] = this.labels[row];
      if (keys) keys[i] = this.keys![row];
    });
    return { images, labels, keys, count: this.count };
  }
}

/** Row of item j: items j with j % r == i go, in order, to the i-th group of rows. */
export function interleaveRows(batchSize: number, repeats: number): Int32Array {
  const rows = new Int32Array(batchSize);
  let next = 0;
  for (let i = 0; i < Math.max(1, repeats); i++) {
    for (let j = i; j < batchSize; j += Math.max(1, repeats)) rows[j] = next++;
  }
  return rows;
}

/** Writes an interleaved RGB image as planes (C, H, W) at `offset` of `out`. */
export function writeCHW(img: RGBImage, out: Uint8Array, offset: number): void {
  const n = img.width * img.height;
  const src = img.data;
  let r = offset, g = offset + n, b = offset + 2 * n;
  for (let p = 0, q = 0; p < n; p++, q += 3) {
    out[r++] = src[q];
    out[g++] = src[q + 1];
    out[b++] = src[q + 2];
  }
}
