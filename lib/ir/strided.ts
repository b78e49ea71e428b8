/**
 * The one strided copy. Every layout move on host arrays is this copy: broadcast, transpose and
 * slice (a strided source), pad and concatenate (a strided destination), a matmul operand staged
 * for the GEMM, a torch tensor taken out of its storage, a checkpoint's transposed kernel.
 */
import type { TypedArray } from "./dtype.ts";
import { stridesOf } from "./host_tensor.ts";

/** One side of a copy: element `offset + sum_d i_d * strides[d]` of `data` for index i. */
export interface Strided {
  data: TypedArray;
  offset: number;
  strides: readonly number[];
}

/** `data` as a dense row-major array of `shape`, from element `offset`. */
export function dense(data: TypedArray, shape: readonly number[], offset = 0): Strided {
  return { data, offset, strides: stridesOf(shape) };
}

/**
 * For every index i of `shape`: `to[i] = from[i]`, each side addressed by its offset and
 * strides. A source stride may be 0 (broadcast); the two sides must not overlap. Both sides
 * hold elements of one width (one dtype); the bits are copied as they are.
 *
 * Dims of size 1 are dropped and neighbouring dims that are contiguous on both sides are merged
 * first, so a copy of contiguous blocks walks blocks, not elements. Then one of two paths:
 * - a 2-d transpose (each side contiguous along a different dim) goes through the cache in
 *   16x16 tiles (`transposeTiles`): a weight transpose, a matmul operand read across its rows;
 * - everything else walks the outer dims as an odometer and copies the innermost dim as one run:
 *   `TypedArray.set` (a memmove) when the run is contiguous on both sides and long enough to
 *   pay for the subarray it creates, else an element loop.
 *
 * Fast path for the CPU backend's f32 copies (matmul staging, pad, concatenate): the loops only
 * ever see Int32Array, so V8 compiles them for that one array kind. A loop fed Float32Array,
 * Int32Array, Uint16Array and Uint8Array in turn goes megamorphic and runs some 20x slower.
 * Four-byte elements (f32, i32, u32) are copied through an Int32Array view of the same memory;
 * one- and two-byte elements (u8, bool, bf16) are widened to a temporary Int32Array over the span
 * each side touches (native conversions), copied, and narrowed back.
 */
export function stridedCopy(shape: readonly number[], from: Strided, to: Strided): void {
  const width = from.data.BYTES_PER_ELEMENT;
  if (to.data.BYTES_PER_ELEMENT !== width) {
    throw new Error(
      `stridedCopy: ${from.data.constructor.name} into ${to.data.constructor.name} ` +
        "(both sides must hold one dtype)",
    );
  }
  const dims: number[] = [], src: number[] = [], dst: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d], s = from.strides[d], t = to.strides[d];
    if (n === 0) return;
    if (n === 1) continue;
    const k = dims.length - 1;
    if (k >= 0 && src[k] === s * n && dst[k] === t * n) {
      dims[k] *= n;
      src[k] = s;
      dst[k] = t;
    } else {
      dims.push(n);
      src.push(s);
      dst.push(t);
    }
  }
  if (width === 4) {
    copyWords(dims, words(from.data), from.offset, src, words(to.data), to.offset, dst);
    return;
  }
  const [xLo, xHi] = span(dims, from.offset, src), [oLo, oHi] = span(dims, to.offset, dst);
  const x = new Int32Array(xHi - xLo);
  x.set(from.data.subarray(xLo, xHi));
  const out = new Int32Array(oHi - oLo);
  out.set(to.data.subarray(oLo, oHi));
  copyWords(dims, x, from.offset - xLo, src, out, to.offset - oLo, dst);
  to.data.set(out, oLo);
}

function words(a: TypedArray): Int32Array {
  return a instanceof Int32Array ? a : new Int32Array(a.buffer, a.byteOffset, a.length);
}

/** The elements `[lo, hi)` that a side's offset and strides reach over `dims`. */
function span(dims: number[], offset: number, strides: number[]): [number, number] {
  let lo = offset, hi = offset;
  for (let d = 0; d < dims.length; d++) {
    const reach = strides[d] * (dims[d] - 1);
    if (reach < 0) lo += reach;
    else hi += reach;
  }
  return [lo, hi + 1];
}

function copyWords(
  dims: number[],
  x: Int32Array,
  xOffset: number,
  src: number[],
  out: Int32Array,
  outOffset: number,
  dst: number[],
): void {
  if (dims.length === 0) {
    out[outOffset] = x[xOffset];
  } else if (dims.length === 2 && dst[1] === 1 && src[0] === 1 && src[1] !== 1) {
    transposeTiles(x, xOffset, src[1], out, outOffset, dst[0], dims[0], dims[1]);
  } else {
    walk(dims, x, xOffset, src, out, outOffset, dst);
  }
}

/**
 * Runs at least this long copy with `TypedArray.set` (a subarray object costs about as much as
 * copying a few dozen elements one by one).
 */
const SET_MIN = 32;

/** The odometer over the outer dims, one run of the innermost dim per step. */
function walk(
  dims: number[],
  x: Int32Array,
  xOffset: number,
  src: number[],
  out: Int32Array,
  outOffset: number,
  dst: number[],
): void {
  const last = dims.length - 1, run = dims[last], srcStep = src[last], dstStep = dst[last];
  const block = srcStep === 1 && dstStep === 1 && run >= SET_MIN;
  let runs = 1;
  for (let d = 0; d < last; d++) runs *= dims[d];
  const idx = new Array<number>(last).fill(0);
  let s = xOffset, o = outOffset;
  for (let r = 0; r < runs; r++) {
    if (block) out.set(x.subarray(s, s + run), o);
    else {
      for (let j = 0, q = s, p = o; j < run; j++, q += srcStep, p += dstStep) out[p] = x[q];
    }
    for (let d = last - 1; d >= 0; d--) {
      idx[d]++;
      s += src[d];
      o += dst[d];
      if (idx[d] < dims[d]) break;
      s -= src[d] * dims[d];
      o -= dst[d] * dims[d];
      idx[d] = 0;
    }
  }
}

/**
 * `out[o + i * outRow + j] = x[s + i + j * xCol]` for i < rows, j < cols, in 16x16 tiles so that
 * both sides stay in cache. The tile is its own small function: V8 optimises it after a few
 * calls, whereas one big loop nest runs interpreted for its whole first (multi-second) call.
 */
function transposeTiles(
  x: Int32Array,
  s: number,
  xCol: number,
  out: Int32Array,
  o: number,
  outRow: number,
  rows: number,
  cols: number,
): void {
  const T = 16;
  for (let j0 = 0; j0 < cols; j0 += T) {
    const j1 = Math.min(cols, j0 + T);
    for (let i0 = 0; i0 < rows; i0 += T) {
      tile(x, s, xCol, out, o, outRow, i0, Math.min(rows, i0 + T), j0, j1);
    }
  }
}

function tile(
  x: Int32Array,
  s: number,
  xCol: number,
  out: Int32Array,
  o: number,
  outRow: number,
  i0: number,
  i1: number,
  j0: number,
  j1: number,
): void {
  for (let i = i0; i < i1; i++) {
    const p = o + i * outRow;
    for (let j = j0, q = s + i + j0 * xCol; j < j1; j++, q += xCol) out[p + j] = x[q];
  }
}
