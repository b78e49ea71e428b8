/**
 * deno task bench [--backend cpu|webgpu] [--only LIST] [--json]
 *
 * Side-by-side benchmarks against peers run in the same invocation on the same machine:
 *   train   train-step img/s of the tiny MNIST ViT on the backend (CPU: next to PyTorch CPU);
 *   augment Pillow-exact ops and the RandAugment train transform next to Pillow;
 *   data    JPEG decode + RandomResizedCrop + flip + resize next to Pillow;
 *   webgpu  matmul TFLOP/s and train-step img/s on WebGPU;
 *   resume  what a resume near the end of a run costs against one near its start (not default).
 * Each part lives in bench/ and can be run on its own.
 */
import { parseArgs } from "node:util";

const PARTS: Record<string, { module: string; fn: string; format?: string }> = {
  train: { module: "../bench/cpu.ts", fn: "benchCpu", format: "formatCpuBench" },
  augment: { module: "../bench/augment.ts", fn: "benchAugment", format: "formatAugmentBench" },
  data: { module: "../bench/data.ts", fn: "benchData", format: "formatDataBench" },
  webgpu: { module: "../bench/webgpu.ts", fn: "benchWebGpu", format: "formatWebGpuBench" },
  resume: { module: "../bench/resume.ts", fn: "benchResume", format: "formatResumeBench" },
};

const USAGE = `usage: deno task bench [--backend cpu|webgpu] [--only PARTS] [--json]

Benchmarks next to their peers, run in the same invocation on the same machine:
  train    train-step img/s of the tiny MNIST ViT on the CPU backend, next to PyTorch CPU
  augment  Pillow-exact ops and the RandAugment train transform, next to Pillow
  data     JPEG decode + RandomResizedCrop + flip + resize, next to Pillow
  webgpu   matmul TFLOP/s and train-step img/s on WebGPU
  resume   a resume near the end of a 500-step MNIST run against one at step 10 and a
           fresh run (only with --only resume)

  --backend cpu|webgpu  cpu (default) runs train,augment,data; webgpu runs webgpu
  --only PARTS          comma-separated parts, e.g. --only train,data
  --json                one JSON object with every result instead of text
  -h, --help            this text

The peers need Debian's python3-torch and python3-pil; a part whose peer is missing says so.
Results are recorded in BENCHMARKS.md with the machine they ran on.`;

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        backend: { type: "string", default: "cpu" },
        only: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  const { values } = parsed;
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (values.backend !== "cpu" && values.backend !== "webgpu") {
    console.error(`bench: --backend must be cpu or webgpu, got "${values.backend}"`);
    Deno.exit(2);
  }
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
