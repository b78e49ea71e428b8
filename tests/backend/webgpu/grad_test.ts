/**
 * Finite-difference gradient checks of every differentiable primitive on WebGPU. The graph
 * (forward, VJP rules, remat) is the same as on the CPU; differences come from f32
 * arithmetic on the device, so the bound is the CPU's (2e-3, set by the f32 central
 * difference itself: truncation ~1e-4, rounding ~1e-5).
 */
import { assert } from "../../assert.ts";
import { GRAD_CASES, gradError } from "../grad_table.ts";
import { webgpuBackend, webgpuGate } from "./gate.ts";

const backend = await webgpuBackend();

for (const c of GRAD_CASES) {
  Deno.test({
    name: `webgpu grad (finite differences): ${c.name}`,
    ...webgpuGate,
    fn: async () => {
      const err = await gradError(backend, c);
      assert(err < 2e-3, `max relative error ${err}`);
    },
  });
}
