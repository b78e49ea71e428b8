/**
 * stridedCopy against an independent per-element copy: each flat index is split into its
 * multi-index by division, and each side's element found from its offset and strides.
 */
import { allocArray, DTYPES, type TypedArray } from "../../lib/ir/dtype.ts";
import { numel, stridesOf } from "../../lib/ir/host_tensor.ts";
import { dense, type Strided, stridedCopy } from "../../lib/ir/strided.ts";
import { assertEquals, assertThrows } from "../assert.ts";

function naiveCopy(shape: number[], from: Strided, to: Strided): void {
  for (let flat = 0; flat < numel(shape); flat++) {
    let rest = flat, s = from.offset, o = to.offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      const i = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
      s += i * from.strides[d];
      o += i * to.strides[d];
    }
    to.data[o] = from.data[s];
  }
}

/** A deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function filled(dtype: (typeof DTYPES)[number], n: number, rand: () => number): TypedArray {
  const a = allocArray(dtype, n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(rand() * 2 ** 31) - (dtype === "i32" ? 2 ** 30 : 0);
  return a;
}

/** Both copies into two equal destinations; the results must agree element for element. */
function check(shape: number[], from: Strided, to: Strided, what: string) {
  const a = to.data.slice(), b = to.data.slice();
  naiveCopy(shape, from, { ...to, data: a });
  stridedCopy(shape, from, { ...to, data: b });
  assertEquals(Array.from(b), Array.from(a), what);
}

Deno.test("stridedCopy: permutations, slices, broadcasts of every dtype match a per-element copy", () => {
  const rand = rng(7);
  for (const dtype of DTYPES) {
    for (let trial = 0; trial < 40; trial++) {
      const rank = Math.floor(rand() * 5);
      const inShape = Array.from({ length: rank }, () => 1 + Math.floor(rand() * 6));
      const perm = inShape.map((_, i) => i).sort(() => rand() - 0.5);
      const inStrides = stridesOf(inShape);
      // A slice of each permuted dim (start, stride), or a broadcast (stride 0).
      const shape: number[] = [], strides: number[] = [];
      let offset = 0;
      for (const p of perm) {
        const n = inShape[p];
        if (rand() < 0.15) {
          shape.push(1 + Math.floor(rand() * 4));
          strides.push(0);
          continue;
        }
        const start = Math.floor(rand() * n), step = 1 + Math.floor(rand() * 2);
        shape.push(Math.max(1, Math.floor((n - start + step - 1) / step)));
        strides.push(step * inStrides[p]);
        offset += start * inStrides[p];
      }
      const x = filled(dtype, numel(inShape), rand);
      const to = dense(filled(dtype, numel(shape), rand), shape);
      check(shape, { data: x, offset, strides }, to, `${dtype} [${inShape}] -> [${shape}]`);
    }
  }
});

Deno.test("stridedCopy: into a strided destination (pad, concatenate) keeps the rest", () => {
  const rand = rng(11);
  for (const dtype of DTYPES) {
    for (
      const [shape, outShape, low] of [
        [[3, 4, 5], [5, 6, 7], [1, 2, 1]],
        [[2, 1, 40], [2, 3, 40], [0, 2, 0]], // runs long enough for TypedArray.set
        [[7], [9], [2]],
        [[], [], []],
      ] as number[][][]
    ) {
      const outStrides = stridesOf(outShape);
      const offset = low.reduce((s, v, i) => s + v * outStrides[i], 0);
      const x = filled(dtype, numel(shape), rand);
      const to = { data: filled(dtype, numel(outShape), rand), offset, strides: outStrides };
      check(shape, dense(x, shape), to, `${dtype} [${shape}] into [${outShape}]`);
    }
  }
});

Deno.test("stridedCopy: 2-d transposes (the tiled path) of odd sizes, inside larger arrays", () => {
  const rand = rng(3);
  for (const dtype of ["f32", "bf16", "u8"] as const) {
    for (const [rows, cols] of [[1, 17], [17, 1], [16, 16], [33, 50], [5, 300]]) {
      const x = filled(dtype, rows * cols + 9, rand);
      const from = { data: x, offset: 9, strides: [1, cols] };
      const to = {
        data: filled(dtype, cols * (rows + 3) + 2, rand),
        offset: 2,
        strides: [rows + 3, 1],
      };
      check([cols, rows], from, to, `${dtype} ${rows}x${cols}`);
    }
  }
});

Deno.test("stridedCopy: empty shapes copy nothing; scalars one element; mixed widths are refused", () => {
  const out = new Float32Array([5, 6]);
  stridedCopy([0, 3], dense(new Float32Array(0), [0, 3]), dense(out, [0, 3]));
  assertEquals(Array.from(out), [5, 6]);
  stridedCopy([], { data: new Float32Array([1, 2, 3]), offset: 2, strides: [] }, dense(out, [], 1));
  assertEquals(Array.from(out), [5, 3]);
  assertThrows(
    () => stridedCopy([2], dense(new Uint8Array(2), [2]), dense(new Float32Array(2), [2])),
    "Uint8Array into Float32Array",
  );
});
