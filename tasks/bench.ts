/**
 * deno task bench [--backend cpu|webgpu|pjrt] [--only LIST] [--json]
 *
 * Side-by-side benchmarks against peers run in the same invocation on the same machine:
 *   train   train-step img/s of the tiny MNIST ViT on the backend (CPU: next to PyTorch CPU);
 *   augment Pillow-exact ops and the RandAugment train transform next to Pillow;
 *   data    JPEG decode + RandomResizedCrop + flip + resize next to Pillow;
 *   webgpu  matmul TFLOP/s and train-step img/s on WebGPU.
 * Each part lives in bench/ and can be run on its own.
 */
import { parseArgs } from "node:util";

const PARTS: Record<string, { module: string; fn: string; format?: string }> = {
  train: { module: "../bench/cpu.ts", fn: "benchCpu", format: "formatCpuBench" },
  augment: { module: "../bench/augment.ts", fn: "benchAugment", format: "formatAugmentBench" },
  data: { module: "../bench/data.ts", fn: "benchData", format: "formatDataBench" },
  webgpu: { module: "../bench/webgpu.ts", fn: "benchWebGpu", format: "formatWebGpuBench" },
};

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      backend: { type: "string", default: "cpu" },
      only: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const defaults = values.backend === "webgpu" ? ["webgpu"] : ["train", "augment", "data"];
  const names = values.only ? values.only.split(",") : defaults;
  const results: Record<string, unknown> = {};
  let failed = false;
  for (const name of names) {
    const part = PARTS[name];
    if (!part) {
      console.error(`bench: unknown part "${name}" (expected ${Object.keys(PARTS).join(", ")})`);
      Deno.exit(2);
    }
    try {
      const mod = await import(part.module);
      const r = await mod[part.fn]();
      results[name] = r;
      if (!values.json) {
        console.log(`== ${name}`);
        console.log(
          part.format && mod[part.format] ? mod[part.format](r) : JSON.stringify(r, null, 2),
        );
      }
    } catch (e) {
      failed = true;
      results[name] = { error: (e as Error).message };
      console.error(`bench ${name}: ${(e as Error).message}`);
    }
  }
  if (values.json) console.log(JSON.stringify(results));
  Deno.exit(failed ? 1 : 0);
}
