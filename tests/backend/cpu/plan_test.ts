/**
 * Pieces of the fused CPU executor checked on their own: arena planning (no live buffers
 * overlap), index maps and strided views (against explicit index enumeration), and the wasm
 * emitter's integer encodings (against the LEB128 examples of the WebAssembly spec).
 */
import { planArena } from "../../../lib/backend/cpu/arena.ts";
import {
  contiguousView,
  flatLin,
  identityMap,
  type Lin,
  reshapeMap,
  reshapeView,
  transposeView,
  type View,
} from "../../../lib/backend/cpu/index_map.ts";
import { sleb, uleb } from "../../../lib/backend/cpu/wasm_emit.ts";
import { assert, assertEquals } from "../../assert.ts";

Deno.test("arena: buffers live at the same time never overlap; dead ones are reused", () => {
  let s = 12345;
  const rand = (n: number) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n;
  for (let trial = 0; trial < 20; trial++) {
    const reqs = Array.from({ length: 60 }, () => {
      const first = rand(40);
      return { bytes: 1 + rand(5000), first, last: first + rand(6) };
    });
    const { offsets, size } = planArena(reqs, 64);
    let total = 0;
    reqs.forEach((a, i) => {
      assertEquals(offsets[i] % 64, 0);
      assert(offsets[i] + a.bytes <= size);
      total += a.bytes;
      reqs.forEach((b, j) => {
        if (j <= i || a.last < b.first || b.last < a.first) return;
        const apart = offsets[i] + a.bytes <= offsets[j] || offsets[j] + b.bytes <= offsets[i];
        assert(apart, `requests ${i} and ${j} are live together and overlap`);
      });
    });
    assert(size < total, "short-lived buffers should share memory");
  }
});

Deno.test("index maps: reshape maps match row-major index enumeration", () => {
  const cases: [number[], number[], boolean][] = [
    [[6, 4], [2, 3, 4], true], // out [2,3,4] from in [6,4]: operand dims are merges of output runs
    [[2, 3, 4], [6, 4], false], // splitting an output dim is not linear
    [[5, 1, 3], [5, 3], true],
    [[4, 6], [6, 4], false],
    [[24], [2, 3, 4], true],
  ];
  for (const [inShape, outShape, linear] of cases) {
    const rank = outShape.length;
    const m = reshapeMap(identityMap(outShape), outShape, inShape, rank);
    assertEquals(m !== null, linear, `[${inShape}] -> [${outShape}]`);
    if (!m) continue;
    const flatIn = flatLin(m, inShape, rank);
    forEachIndex(outShape, (idx, flat) => {
      assertEquals(evalLin(flatIn, idx), flat, `[${inShape}] -> [${outShape}] at [${idx}]`);
    });
  }
});

Deno.test("strided views: transpose + reshape without copies, or null when one is needed", () => {
  // [2,3,4] transposed to [3,2,4]: merging the last two dims works, merging the first two not
  const t = transposeView(contiguousView([2, 3, 4]), [1, 0, 2]);
  assertView(reshapeView(t, [3, 8]), null);
  const ok = reshapeView(t, [3, 2, 2, 2]);
  assert(ok !== null);
  // element [i, j, k, l] of the reshaped view is [i, j, 2k + l] of the transposed one, that is
  // [j, i, 2k + l] of the original contiguous [2,3,4]
  forEachIndex([3, 2, 2, 2], (idx) => {
    const [i, j, k, l] = idx;
    const want = j * 12 + i * 4 + 2 * k + l;
    assertEquals(ok.offset + idx.reduce((a, v, d) => a + v * ok.strides[d], 0), want);
  });
  assertView(reshapeView(contiguousView([4, 6]), [2, 2, 6]), {
    offset: 0,
    shape: [2, 2, 6],
    strides: [12, 6, 1],
  });
});

Deno.test("wasm emitter: LEB128 encodings of the spec's examples", () => {
  assertEquals(uleb(0), [0]);
  assertEquals(uleb(624485), [0xe5, 0x8e, 0x26]);
  assertEquals(uleb(65536), [0x80, 0x80, 0x04]);
  assertEquals(sleb(-123456), [0xc0, 0xbb, 0x78]);
  assertEquals(sleb(-1), [0x7f]);
  assertEquals(sleb(63), [0x3f]);
  assertEquals(sleb(64), [0xc0, 0x00]);
  assertEquals(sleb(-64), [0x40]);
  assertEquals(sleb(-65), [0xbf, 0x7f]);
});

function assertView(got: View | null, want: View | null): void {
  assertEquals(got, want);
}

function evalLin(l: Lin, idx: number[]): number {
  return l.k + l.c.reduce((a, c, d) => a + c * idx[d], 0);
}

function forEachIndex(shape: number[], f: (idx: number[], flat: number) => void): void {
  const total = shape.reduce((a, b) => a * b, 1);
  for (let flat = 0; flat < total; flat++) {
    const idx = new Array<number>(shape.length);
    let r = flat;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = r % shape[d];
      r = Math.floor(r / shape[d]);
    }
    f(idx, flat);
  }
}
