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
  "check_data.ts": ["usage: deno task check-data SPEC", "--transform", "--limit"],
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
  const tasks = [...Deno.readDirSync(`${ROOT}tasks`)].map((e) => e.name).filter((n) =>
    n.endsWith(".ts")
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
