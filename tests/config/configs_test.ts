// Every JSON in configs/ against the original deit3-jax recipes (tests/fixtures/config/
// original_configs.json, the flags of its config/**/*.sh with the step arithmetic evaluated).
import { assert, assertEquals } from "../assert.ts";
import { type Config, type ConfigKey, loadConfig } from "../../lib/config/mod.ts";

const CONFIGS = new URL("../../configs/", import.meta.url);
const FIXTURES = new URL("../fixtures/config/", import.meta.url);
const ORIGINAL: Record<string, { file: string; flags: Record<string, unknown> }> = readJson(
  new URL("original_configs.json", FIXTURES),
).configs;

// The original passes `--label-mapping $(dirname $0)/in21k_to_in1k.json`; this repo's recipes
// say `$CONFIG_DIR/in21k_to_in1k.json`, and configs/in21k_to_in1k.json is the copied file.
const ORIGINAL_LABEL_MAPPING = "in21k_to_in1k.json (in the config folder)";
const LABEL_MAPPING = "$CONFIG_DIR/in21k_to_in1k.json";
const DATA_FILES = ["in21k_to_in1k.json"];
const OWN_CONFIGS = ["mnist-vit-tiny.json"];

const ENV: Record<string, string> = { GCS_MODEL_DIR: "gs://m/models", GCS_DATASET_DIR: "gs://d" };
const env = (name: string) => ENV[name];

// The original's argparse defaults (src/main.py), for the flags a recipe does not pass.
const ARGPARSE_DEFAULTS: Partial<Record<ConfigKey, unknown>> = {
  "train-dataset-shards": null,
  "valid-dataset-shards": null,
  "valid-batch-size": 256,
  "valid-loader-workers": 5,
  "layerscale": false,
  "grad-ckpt": false,
  "pretrained-ckpt": null,
  "label-mapping": null,
  "project": null,
  "ipaddr": null,
  "hostname": null,
};

Deno.test("configs/ holds the 33 recipes of the original, the MNIST default and the mapping", () => {
  const names = [...Deno.readDirSync(CONFIGS)].map((e) => e.name).filter((n) => n.endsWith(".json"))
    .sort();
  const expected = [
    ...Object.keys(ORIGINAL).map((name) => `${name}.json`),
    ...OWN_CONFIGS,
    ...DATA_FILES,
  ].sort();
  assertEquals(names, expected);
  assertEquals(Object.keys(ORIGINAL).length, 33);
});

for (const [name, { file, flags }] of Object.entries(ORIGINAL)) {
  Deno.test(`configs/${name}.json matches ${file} flag by flag`, () => {
    assertEquals(file.split("/").pop(), `${name}.sh`);
    const json = readJson(new URL(`${name}.json`, CONFIGS));
    const expected = { ...flags };
    if ("label-mapping" in expected) {
      assertEquals(expected["label-mapping"], ORIGINAL_LABEL_MAPPING);
      expected["label-mapping"] = LABEL_MAPPING;
    }
    assertEquals(Object.keys(json).sort(), Object.keys(expected).sort(), "keys");
    for (const key of Object.keys(expected)) {
      assertEquals(json[key], expected[key], `${name}: ${key}`);
    }
  });

  Deno.test(`configs/${name}.json loads to the original's values and defaults`, () => {
    const path = `configs/${name}.json`;
    const config = loadConfig(fromRepo(path), [], { env });
    for (const [key, value] of Object.entries(flags)) {
      let expected = value;
      if (key === "label-mapping") expected = fromRepo("configs/in21k_to_in1k.json");
      else if (typeof value === "string") {
        expected = value.replace(/\$(GCS_\w+)/g, (_, v: string) => ENV[v]);
      }
      assertEquals(config[key as ConfigKey], expected, `${name}: ${key}`);
    }
    for (const [key, value] of Object.entries(ARGPARSE_DEFAULTS)) {
      if (!(key in flags)) assertEquals(config[key as ConfigKey], value, `${name}: default ${key}`);
    }
    if (config["label-mapping"] !== null) assert(Deno.statSync(config["label-mapping"]).isFile);
    assertEquals(config.backend, "auto");
    assertEquals(config.precision, "f32");
  });

  Deno.test(`configs/${name}.json steps follow from its epochs and dataset size`, () => {
    const batch = flags["train-batch-size"] as number;
    const in21k = String(flags["train-dataset-shards"]).includes("imagenet_w21-train");
    const images = in21k ? 13_151_276 : 1_281_167;
    const epochs = Number([...name.matchAll(/(\d+)ep/g)].pop()![1]);
    assertEquals(flags["training-steps"], Math.floor(images * epochs / batch));
    assertEquals(flags["warmup-steps"], Math.floor(images * 5 / batch));
    assertEquals(flags["labels"], in21k ? 19_167 : 1000);
    if (!in21k) assertEquals(flags["eval-interval"], Math.floor(images / batch));
  });
}

Deno.test("configs/in21k_to_in1k.json is the original's label mapping", () => {
  const copy = readJson(new URL("in21k_to_in1k.json", CONFIGS));
  const original = readJson(new URL("in21k_to_in1k.json", FIXTURES));
  assertEquals(copy, original);
  assertEquals(copy.src.length, 999);
  assertEquals(copy.dst.length, 999);
});

Deno.test("configs/mnist-vit-tiny.json is the embedded default and trains a tiny ViT", () => {
  const fromFile = loadConfig(fromRepo("configs/mnist-vit-tiny.json"), [], {
    env: () => undefined,
  });
  const embedded = loadConfig(undefined, [], { env: () => undefined });
  assertEquals(embedded, fromFile);
  const expected: Partial<Config> = {
    "train-dataset-shards": "data/mnist/mnist-train-{000..008}.tar",
    "valid-dataset-shards": "data/mnist/mnist-valid-000.tar",
    "image-size": 28,
    "patch-size": 7,
    "dim": 64,
    "layers": 4,
    "heads": 4,
    "labels": 10,
    "posemb": "learnable",
    "pooling": "cls",
    "train-batch-size": 48,
    "valid-batch-size": 500,
    "optimizer": "adamw",
    "mixup": 0,
    "cutmix": 0,
    "augment-repeats": 1,
    "random-crop": "none",
    "hflip": false,
    "auto-augment": "none",
    "output-dir": "runs/mnist-vit-tiny",
    "name": "mnist-vit-tiny",
  };
  for (const [key, value] of Object.entries(expected)) {
    assertEquals(embedded[key as ConfigKey], value, key);
  }
  assert(embedded["warmup-steps"] > 0 && embedded["warmup-steps"] < embedded["training-steps"]);
  assert(embedded["eval-interval"] > 0 && embedded["log-interval"] > 0);
});

// deno-lint-ignore no-explicit-any
function readJson(url: URL): any {
  return JSON.parse(Deno.readTextFileSync(url));
}

/** A repo path as the tests see it, whatever the working directory. */
function fromRepo(path: string): string {
  return new URL(`../../${path}`, import.meta.url).pathname;
}
