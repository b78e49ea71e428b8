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
import { parseArgs } from "node:util";

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

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
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
  if (values.model !== undefined) Deno.exit(await stepCells(values));
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

/** `--model`: the train-step cells; returns the exit status. */
async function stepCells(v: {
  model?: string;
  batch: string;
  dtype: string;
  steps: string;
  backend: string;
  json: boolean;
  "matmul-precision": string;
  "pjrt-plugin"?: string;
  "jax-config"?: string;
  "timm-flags": boolean;
}): Promise<number> {
  const { benchStepCell, jaxConfig, STEP_MODELS, timmFlags } = await import(
    "../bench/step_cells.ts"
  );
  const models = v.model!.split(",");
  const dtypes = v.dtype.split(",");
  const batch = Number(v.batch), steps = Number(v.steps);
  const bad = models.find((m) => !(m in STEP_MODELS)) ??
    dtypes.find((d) => d !== "f32" && d !== "bf16");
  const fail = (msg: string) => {
    console.error(`bench: ${msg}`);
    return 2;
  };
  if (bad !== undefined) {
    return fail(
      `unknown --model or --dtype "${bad}" (models ${Object.keys(STEP_MODELS)}; f32, bf16)`,
    );
  }
  if (!(Number.isInteger(batch) && batch > 0)) return fail(`--batch must be a positive integer`);
  const matmul = v["matmul-precision"];
  if (matmul !== "default" && matmul !== "high" && matmul !== "highest") {
    return fail(`--matmul-precision must be default, high or highest, got "${matmul}"`);
  }
  if (!(Number.isInteger(steps) && steps > 0)) return fail(`--steps must be a positive integer`);
  if (!["cpu", "webgpu", "pjrt"].includes(v.backend)) {
    return fail(`--backend must be cpu, webgpu or pjrt, got "${v.backend}"`);
  }
  if (v["jax-config"] || v["timm-flags"]) {
    if (models.length !== 1) return fail("--jax-config and --timm-flags take one --model");
    if (v["jax-config"]) {
      await Deno.writeTextFile(v["jax-config"], JSON.stringify(jaxConfig(models[0]), null, 2));
    }
    if (v["timm-flags"]) console.log(timmFlags(models[0]).join(" "));
    return 0;
  }
  let failed = false;
  for (const model of models) {
    for (const dtype of dtypes) {
      const row = await benchStepCell({
        model,
        dtype: dtype as "f32" | "bf16",
        batch,
        steps,
        backend: v.backend as "cpu",
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
  return failed ? 1 : 0;
}
