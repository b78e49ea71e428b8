/**
 * Static memory planning for one compiled graph: every intermediate buffer gets a fixed
 * offset in one arena, reused by buffers whose lifetimes (in steps) do not overlap. Greedy
 * by size, first fit (as TFLite's arena planner), so a step's output never overlaps a live input.
 */

import type { TypedArray } from "../../ir/dtype.ts";
import type { Tensor } from "../../ir/tensor.ts";

export interface ArenaRequest {
  bytes: number;
  /** First and last step (inclusive) during which the buffer is live. */
  first: number;
  last: number;
}

/** Offsets (bytes, aligned to `align`) per request, and the arena size. */
export function planArena(reqs: ArenaRequest[], align = 64): { offsets: number[]; size: number } {
  const order = reqs.map((_, i) => i).sort((a, b) => reqs[b].bytes - reqs[a].bytes || a - b);
  const offsets = new Array<number>(reqs.length).fill(-1);
  const placed: number[] = [];
  let size = 0;
  for (const i of order) {
    const r = reqs[i];
    const bytes = Math.ceil(r.bytes / align) * align;
    // busy ranges of buffers live at the same time, sorted by offset
    const busy = placed
      .filter((j) => reqs[j].first <= r.last && r.first <= reqs[j].last)
      .map((j) => [offsets[j], offsets[j] + Math.ceil(reqs[j].bytes / align) * align])
      .sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [s, e] of busy) {
      if (at + bytes <= s) break;
      at = Math.max(at, e);
    }
    offsets[i] = at;
    placed.push(i);
    size = Math.max(size, at + bytes);
  }
  return { offsets, size };
}

export function bytesPer(t: Tensor): number {
  return t.dtype === "f32" || t.dtype === "i32" || t.dtype === "u32"
    ? 4
    : t.dtype === "bf16"
    ? 2
    : 1;
}

export function viewOf(buf: ArrayBufferLike, t: Tensor, off: number): TypedArray {
  switch (t.dtype) {
    case "f32":
      return new Float32Array(buf, off, t.size);
    case "i32":
      return new Int32Array(buf, off, t.size);
    case "u32":
      return new Uint32Array(buf, off, t.size);
    case "bf16":
      return new Uint16Array(buf, off, t.size);
    default:
      return new Uint8Array(buf, off, t.size);
  }
}
