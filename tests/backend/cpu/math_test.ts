/**
 * The wasm SIMD exp and tanh of the fused CPU loops against Math.exp / Math.tanh (the
 * reference kernels), after rounding to f32 as every fused result is: special values exact,
 * random values within one f32 ulp and almost always equal.
 */
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { evaluate } from "../../../lib/backend/jit.ts";
import { type HostTensor, hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals } from "../../assert.ts";

const fused = new CpuBackend({ mode: "fused" });

const SPECIAL = [
  NaN,
  Infinity,
  -Infinity,
  0,
  -0,
  88.72283172607422, // largest finite exp in f32
  88.72284,
  89,
  89.5,
  -87.33654,
  -103.97,
  -104,
  -104.5,
  1e30,
  -1e30,
  1 / 32,
  -1 / 32,
  0.03125001,
  1e-30,
  -1e-30,
  20,
  -20,
  3.4e38,
];

for (
  const [name, op, ref] of [["exp", ops.exp, Math.exp], ["tanh", ops.tanh, Math.tanh]] as const
) {
  Deno.test(`cpu fused ${name}: special values exact, random values within 1 f32 ulp`, async () => {
    let seed = 7;
    const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296;
    const scales = [1e-3, 0.05, 1, 8, 120];
    const values = [
      ...SPECIAL,
      ...Array.from({ length: 60000 }, (_, i) => (rand() - 0.5) * 2 * scales[i % scales.length]),
    ];
    const x = hostTensor([values.length], "f32", values);
    const got = (await evaluate(fused, (t: Tensor) => op(t), x) as HostTensor).data;
    let differ = 0;
    for (let i = 0; i < values.length; i++) {
      const want = Math.fround(ref(x.data[i]));
      if (Object.is(got[i], want)) continue;
      assert(i >= SPECIAL.length, `${name}(${x.data[i]}) = ${got[i]}, Math.${name} gives ${want}`);
      assertEquals(ulps(got[i], want) <= 1, true, `${name}(${x.data[i]}): ${got[i]} vs ${want}`);
      differ++;
    }
    assert(differ <= 3, `${differ} of ${values.length} values differ by one ulp`);
  });
}

function ulps(a: number, b: number): number {
  const i = new Int32Array(Float32Array.of(a, b).buffer);
  return Math.abs(i[0] - i[1]);
}
