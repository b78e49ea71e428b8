// loadConfig: CLI overrides, $VAR expansion, defaults, and the errors a user can cause.
import { assert, assertEquals, assertThrows } from "../assert.ts";
import {
  CONFIG_KEYS,
  ConfigError,
  configHelp,
  type ConfigKey,
  configToJson,
  loadConfig,
  parseCommandLine,
  resolveConfig,
} from "../../lib/config/mod.ts";

// A minimal valid config: the original's argparse defaults plus the one required key.
const BASE = { labels: 1000 };
const NO_ENV = { env: () => undefined };

/** Resolves `json` as if read from `x.json`, with `env` as the environment. */
function resolve(
  json: unknown,
  argv: string[] = [],
  env: Record<string, string> = {},
  random = () => 0.25,
) {
  return resolveConfig(json, "x.json", argv, {
    env: (name) => env[name],
    configDir: "/cfg",
    name: "x",
    random,
  });
}

function expectIssues(fn: () => unknown, ...patterns: (string | RegExp)[]): ConfigError {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  assert(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
  for (const pattern of patterns) {
    const hit = error.issues.some((issue) =>
      typeof pattern === "string" ? issue.includes(pattern) : pattern.test(issue)
    );
    assert(hit, `no issue matches ${pattern} in:\n${error.message}`);
  }
  return error;
}

Deno.test("defaults are the original's argparse defaults (src/main.py)", () => {
  const config = resolve(BASE);
  const argparse: Record<string, unknown> = {
    "train-dataset-shards": null,
    "valid-dataset-shards": null,
    "train-batch-size": 2048,
    "valid-batch-size": 256,
    "train-loader-workers": 40,
    "valid-loader-workers": 5,
    "random-crop": "rrc",
    "color-jitter": 0.0,
    "auto-augment": "rand-m9-mstd0.5-inc1",
    "random-erasing": 0.25,
    "augment-repeats": 3,
    "test-crop-ratio": 0.875,
    "mixup": 0.8,
    "cutmix": 1.0,
    "criterion": "ce",
    "label-smoothing": 0.1,
    "layers": 12,
    "dim": 768,
    "heads": 12,
    "layerscale": false,
    "patch-size": 16,
    "image-size": 224,
    "posemb": "learnable",
    "pooling": "cls",
    "dropout": 0.0,
    "droppath": 0.1,
    "grad-ckpt": false,
    "pretrained-ckpt": null,
    "label-mapping": null,
    "optimizer": "adamw",
    "learning-rate": 1e-3,
    "weight-decay": 0.05,
    "adam-b1": 0.9,
    "adam-b2": 0.999,
    "adam-eps": 1e-8,
    "lr-decay": 1.0,
    "clip-grad": 0.0,
    "grad-accum": 1,
    "warmup-steps": 10000,
    "training-steps": 200000,
    "log-interval": 50,
    "eval-interval": 0,
    "project": null,
    "ipaddr": null,
    "hostname": null,
    "output-dir": ".",
  };
  for (const [key, value] of Object.entries(argparse)) {
    assertEquals(config[key as ConfigKey], value, key);
  }
  // Seeds are random as in the original (random.randint(0, 1000000)), recorded in the config.
  for (const key of ["init-seed", "mixup-seed", "dropout-seed", "shuffle-seed"] as const) {
    assertEquals(config[key], 250000, key);
  }
  assertEquals(resolve(BASE, [], {}, () => 0.9999999)["init-seed"], 1000000);
  assertEquals(resolve({ ...BASE, "init-seed": 7 })["init-seed"], 7);
  // This project's own keys.
  assertEquals(config.backend, "auto");
  assertEquals(config.precision, "f32");
  assertEquals(config["pjrt-plugin"], null);
  assertEquals(config["max-bad-fraction"], 0.01);
  // name: the config file's name when not given, as `--name $(basename $0 .sh)`.
  assertEquals(config.name, "x");
  assertEquals(Object.keys(config), CONFIG_KEYS);
  assert(Object.isFrozen(config));
});

Deno.test("command-line flags override the JSON in every form", () => {
  const json = { ...BASE, layers: 6, layerscale: true, "pretrained-ckpt": "a.msgpack" };
  const config = resolve(json, [
    "--layers",
    "8",
    "--dim=512",
    "--no-layerscale",
    "--grad-ckpt",
    "--learning-rate",
    "3e-4",
    "--no-pretrained-ckpt",
    "--random-crop=src",
    "--heads",
    "16",
    "--heads",
    "8",
    "--test-crop-ratio",
    "1",
    "--name",
    "run-1",
  ]);
  assertEquals(config.layers, 8);
  assertEquals(config.dim, 512);
  assertEquals(config.layerscale, false);
  assertEquals(config["grad-ckpt"], true);
  assertEquals(config["learning-rate"], 3e-4);
  assertEquals(config["pretrained-ckpt"], null);
  assertEquals(config["random-crop"], "src");
  assertEquals(config.heads, 8, "the last flag wins");
  assertEquals(config["test-crop-ratio"], 1);
  assertEquals(config.name, "run-1");
  assertEquals(resolve(BASE, ["--layerscale", "true"]).layerscale, true);
  assertEquals(resolve({ ...BASE, layerscale: true }, ["--layerscale=false"]).layerscale, false);
});

Deno.test("$VAR, ${VAR}, ${VAR:-fallback}, $$ and $CONFIG_DIR expand in JSON strings", () => {
  const json = {
    ...BASE,
    "output-dir": "${OUT}/runs",
    "train-dataset-shards": "$DATA/train-{0000..0003}.tar",
    "valid-dataset-shards": "pipe:echo $${HOME} ${VALID:-gs://b/valid.tar}",
    "pretrained-ckpt": "${CKPT:-}",
    "label-mapping": "$CONFIG_DIR/map.json",
  };
  const config = resolve(json, ["--pretrained-ckpt", "p.msgpack"], {
    OUT: "gs://bucket",
    DATA: "/data",
  });
  assertEquals(config["output-dir"], "gs://bucket/runs");
  assertEquals(config["train-dataset-shards"], "/data/train-{0000..0003}.tar");
  assertEquals(config["valid-dataset-shards"], "pipe:echo ${HOME} gs://b/valid.tar");
  assertEquals(config["label-mapping"], "/cfg/map.json");
  // An optional path that expands to nothing is unset.
  const unset = resolve({ ...BASE, "pretrained-ckpt": "${CKPT:-}" });
  assertEquals(unset["pretrained-ckpt"], null);
  // Flag values are taken as given: the shell already expanded them.
  assertEquals(resolve(BASE, ["--output-dir", "$LITERAL"])["output-dir"], "$LITERAL");
});

Deno.test("an unset variable names the file, key and variable; a flag override avoids it", () => {
  const json = { ...BASE, "output-dir": "$GCS_MODEL_DIR" };
  expectIssues(
    () => resolve(json),
    'x.json: key "output-dir": environment variable GCS_MODEL_DIR is not set ' +
      "(set it, or override with --output-dir)",
  );
  assertEquals(resolve(json, ["--output-dir", "out"])["output-dir"], "out");
  expectIssues(() => resolve({ ...BASE, name: "a$" }), 'key "name": a lone "$"');
  expectIssues(() => resolve({ ...BASE, name: "${1X}" }), 'malformed reference "${1X}"');
  expectIssues(() => resolve({ ...BASE, "output-dir": "${EMPTY:-}" }), "is empty after expanding");
});

Deno.test('unsetVariables "defer": an unset variable is an error only when its key is read', () => {
  const json = {
    ...BASE,
    "output-dir": "$GCS_MODEL_DIR",
    "train-dataset-shards": "$GCS_DATASET_DIR/train-{0..3}.tar",
    "valid-dataset-shards": "$VALID/v.tar",
  };
  const config = resolveConfig(json, "x.json", [], {
    env: () => undefined,
    unsetVariables: "defer",
  });
  assertEquals(config.labels, 1000);
  const read = (key: "output-dir" | "train-dataset-shards" | "valid-dataset-shards") => () =>
    config[key];
  expectIssues(
    read("output-dir"),
    'x.json: key "output-dir": environment variable GCS_MODEL_DIR is not set ' +
      "(set it, or override with --output-dir)",
  );
  expectIssues(read("train-dataset-shards"), "environment variable GCS_DATASET_DIR is not set");
  expectIssues(read("valid-dataset-shards"), "environment variable VALID is not set");
  // Set variables and flags resolve as usual; other problems are still reported at load time.
  const set = resolveConfig(json, "x.json", ["--output-dir", "out"], {
    env: (n) => n === "VALID" ? "/v" : undefined,
    unsetVariables: "defer",
  });
  assertEquals([set["output-dir"], set["valid-dataset-shards"]], ["out", "/v/v.tar"]);
  expectIssues(
    () =>
      resolveConfig({ ...json, heads: 5 }, "x.json", [], {
        env: () => undefined,
        unsetVariables: "defer",
      }),
    "must be divisible by",
  );
  expectIssues(
    () => resolveConfig({ ...BASE, name: "${1X}" }, "x.json", [], { unsetVariables: "defer" }),
    'malformed reference "${1X}"',
  );
});

Deno.test("an unknown key names the file and suggests the flag name", () => {
  const error = expectIssues(
    () => resolve({ ...BASE, learning_rate: 0.1, imageSize: 224, wandb: true }),
    'x.json: unknown key "learning_rate" (did you mean "learning-rate"?)',
    'x.json: unknown key "imageSize" (did you mean "image-size"?)',
    /^x\.json: unknown key "wandb"$/,
  );
  assertEquals(error.issues.length, 3, "every problem is reported at once");
  // Keys starting with "//" are comments.
  assertEquals(resolve({ ...BASE, "//": "note", "// why": 1 }).labels, 1000);
});

Deno.test("a wrong type names the key, the expected type and the value", () => {
  expectIssues(
    () =>
      resolve({
        ...BASE,
        layers: "12",
        dim: 76.8,
        layerscale: "true",
        "learning-rate": "1e-3",
        "auto-augment": 3,
        "train-dataset-shards": ["a.tar"],
        "output-dir": "",
        posemb: "sincos",
        optimizer: "sgd",
      }),
    'x.json: key "layers" must be an integer, got "12" (a string)',
    'x.json: key "dim" must be an integer, got 76.8 (a number)',
    'x.json: key "layerscale" must be true or false, got "true" (a string)',
    'x.json: key "learning-rate" must be a number, got "1e-3" (a string)',
    'x.json: key "auto-augment" must be a string, got 3 (a number)',
    'x.json: key "train-dataset-shards" must be a string or null, got an array',
    'x.json: key "output-dir" must not be empty',
    'x.json: key "posemb" must be one of "learnable", "sincos2d", got "sincos" ' +
      '(did you mean "sincos2d"?)',
    'x.json: key "optimizer" must be one of "adamw", "lamb", got "sgd"',
  );
  expectIssues(() => resolve([1, 2]), "x.json: a config must be a JSON object");
});

Deno.test("out-of-range values name the range", () => {
  expectIssues(
    () =>
      resolve({
        ...BASE,
        droppath: 1.0,
        "test-crop-ratio": 0,
        "grad-accum": 0,
        "lr-decay": 1.5,
        "random-erasing": -0.1,
      }),
    'key "droppath" must be [0, 1), got 1',
    'key "test-crop-ratio" must be (0, 1], got 0',
    'key "grad-accum" must be >= 1, got 0',
    'key "lr-decay" must be (0, 1], got 1.5',
    'key "random-erasing" must be [0, 1], got -0.1',
  );
  expectIssues(
    () => resolve({}),
    'x.json: key "labels" is not set, and must be >= 1, got -1; set it to the number of classes',
  );
  expectIssues(() => resolve({ labels: 0 }), 'x.json: key "labels" must be >= 1, got 0');
});

Deno.test("impossible combinations name both keys and where each came from", () => {
  expectIssues(
    () => resolve({ ...BASE, dim: 768 }, ["--heads", "10"]),
    'x.json: "dim" (768) must be divisible by "heads" (10, from --heads 10)',
  );
  expectIssues(
    () => resolve({ ...BASE, "image-size": 200 }),
    '"image-size" (200) must be divisible by "patch-size" (16, the default)',
  );
  expectIssues(
    () => resolve({ ...BASE, "train-batch-size": 1000, "grad-accum": 3 }),
    '"train-batch-size" (1000) must be divisible by "grad-accum" (3)',
  );
  expectIssues(
    () => resolve({ ...BASE, "warmup-steps": 500, "training-steps": 100 }),
    '"warmup-steps" (500) must be at most "training-steps" (100)',
  );
  expectIssues(
    () => resolve({ ...BASE, "label-mapping": "m.json" }),
    '"label-mapping" ("m.json") maps the head of a pretrained checkpoint, but "pretrained-ckpt"',
  );
  expectIssues(
    () => resolve({ ...BASE, backend: "cpu", "pjrt-plugin": "/x.so" }),
    '"pjrt-plugin" ("/x.so") is set, but "backend" ("cpu") does not use PJRT',
  );
  expectIssues(
    () => resolve({ ...BASE, "random-crop": "src", "image-size": 4, "patch-size": 4 }),
    'needs "image-size" (4) >= 5',
  );
  // The same values are fine once the combination is possible.
  assertEquals(resolve({ ...BASE, dim: 768 }, ["--heads", "16"]).heads, 16);
});

Deno.test("bad command-line flags are reported with a suggestion", () => {
  expectIssues(
    () =>
      resolve(BASE, [
        "--learning_rate",
        "0.1",
        "--layers",
        "x",
        "--dropout=0.5.1",
        "--no-dim",
        "--no-layerscale=1",
        "--grad-ckpt=yes",
        "--posemb",
        "sin",
        "--pretrained-ckpt=",
        "stray",
      ]),
    'command line: unknown flag "--learning_rate" (did you mean "--learning-rate"?)',
    'command line: --layers must be an integer, got "x"',
    'command line: --dropout must be a number, got "0.5.1"',
    "command line: --no-dim: only boolean and optional options have a --no- form",
    "command line: --no-layerscale takes no value",
    'command line: --grad-ckpt must be true or false, got "yes"',
    'command line: --posemb must be one of "learnable", "sincos2d", got "sin"',
    "command line: --pretrained-ckpt must not be empty (use --no-pretrained-ckpt to unset it)",
    'command line: unexpected argument "stray"',
  );
  expectIssues(() => resolve(BASE, ["--layers"]), "command line: --layers needs a value");
  expectIssues(() => resolve(BASE, ["--layers", "--dim", "64"]), "--layers needs a value");
  // A negative number is a value, and is then checked against the range.
  expectIssues(() => resolve(BASE, ["--labels", "-1"]), "--labels must be >= 1, got -1");
});

Deno.test("config files: missing, not JSON, and the name taken from the file", () => {
  const dir = Deno.makeTempDirSync();
  try {
    expectIssues(() => loadConfig(`${dir}/nope.json`, [], NO_ENV), `${dir}/nope.json: cannot read`);
    Deno.writeTextFileSync(`${dir}/bad.json`, '{"labels": 10,}');
    expectIssues(
      () => loadConfig(`${dir}/bad.json`, [], NO_ENV),
      `${dir}/bad.json: not valid JSON`,
    );
    Deno.writeTextFileSync(`${dir}/my-run.json`, '{"labels": 10, "label_smoothing": 0}');
    expectIssues(
      () => loadConfig(`${dir}/my-run.json`, [], NO_ENV),
      `${dir}/my-run.json: unknown key "label_smoothing" (did you mean "label-smoothing"?)`,
    );
    Deno.writeTextFileSync(
      `${dir}/my-run.json`,
      '{"labels": 10, "label-mapping": "$CONFIG_DIR/m.json", "pretrained-ckpt": "p"}',
    );
    const config = loadConfig(`${dir}/my-run.json`, ["--layers", "2"], NO_ENV);
    assertEquals(config.name, "my-run");
    assertEquals(config.layers, 2);
    assertEquals(config["label-mapping"], `${dir}/m.json`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("parseCommandLine finds the config path among the flags", () => {
  assertEquals(parseCommandLine([]), { configPath: undefined, flags: [], help: false });
  assertEquals(parseCommandLine(["--layerscale", "c.json", "--labels", "10", "--help"]), {
    configPath: "c.json",
    flags: ["--layerscale", "--labels", "10"],
    help: true,
  });
  assertEquals(parseCommandLine(["--labels", "-1", "-h"]).configPath, undefined);
  assertEquals(parseCommandLine(["--layerscale", "false", "c.json"]).configPath, "c.json");
  assertThrows(() => parseCommandLine(["a.json", "b.json"]), 'got 2: "a.json", "b.json"');
});

Deno.test("configHelp lists every key with its default", () => {
  const help = configHelp();
  for (const key of CONFIG_KEYS) assert(help.includes(`  --${key}`), key);
  assert(help.includes("--layerscale, --no-layerscale"));
  assert(help.includes("--random-crop rrc|src|none"));
  assert(help.includes("--test-crop-ratio NUM ((0, 1])"));
  assert(help.includes("(default: 0.875)"));
});

Deno.test("configToJson writes a config that loads back to the same values", () => {
  const config = resolve(
    { ...BASE, "valid-dataset-shards": "pipe:cat $${X} $Y" },
    ["--layerscale", "--output-dir", "$out"],
    { Y: "/y.tar" },
    () => 0.5,
  );
  assertEquals(config["valid-dataset-shards"], "pipe:cat ${X} /y.tar");
  const text = configToJson(config);
  // File strings are saved as written (unexpanded), so they load back in the same environment.
  assertEquals(JSON.parse(text)["valid-dataset-shards"], "pipe:cat $${X} $Y");
  assertEquals(resolve(JSON.parse(text), [], { Y: "/y.tar" }, () => 0), config);
  assertEquals(JSON.parse(text)["init-seed"], 500000);
});

Deno.test("configToJson: $HF_TOKEN stays a reference; a token from the shell is redacted", () => {
  const token = "hf_0123456789abcdefghijklmnop";
  const fromFile = resolve(
    { ...BASE, "train-dataset-shards": "pipe:curl -H 'Authorization: Bearer $HF_TOKEN' u" },
    [],
    { HF_TOKEN: token },
  );
  assert(String(fromFile["train-dataset-shards"]).includes(token)); // expanded for use
  const saved = JSON.parse(configToJson(fromFile));
  assertEquals(saved["train-dataset-shards"], "pipe:curl -H 'Authorization: Bearer $HF_TOKEN' u");
  // The shell expanded it into a flag: saved as a reference when the variable is known...
  const flag = ["--valid-dataset-shards", `pipe:curl -H 'Authorization: Bearer ${token}' v`];
  Deno.env.set("HF_TOKEN", token);
  try {
    const text = configToJson(resolve(BASE, flag));
    assert(!text.includes(token), text);
    assertEquals(
      JSON.parse(text)["valid-dataset-shards"],
      "pipe:curl -H 'Authorization: Bearer ${HF_TOKEN}' v",
    );
    // ... which loads back to the token.
    assertEquals(
      resolve(JSON.parse(text), [], { HF_TOKEN: token })["valid-dataset-shards"],
      `pipe:curl -H 'Authorization: Bearer ${token}' v`,
    );
  } finally {
    Deno.env.delete("HF_TOKEN");
  }
  // ... and as *** when it is not.
  const text = configToJson(resolve(BASE, flag));
  assertEquals(
    JSON.parse(text)["valid-dataset-shards"],
    "pipe:curl -H 'Authorization: Bearer ***' v",
  );
});

Deno.test("every config problem is reported at once: bad values, unknown keys, combinations, env", () => {
  let e: ConfigError | undefined;
  try {
    resolve(
      {
        ...BASE,
        "train-dataset-shards": "$NOT_SET/train-{0..9}.tar",
        "warmup-steps": 3127,
        "learning_rate": 0.1,
        "dropout": "high",
      },
      ["--training-steps", "300", "--lr", "1e-3"],
    );
  } catch (caught) {
    e = caught as ConfigError;
  }
  assert(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
  const all = e.issues.join("\n");
  for (
    const part of [
      'key "train-dataset-shards": environment variable NOT_SET is not set',
      '"warmup-steps" (3127) must be at most "training-steps" (300, from --training-steps 300)',
      'unknown key "learning_rate" (did you mean "learning-rate"?)',
      'key "dropout"',
      'unknown flag "--lr" (did you mean "--learning-rate"?)',
    ]
  ) assert(all.includes(part), `missing: ${part}\n${all}`);
  assertEquals(e.issues.length, 5, all);
});
