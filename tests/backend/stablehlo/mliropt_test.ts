/**
 * Structural validity of emitted programs per `mlir-opt-16 --allow-unregistered-dialect`
 * (Debian mlir-16-tools; .ci/run installs it): SSA values defined before use, regions and
 * `func.func` / `func.return` types consistent. Skipped when mlir-opt-16 is absent. The
 * StableHLO ops themselves are unregistered there, so their attributes are checked by
 * ops_test.ts instead.
 */
import { emitStableHlo } from "../../../lib/backend/stablehlo/emit.ts";
import { autoAliases } from "../../../lib/backend/stablehlo/aliasing.ts";
import { exportTrainStep } from "../../../lib/train/export.ts";
import { resolveConfig } from "../../../lib/config/mod.ts";
import { checkpoint } from "../../../lib/autodiff/checkpoint.ts";
import { valueAndGrad } from "../../../lib/autodiff/grad.ts";
import { trace } from "../../../lib/ir/graph.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals } from "../../assert.ts";
import { OP_CASES } from "../op_table.ts";
import { mlpSpecs, mlpTrainStep } from "./mlp.ts";

const MLIR_OPT = "mlir-opt-16";
const available = await hasMlirOpt();
const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: `mlir-opt: ${name}`, ignore: !available, fn });

test("the check rejects broken programs (negative controls)", async () => {
  const undefinedValue = [
    "module {",
    "  func.func public @main(%arg0: tensor<2xf32>) -> (tensor<2xf32>) {",
    '    %0 = "stablehlo.add"(%arg0, %1) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>',
    '    "func.return"(%0) : (tensor<2xf32>) -> ()',
    "  }",
    "}",
  ].join("\n");
  assert(!(await mlirOpt(undefinedValue)).ok);
  const wrongResult = emitStableHlo(
    trace((x: Tensor) => ops.sum(x), { shape: [2], dtype: "f32" }).graph,
  )
    .replace("-> (tensor<f32>) {", "-> (tensor<2xf32>) {");
  const r = await mlirOpt(wrongResult);
  assert(!r.ok);
  assert(r.stderr.includes("type of return operand 0"), r.stderr);
});

test("every op-table program", async () => {
  for (const c of OP_CASES) {
    const { graph } = trace(c.fn, ...c.inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })));
    const r = await mlirOpt(emitStableHlo(graph));
    assert(r.ok, `${c.name}: ${r.stderr}`);
  }
});

test("an MLP training step: 1 and 4 replicas, bf16 compute, donation", async () => {
  const { graph } = trace(mlpTrainStep(4), ...mlpSpecs());
  for (
    const text of [
      emitStableHlo(trace(mlpTrainStep(1), ...mlpSpecs()).graph),
      emitStableHlo(graph, { compute: "bf16", aliases: autoAliases(graph, (i) => i < 4) }),
    ]
  ) {
    const r = await mlirOpt(text);
    assert(r.ok, r.stderr);
  }
});

test("rematerialized layers with optimization barriers", async () => {
  const layer = (w: Tensor, h: Tensor) => ops.tanh(ops.matmul(h, w));
  const f = checkpoint(layer);
  const { graph } = trace(
    (w: Tensor, x: Tensor) => valueAndGrad((v: Tensor) => ops.sum(f(v, f(v, x))))(w),
    { shape: [3, 3], dtype: "f32" },
    { shape: [2, 3], dtype: "f32" },
  );
  const text = emitStableHlo(graph);
  assert(text.includes("optimization_barrier"));
  const r = await mlirOpt(text);
  assert(r.ok, r.stderr);
});

test("the training step of every ViT recipe in configs/ (and bf16/remat/4-replica variants)", async () => {
  const configDir = new URL("../../../configs/", import.meta.url).pathname;
  const files = [...Deno.readDirSync(configDir)].map((e) => e.name)
    .filter((n) => n.endsWith(".json") && n !== "in21k_to_in1k.json").sort();
  assert(files.length >= 30, `${files.length} configs`);
  // Recipes whose programs have the same structure (the same ops per layer; sizes, rates and
  // schedules aside) are checked once, plus the largest model (ViT-H/14, 32 layers) in full.
  const seen = new Set<string>();
  const jobs: [string, string[]][] = [["deit3-h14-pt-154-in1k-400ep.json", []]];
  for (const file of files) {
    const json = JSON.parse(await Deno.readTextFile(configDir + file));
    const config = resolveConfig(json, file, [], { env: () => "x", configDir, random: () => 0 });
    const key = JSON.stringify(STRUCTURE_KEYS.map((k) => {
      const v = config[k];
      return typeof v === "number" ? (k === "lr-decay" ? v < 1 : v > 0) : v;
    }));
    if (seen.has(key)) continue;
    seen.add(key);
    jobs.push([file, []]);
  }
  assert(seen.size >= 5, `${seen.size} program structures`);
  const first = jobs[1][0];
  jobs.push([first, ["--grad-ckpt", "--precision", "bf16"]], [first, ["--devices", "4"]]);
  const failures: string[] = [];
  await forEachLimited(jobs, 2, async ([file, flags]) => {
    const json = JSON.parse(await Deno.readTextFile(configDir + file));
    const devices = flags[0] === "--devices" ? Number(flags[1]) : 1;
    const argv = flags[0] === "--devices" ? [] : flags;
    const config = resolveConfig(json, file, argv, { env: () => "x", configDir, random: () => 0 });
    const program = exportTrainStep(config, { batch: 8, devices });
    const r = await mlirOpt(program.text);
    if (!r.ok) failures.push(`${file} ${flags.join(" ")}: ${r.stderr.slice(0, 500)}`);
    if (devices > 1) assert(program.text.includes("stablehlo.all_reduce"));
    if (flags.includes("--grad-ckpt")) assert(program.text.includes("optimization_barrier"));
  });
  assertEquals(failures, []);
});

/** Config keys that change which ops the training step has (numbers: whether > 0, or < 1). */
const STRUCTURE_KEYS = [
  "layerscale",
  "posemb",
  "pooling",
  "dropout",
  "droppath",
  "grad-ckpt",
  "mixup",
  "cutmix",
  "criterion",
  "label-smoothing",
  "optimizer",
  "clip-grad",
  "lr-decay",
  "precision",
] as const;

async function mlirOpt(text: string): Promise<{ ok: boolean; stderr: string }> {
  const child = new Deno.Command(MLIR_OPT, {
    args: ["--allow-unregistered-dialect", "-o", "/dev/null", "-"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr) };
}

async function hasMlirOpt(): Promise<boolean> {
  try {
    const out = await new Deno.Command(MLIR_OPT, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    console.warn(`mlir-opt tests skipped: ${MLIR_OPT} not found (apt-get install mlir-16-tools)`);
    return false;
  }
}

async function forEachLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}
