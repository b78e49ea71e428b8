/**
 * deno task bench [--backend cpu|webgpu] [--only LIST] [--json]
 * deno task bench --model s16|b16|tiny[,...] [--batch N] [--dtype f32|bf16[,...]]
 *                 [--backend cpu|webgpu|pjrt] [--steps N] [--pjrt-plugin PATH]
 *
 * Side-by-side benchmarks against peers run in the same invocation on the same machine:
 *   train   train-step img/s of the tiny MNIST ViT on the backend (CPU: next to PyTorch CPU);
 *   augment Pillow-exact ops and the RandAugment train transform next to Pillow;
 *   data    JPEG decode + RandomResizedCrop + flip + resize next to Pillow;
 *   webgpu  matmul TFLOP/s and train-step img/s on WebGPU;
 *   resume  what a resume near the end of a run costs against one near its start (not default).
 * Each part lives in bench/ and can be run on its own. With `--model`, it times our train step
 * alone for each model x dtype (bench/step_cells.ts), one JSON line per cell: the cells that
 * scripts/device/device_check.sh runs next to deit3-jax and timm.
 */
import { command, EXIT, exit, intFlag, parseFlags, UsageError } from "./cli.ts";

const PARTS: Record<string, { module: string; fn: string; format?: string }> = {
  train: { module: "../bench/cpu.ts", fn: "benchCpu", format: "formatCpuBench" },
  augment: { module: "../bench/augment.ts", fn: "benchAugment", format: "formatAugmentBench" },
  data: { module: "../bench/data.ts", fn: "benchData", format: "formatDataBench" },
  webgpu: { module: "../bench/webgpu.ts", fn: "benchWebGpu", format: "formatWebGpuBench" },
  resume: { module: "../bench/resume.ts", fn: "benchResume", format: "formatResumeBench" },
};

const USAGE = `usage: deno task bench [--backend cpu|webgpu] [--only PARTS] [--json]
       deno task bench --model s16|b16|tiny[,...] [--batch N] [--dtype f32|bf16[,...]]
                       [--backend cpu|webgpu|pjrt] [--steps N] [--pjrt-plugin PATH] [--json]
                       [--matmul-precision default|high|highest]

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

Train-step cells (one line each, JSON with --json), our step alone on a synthetic batch:
  --model LIST          s16 (ViT-S/16, 224, LayerScale, drop-path 0.1), b16 (ViT-B/16, same),
                        tiny (the MNIST ViT); comma-separated
  --batch N             images per step (default 256)
  --dtype LIST          f32 (default) and/or bf16 (pjrt only); comma-separated
  --steps N             timed steps after the warm-up step (default 5)
  --matmul-precision P  each matmul's precision_config on pjrt: default (jax's, the original's),
                        high or highest (full f32); cpu and webgpu compute f32 anyway
  --pjrt-plugin PATH    the PJRT plugin for --backend pjrt (else PJRT_PLUGIN_PATH, or found)
  --jax-config FILE     write the (one) model as a config of scripts/peers/bench_jax.py train-step
  --timm-flags          print the (one) model as flags of scripts/peers/bench_timm_vit.py

The peers need Debian's python3-torch and python3-pil; a part whose peer is missing says so.
Results are recorded in BENCHMARKS.md with the machine they ran on.`;

export const main = command({ name: "bench", usage: USAGE, run: bench });

type Flags = ReturnType<typeof flags>;

function flags(args: string[]) {
  return parseFlags(args, {
    backend: { type: "string", default: "cpu" },
    only: { type: "string" },
    json: { type: "boolean", default: false },
    model: { type: "string" },
    batch: { type: "string", default: "256" },
    dtype: { type: "string", default: "f32" },
    steps: { type: "string", default: "5" },
    "matmul-precision": { type: "string", default: "default" },
    "pjrt-plugin": { type: "string" },
    "jax-config": { type: "string" },
    "timm-flags": { type: "boolean", default: false },
  }).values;
}

/** 1 when a part failed (it said why), else 0. */
async function bench(args: string[]): Promise<number> {
  const values = flags(args);
  if (values.model !== undefined) return await stepCells(values, values.model.split(","));
  if (values.backend !== "cpu" && values.backend !== "webgpu") {
    throw new UsageError(`--backend must be cpu or webgpu, got "${values.backend}"`);
  }
  const defaults = values.backend === "webgpu" ? ["webgpu"] : ["train", "augment", "data"];
  const names = values.only ? values.only.split(",") : defaults;
  const unknown = names.find((name) => !PARTS[name]);
  if (unknown !== undefined) {
    throw new UsageError(
      `unknown part "${unknown}" (expected ${Object.keys(PARTS).join(", ")})`,
    );
  }
  const results: Record<string, unknown> = {};
  let failed = false;
  for (const name of names) {
    const part = PARTS[name];
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
  return failed ? EXIT.failed : EXIT.ok;
}

const isDtype = (d: string): d is "f32" | "bf16" => d === "f32" || d === "bf16";
const BACKENDS = ["cpu", "webgpu", "pjrt"] as const;

/** `--model`: the train-step cells; 1 when a cell failed. */
async function stepCells(v: Flags, models: string[]): Promise<number> {
  const { benchStepCell, jaxConfig, STEP_MODELS, timmFlags } = await import(
    "../bench/step_cells.ts"
  );
  const dtypes = v.dtype.split(",");
  const bad = models.find((m) => !(m in STEP_MODELS)) ?? dtypes.find((d) => !isDtype(d));
  if (bad !== undefined) {
    throw new UsageError(
      `unknown --model or --dtype "${bad}" (models ${Object.keys(STEP_MODELS)}; f32, bf16)`,
    );
  }
  const batch = intFlag("--batch", v.batch, 1);
  const matmul = v["matmul-precision"];
  if (matmul !== "default" && matmul !== "high" && matmul !== "highest") {
    throw new UsageError(`--matmul-precision must be default, high or highest, got "${matmul}"`);
  }
  const steps = intFlag("--steps", v.steps, 1);
  const backend = BACKENDS.find((b) => b === v.backend);
  if (backend === undefined) {
    throw new UsageError(`--backend must be cpu, webgpu or pjrt, got "${v.backend}"`);
  }
  if (v["jax-config"] || v["timm-flags"]) {
    if (models.length !== 1) throw new UsageError("--jax-config and --timm-flags take one --model");
    if (v["jax-config"]) {
      await Deno.writeTextFile(v["jax-config"], JSON.stringify(jaxConfig(models[0]), null, 2));
    }
    if (v["timm-flags"]) console.log(timmFlags(models[0]).join(" "));
    return EXIT.ok;
  }
  let failed = false;
  for (const model of models) {
    for (const dtype of dtypes.filter(isDtype)) {
      const row = await benchStepCell({
        model,
        dtype,
        batch,
        steps,
        backend,
        pjrtPlugin: v["pjrt-plugin"],
        matmulPrecision: matmul,
      });
      failed ||= "error" in row;
      console.log(
        v.json
          ? JSON.stringify(row)
          : `${model} ${dtype} (matmul ${matmul}) batch ${batch} on ${v.backend}: ${
            "error" in row
              ? `error: ${row.error}`
              : `${row.img_per_s} img/s, ${row.step_ms} ms/step, compile ${row.compile_s} s`
          }`,
      );
    }
  }
  return failed ? EXIT.failed : EXIT.ok;
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
