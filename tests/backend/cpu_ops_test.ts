import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { evaluate } from "../../lib/backend/jit.ts";
import { assertAllClose, assertEquals } from "../assert.ts";
import { OP_CASES } from "./op_table.ts";

const backend = new CpuBackend();

for (const c of OP_CASES) {
  Deno.test(`cpu op: ${c.name}`, async () => {
    const out = await evaluate(backend, c.fn, ...c.inputs);
    assertEquals(out.shape, c.expectedShape);
    assertEquals(out.dtype, c.expectedDtype ?? "f32");
    assertAllClose(Array.from(out.data), Array.from(c.expected), { atol: c.atol ?? 0 });
  });
}
