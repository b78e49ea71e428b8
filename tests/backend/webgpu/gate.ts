/**
 * How the WebGPU test files get their backend. Without an adapter (no Vulkan/Metal driver, no
 * Mesa llvmpipe) the files still load: their tests are registered with `ignore: true` (spread
 * `webgpuGate` into each definition) and one warning says why, as the other optional backends
 * and tools are gated. The backends they get then throw that reason if touched.
 */
import { type DeviceOptions } from "../../../lib/backend/webgpu/device.ts";
import { WebGpuBackend } from "../../../lib/backend/webgpu/backend.ts";

async function probe(): Promise<string> {
  try {
    (await WebGpuBackend.create()).dispose();
    return "";
  } catch (e) {
    return (e as Error).message;
  }
}

/** Why the WebGPU tests are ignored; "" when an adapter was found. */
export const webgpuMissing = await probe();
if (webgpuMissing) console.warn(`webgpu tests ignored: ${webgpuMissing}`);

/** Spread into each WebGPU `Deno.test` definition. */
export const webgpuGate = {
  ignore: webgpuMissing !== "",
  sanitizeResources: false,
  sanitizeOps: false,
};

/** A WebGPU backend; without an adapter, a stand-in that throws the reason when used. */
export async function webgpuBackend(opts?: DeviceOptions): Promise<WebGpuBackend> {
  if (!webgpuMissing) return await WebGpuBackend.create(opts);
  return new Proxy({}, {
    get(_target, key) {
      if (key === "then") return undefined; // not a promise (awaiting it looks for `then`)
      throw new Error(`no WebGPU backend: ${webgpuMissing}`);
    },
  }) as WebGpuBackend;
}
