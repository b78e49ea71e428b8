/** `deno task export-hlo` and its library side: parameter specs, aliases by path, errors. */
import { exportTrainStep } from "../../../lib/train/export.ts";
import { paramSpecs } from "../../../lib/model/params.ts";
import { resolveConfig } from "../../../lib/config/mod.ts";
import { configToJson } from "../../../lib/config/save.ts";
import { leavesWithPaths } from "../../../lib/ir/pytree.ts";
import { initViT } from "../../../lib/model/init.ts";
import type { ViTConfig } from "../../../lib/model/vit.ts";
import { main } from "../../../tasks/export_hlo.ts";
import { assert, assertEquals, assertThrows } from "../../assert.ts";

const small: ViTConfig = {
  layers: 2,
  dim: 16,
  heads: 2,
  labels: 5,
  layerscale: false,
  patchSize: 4,
  imageSize: 8,
  posemb: "learnable",
  pooling: "cls",
  dropout: 0,
  droppath: 0,
  gradCkpt: false,
};

Deno.test("export: parameter specs match initViT's tree for every model option", () => {
  const variants: Partial<ViTConfig>[] = [
    {},
    { layerscale: true },
    { posemb: "sincos2d", pooling: "gap" },
    { labels: null },
    { layers: 3, labels: 7, patchSize: 2 },
  ];
  for (const v of variants) {
    const c = { ...small, ...v };
    const shapes = (tree: unknown) =>
      leavesWithPaths<{ shape: number[]; dtype: string }>(tree).map(([p, t]) =>
        `${p}:${t.dtype}[${t.shape}]`
      );
    assertEquals(shapes(paramSpecs(c)), shapes(initViT(c, 0)), JSON.stringify(v));
  }
});

const CONFIG = {
  "layers": 2,
  "dim": 16,
  "heads": 2,
  "labels": 5,
  "patch-size": 4,
  "image-size": 8,
  "train-batch-size": 8,
  "mixup": 0.8,
  "cutmix": 1.0,
  "droppath": 0.1,
  "optimizer": "lamb",
  "train-dataset-shards": "$DATA/train-{0..1}.tar",
};
const config = (argv: string[] = []) =>
  resolveConfig(CONFIG, "test.json", argv, { env: () => "/data", random: () => 0.5, name: "test" });

Deno.test("export: the step donates params and optimizer state to their own results", () => {
  const p = exportTrainStep(config(), { devices: 2 });
  assertEquals(p.perReplicaBatch, 4);
  // Arguments: params, opt.mu, opt.nu, batch, mix, scalars, key (pytree order).
  const names = p.inputs.map((l) => l.split(":")[0]);
  assertEquals(names.slice(0, 3), [
    "params.model.embed.cls_token",
    "params.model.embed.wpe",
    "params.model.embed.wte.bias",
  ]);
  assertEquals(names.slice(-10), [
    "batch.images",
    "batch.labels",
    "mix.box",
    "mix.imageLam",
    "mix.labelLam",
    "mix.perm",
    "scalars.bc1",
    "scalars.bc2",
    "scalars.lr",
    "key",
  ]);
  assertEquals(p.inputs[names.indexOf("batch.images")], "batch.images: ui8[4,3,8,8]");
  const results = p.outputs.map((l) => l.split(":")[0]);
  assertEquals(results.slice(0, 3), ["metrics.acc1", "metrics.acc5", "metrics.loss"]);
  // Every params/opt argument aliases the result at the same path, and nothing else aliases.
  const signature = p.text.split("\n").find((l) => l.includes("func.func public @main"))!;
  const args = signature.slice(signature.indexOf("(") + 1).split(/, (?=%arg)/);
  args.forEach((a, i) => {
    const m = /tf\.aliasing_output = (\d+) : i32/.exec(a);
    const name = names[i];
    if (name.startsWith("params.") || name.startsWith("opt.")) {
      assert(m, `${name} is not donated`);
      assertEquals(results[Number(m[1])], name);
    } else {
      assert(!m, `${name} should not be donated`);
    }
  });
  assert(
    p.text.startsWith(
      '// Training step of "test": per-replica batch 4, 2 replica(s), compute f32, matmul ' +
        "precision default.",
    ),
  );
  assert(p.text.includes("mhlo.num_replicas = 2 : i32"));
  assert(p.text.includes('"stablehlo.all_reduce"'));
  assert(p.text.includes('"stablehlo.shift_right_logical"'), "droppath draws threefry bits");
});

