/** Every task's --help is complete: usage, every option it takes, exit status 0. */
import { assert, assertEquals } from "../assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

const EXPECTED: Record<string, string[]> = {
  "train.ts": ["usage: deno task train", "--learning-rate", "--project", "--name"],
  "eval.ts": ["usage: deno task eval CKPT", "--config", "--valid-dataset-shards", "Example:"],
  "doctor.ts": ["usage: deno task doctor", "--backend", "--reference", "--tolerance", "--json"],
  "convert.ts": ["usage: deno task convert IN", "--to", "--out", "--exclude-heads", "--num-heads"],
  "export_hlo.ts": ["usage: deno task export-hlo", "--batch", "--devices", "--out", "terminal"],
  "bench.ts": ["usage: deno task bench", "--backend", "--only", "--json", "train", "webgpu"],
  "prepare_imagenet.ts": ["--variant", "--dest", "--dry-run", "HF_TOKEN"],
  "check_data.ts": [
    "usage: deno task check-data SPEC",
    "--transform",
    "--limit",
    "same loader as training",
    "Examples:",
  ],
  "dashboard.ts": ["usage: deno task dashboard", "--port", "RUNS_DIR"],
  "wandb_sync.ts": ["usage: deno task wandb-sync", "WANDB_MODE=offline", "WANDB_API_KEY"],
};

async function help(task: string): Promise<{ code: number; text: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}tasks/${task}`, "--help"],
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

Deno.test("every task has a complete --help", async () => {
  // cli.ts is the skeleton the tasks share, not a task.
  const tasks = [...Deno.readDirSync(`${ROOT}tasks`)].map((e) => e.name).filter((n) =>
    n.endsWith(".ts") && n !== "cli.ts"
  ).sort();
  assertEquals(tasks, Object.keys(EXPECTED).sort(), "a new task needs its --help checked here");
  for (const task of tasks) {
    const { code, text } = await help(task);
    assertEquals(code, 0, `${task} --help: ${text}`);
    assert(text.trim().split("\n").length >= 5, `${task} --help is one line:\n${text}`);
    for (const word of EXPECTED[task]) assert(text.includes(word), `${task} --help lacks ${word}`);
  }
});

Deno.test("export-hlo without --out on a terminal writes a file and says where", async () => {
  const script = "/usr/bin/script";
  try {
    Deno.statSync(script);
  } catch {
    console.log("export-hlo terminal test skipped: no /usr/bin/script (util-linux) for a pty");
    return;
  }
  const dir = await Deno.makeTempDir();
  try {
    const cmd = `${Deno.execPath()} run -A ${ROOT}tasks/export_hlo.ts ` +
      `${ROOT}configs/mnist-vit-tiny.json --batch 8`;
    const out = await new Deno.Command(script, {
      args: ["-qec", cmd, "/dev/null"],
      cwd: dir,
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, text);
    assert(text.includes("export-hlo: wrote mnist-vit-tiny-train-step.mlir ("), text);
    assert(text.length < 2000, "the program text itself did not go to the terminal");
    const mlir = await Deno.readTextFile(`${dir}/mnist-vit-tiny-train-step.mlir`);
    assert(mlir.includes("func.func") || mlir.includes('"func.func"'), mlir.slice(0, 200));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs a task with `args`, returning its exit code and stdout + stderr. */
async function runTask(task: string, args: string[], cwd?: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}tasks/${task}`, ...args],
    env: { NO_COLOR: "1" },
    cwd,
  }).output();
  return {
    code: out.code,
    text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

/** The "(default: X)" of `--key` in a --help text. */
function shownDefault(text: string, key: string): string | undefined {
  const block = text.split(`\n  --${key} `)[1]?.split("\n  --")[0] ?? "";
  return /\(default: ([^)]*)\)\s*$/.exec(block.replaceAll(/\s+/g, " "))?.[1];
}

Deno.test("train --help: the defaults of the config it would run, one usage line, --no- forms", async () => {
  const { code, text } = await runTask("train.ts", ["--help"]);
  assertEquals(code, 0, text);
  assertEquals(text.match(/^usage:/gim)?.length, 1, text.slice(0, 400));
  // The embedded MNIST config's values, not the schema's (2048, 768, 200,000).
  const mnist = JSON.parse(await Deno.readTextFile(`${ROOT}configs/mnist-vit-tiny.json`));
  for (const key of ["train-batch-size", "dim", "training-steps", "eval-interval"]) {
    assertEquals(shownDefault(text, key), String(mnist[key]), key);
  }
  assertEquals(shownDefault(text, "valid-dataset-shards"), mnist["valid-dataset-shards"]);
  assert(text.includes("--valid-dataset-shards STR, --no-valid-dataset-shards"), text);
  assert(text.includes("(0: only at the end)"), "--eval-interval 0 still evaluates at the end");
  // A named config: its values.
  const s16 = await runTask("train.ts", ["configs/deit3-s16-224-in1k-400ep.json", "--help"], ROOT);
  assertEquals(shownDefault(s16.text, "dim"), "384");
});
