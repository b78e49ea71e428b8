import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { assert } from "../../assert.ts";
import { GRAD_CASES, gradError } from "../grad_table.ts";

const backend = new CpuBackend();

for (const c of GRAD_CASES) {
  Deno.test(`cpu grad (finite differences): ${c.name}`, async () => {
    const err = await gradError(backend, c);
    // f32 central differences with step 1e-2: truncation ~1e-4, rounding ~1e-5.
    assert(err < 2e-3, `max relative error ${err}`);
  });
}