Deno.test("export: no mixing inputs when mixup and cutmix are off; bf16 from the config", () => {
  const p = exportTrainStep(config(["--mixup", "0", "--cutmix", "0", "--precision", "bf16"]));
  assert(!p.inputs.some((l) => l.startsWith("mix.")));
  assert(p.text.includes("compute bf16, matmul precision default."));
  assert(p.text.includes("xbf16>) -> tensor<"));
});

Deno.test("export: every dot's precision follows matmul-precision; DEFAULT (jax's) unless set", () => {
  const count = (text: string, p: string) =>
    text.split(`#stablehlo<precision ${p}>, #stablehlo<precision ${p}>`).length - 1;
  const plain = exportTrainStep(config());
  assert(plain.text.includes("matmul precision default."), plain.text.slice(0, 300));
  const dots = plain.text.split('"stablehlo.dot_general"').length - 1;
  assert(dots > 10, `${dots} dots`);
  assertEquals(count(plain.text, "DEFAULT"), dots);
  for (const [flag, p] of [["high", "HIGH"], ["highest", "HIGHEST"]]) {
    const t = exportTrainStep(config(["--matmul-precision", flag])).text;
    assertEquals([count(t, p), count(t, "DEFAULT")], [dots, 0], flag);
  }
  assertThrows(() => config(["--matmul-precision", "fast"]), "matmul-precision");
  // The run's config.json records it.
  const saved = JSON.parse(configToJson(config(["--matmul-precision", "high"])));
  assertEquals(saved["matmul-precision"], "high");
});

Deno.test("export: bad batch or devices are refused", () => {
  assertThrows(
    () => exportTrainStep(config(), { batch: 6, devices: 4 }),
    "a step batch of 6 images does not split over 4 devices",
  );
  assertThrows(
    () => exportTrainStep(config(["--train-batch-size", "48"]), { devices: 5 }),
    "train-batch-size: 48 images do not split over 1 process(es) x 5 device(s); use a multiple",
  );
  assertThrows(() => exportTrainStep(config(), { devices: 0 }), "devices must be a positive");
  assertThrows(
    () => exportTrainStep(config(["--dim", "15"])),
    '"dim" (15, from --dim 15) must be divisible by "heads" (2)',
  );
});

Deno.test("export-hlo task: writes the program to --out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "export_hlo_" });
  try {
    // Data and output paths naming unset variables, as the recipes do: not read, not needed.
    await Deno.writeTextFile(
      `${dir}/tiny.json`,
      JSON.stringify({
        ...CONFIG,
        "output-dir": "$DEIT3_TEST_UNSET_MODEL_DIR",
        "train-dataset-shards": "$DEIT3_TEST_UNSET_DATA/train-{0..3}.tar",
      }),
    );
    const code = await main([
      `${dir}/tiny.json`,
      "--batch",
      "4",
      "--out",
      `${dir}/step.mlir`,
      "--grad-ckpt",
    ]);
    assertEquals(code, 0);
    const text = await Deno.readTextFile(`${dir}/step.mlir`);
    assert(text.startsWith('// Training step of "tiny": per-replica batch 4, 1 replica(s)'));
    assert(text.includes('"stablehlo.optimization_barrier"'));
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["step.mlir", "tiny.json"]);
    assertEquals(
      await main([`${dir}/tiny.json`, "--devices", "4", "--out", `${dir}/step4.mlir`]),
      0,
    );
    const four = await Deno.readTextFile(`${dir}/step4.mlir`);
    assert(four.startsWith('// Training step of "tiny": per-replica batch 2, 4 replica(s)'));
    assert(four.includes("mhlo.num_replicas = 4 : i32"));
    assert(four.includes('"stablehlo.all_reduce"'));
    // Mistakes exit 2 with the message (tasks/cli.ts), the text program or file untouched.
    const mistakes: [string[], string][] = [
      [["--batch", "x"], 'export-hlo: --batch must be a positive integer, got "x"'],
      [["--out"], "export-hlo: --out needs a value"],
      [["--heads", "3"], '"dim" (16) must be divisible by "heads" (3, from --heads 3)'],
    ];
    for (const [args, text] of mistakes) {
      const err: string[] = [];
      const error = console.error;
      console.error = (...a: unknown[]) => err.push(a.join(" "));
      try {
        assertEquals(await main([`${dir}/tiny.json`, ...args]), 2, args.join(" "));
      } finally {
        console.error = error;
      }
      assert(err.join("\n").includes(text), err.join("\n"));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
