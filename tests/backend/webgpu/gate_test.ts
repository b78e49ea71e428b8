/**
 * Without an adapter the WebGPU test files load and ignore their tests with the reason, instead
 * of failing at top level. Simulated here by an adapter request that finds nothing (this file
 * loads the gate itself, after the stub, so the other files' real adapter is not affected).
 */
import { assert, assertEquals, assertRejects } from "../../assert.ts";

const gpu = navigator.gpu as unknown as { requestAdapter: () => Promise<unknown> } | undefined;

Deno.test({
  name: "webgpu gate: no adapter ignores the tests, and says why",
  ignore: gpu === undefined,
  fn: async () => {
    const original = gpu!.requestAdapter;
    gpu!.requestAdapter = () => Promise.resolve(null);
    const warn = console.warn;
    const warnings: string[] = [];
    console.warn = (msg: string) => void warnings.push(msg);
    try {
      const gate = await import("./gate.ts");
      assert(/no GPU adapter found/.test(gate.webgpuMissing), gate.webgpuMissing);
      assertEquals(gate.webgpuGate.ignore, true);
      assertEquals(warnings.length, 1);
      assert(warnings[0].startsWith("webgpu tests ignored: webgpu: no GPU adapter found"));
      const stand = await gate.webgpuBackend();
      await assertRejects(() => Promise.resolve().then(() => stand.compile), /no WebGPU backend/);
    } finally {
      gpu!.requestAdapter = original;
      console.warn = warn;
    }
  },
});
