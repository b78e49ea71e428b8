import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { evaluate } from "../../../lib/backend/jit.ts";
import { assertAllClose, assertEquals } from "../../assert.ts";
import { OP_CASES } from "../op_table.ts";

// The fused executor (default) and the reference interpreter both answer the op table.
for (const mode of ["fused", "reference"] as const) {
  const backend = new CpuBackend({ mode });
  const tag = mode === "fused" ? "cpu op" : "cpu reference op";
  for (const c of OP_CASES) {
    Deno.test(`${tag}: ${c.name}`, async () => {
      const out = await evaluate(backend, c.fn, ...c.inputs);
      assertEquals(out.shape, c.expectedShape);
      assertEquals(out.dtype, c.expectedDtype ?? "f32");
      assertAllClose(Array.from(out.data), Array.from(c.expected), { atol: c.atol ?? 0 });
    });
  }
}
