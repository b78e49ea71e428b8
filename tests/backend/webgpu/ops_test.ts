/**
 * The shared op table on the WebGPU backend (Mesa llvmpipe in CI), with both dot_general
 * strategies. Tolerances per op: llvmpipe's exp/log differ from libm by a few ulps (log up to
 * ~5e-7 absolute near 1), tanh and erf are this backend's own WGSL (<= 2e-7), and reductions
 * and dot products accumulate in f32 where the CPU backend uses f64.
 */
import { evaluate } from "../../../lib/backend/jit.ts";
import { assertAllClose, assertEquals } from "../../assert.ts";
import { OP_CASES } from "../op_table.ts";
import { webgpuBackend, webgpuGate } from "./gate.ts";

/** Absolute tolerance on WebGPU, by case name (others: exact, or the table's CPU atol). */
const WEBGPU_ATOL: Record<string, number> = {
  exp: 2e-6,
  log: 1e-6,
  tanh: 3e-7,
  erf: 3e-7,
  rsqrt: 1e-6,
  "reduce_sum all": 1e-6,
  "reduce_sum axis 0": 1e-6,
  "dot_general batched [2,3,2]x[2,2,3]": 1e-6,
  "dot_general contracting non-last dims": 1e-6,
};

const backends = {
  register: await webgpuBackend({ matmul: "register" }),
  // The GPU strategy with small tiles: its WGSL compiles quickly on llvmpipe.
  tiled: await webgpuBackend({ matmul: "tiled", maxTile: 16 }),
};

for (const c of OP_CASES) {
  const variants = c.name.startsWith("dot_general")
    ? ["register", "tiled"] as const
    : ["register"] as const;
  for (const v of variants) {
    Deno.test({
      name: `webgpu op: ${c.name}${variants.length > 1 ? ` (${v})` : ""}`,
      ...webgpuGate,
      fn: async () => {
        const out = await evaluate(backends[v], c.fn, ...c.inputs);
        assertEquals(out.shape, c.expectedShape);
        assertEquals(out.dtype, c.expectedDtype ?? "f32");
        const atol = WEBGPU_ATOL[c.name] ?? c.atol ?? 0;
        assertAllClose(Array.from(out.data), Array.from(c.expected), { atol });
      },
    });
  }
}
