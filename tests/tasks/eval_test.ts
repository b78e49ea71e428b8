/** `deno task eval` on a checkpoint that `train` wrote: one result line, one JSON object. */
import { assert, assertEquals } from "../assert.ts";
import { resolveConfig } from "../../lib/config/mod.ts";
import { train } from "../../lib/train/loop.ts";
import { main } from "../../tasks/eval.ts";
import { makeDataset, tinyConfig } from "../train/e2e_helpers.ts";

const TASK = new URL("../../tasks/eval.ts", import.meta.url).pathname;

/** One trained tiny run shared by the tests: {dir}/out holds its checkpoints and config.json. */
let trained: Promise<{ dir: string; cfg: Record<string, unknown>; acc1: number }> | undefined;
function trainedRun() {
  trained ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "deit3-eval-" });
    const data = await makeDataset(dir);
    const cfg = { ...tinyConfig(dir, data), "valid-batch-size": 64 };
    const r = await train(resolveConfig(cfg, "<test>"));
    await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
    return { dir, cfg, acc1: r.lastEval!["val/acc1"] as number };
  })();
  return trained;
}

/** Runs eval's main in this process, returning its exit code and what it printed. */
async function runEval(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await main(args);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("eval task: evaluates a trained checkpoint and agrees with the training run's eval", async () => {
  const { dir, acc1 } = await trainedRun();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, `${dir}/out/tiny-last.msgpack`, "--config", `${dir}/cfg.json`],
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, stdout + new TextDecoder().decode(out.stderr));
  const json = JSON.parse(stdout.trim().split("\n").at(-1)!);
  assertEquals(json.samples, 20);
  assertEquals(json.acc1, acc1);
  assert(!/eval \d+ images/.test(stdout), "no progress lines in a pipe for a short eval");
});

Deno.test("eval task: without --config it reads the config.json beside the checkpoint", async () => {
  const { dir, acc1 } = await trainedRun();
  const r = await runEval([`${dir}/out/tiny-last.msgpack`]);
  assertEquals(r.code, 0, r.out + r.err);
  assert(r.out.includes(`config: ${dir}/out/config.json (beside the checkpoint)`), r.out);
  assertEquals(JSON.parse(r.out.trim().split("\n").at(-1)!).acc1, acc1);
  // A training state evaluates too, with the same config.
  const s = await runEval([`${dir}/out/tiny-state.msgpack`]);
  assertEquals(s.code, 0, s.out + s.err);
});

Deno.test("eval task: no config beside the checkpoint and no --config is refused", async () => {
  const { dir } = await trainedRun();
  const lone = `${dir}/lone`;
  await Deno.mkdir(lone, { recursive: true });
  await Deno.copyFile(`${dir}/out/tiny-last.msgpack`, `${lone}/tiny-last.msgpack`);
  const r = await runEval([`${lone}/tiny-last.msgpack`]);
  assertEquals(r.code, 2);
  assert(r.err.includes("no config.json beside") && r.err.includes("--config"), r.err);
});

Deno.test("eval task: a checkpoint that does not exist is named, not a missing config.json", async () => {
  for (const args of [["nothere.msgpack"], ["nothere.msgpack", "--config", "configs/x.json"]]) {
    const r = await runEval(args);
    assertEquals(r.code, 2, r.err);
    assertEquals(r.err, "eval: checkpoint nothere.msgpack: no such file");
  }
});

Deno.test("eval task: a checkpoint that does not fit the model is refused, naming the key", async () => {
  const { dir } = await trainedRun();
  const ckpt = `${dir}/out/tiny-last.msgpack`;
  // The trained model has 2 heads of 8: --heads 4 changes the attention kernels' shapes.
  const heads = await runEval([ckpt, "--heads", "4"]);
  assertEquals(heads.code, 1, heads.out);
  assert(heads.err.includes("model/layer_0/attn/"), heads.err);
  assert(
    /shape \[(16,)?2,8\] in the checkpoint, the config expects \[(16,)?4,4\]/.test(heads.err),
    heads.err,
  );
  // An extra layer is missing in the checkpoint; no layerscale leaves scale1/scale2 over.
  const layers = await runEval([ckpt, "--layers", "2"]);
  assertEquals(layers.code, 1);
  assert(layers.err.includes("model/layer_1") && layers.err.includes("missing"), layers.err);
  const ls = await runEval([ckpt, "--no-layerscale"]);
  assertEquals(ls.code, 1);
  assert(/model\/layer_0\/scale[12]/.test(ls.err) && ls.err.includes("not a parameter"), ls.err);
});

Deno.test("eval task: a .pth or safetensors file is named as such, with the convert command", async () => {
  const { dir } = await trainedRun();
  const pth = `${dir}/model.pth`;
  await Deno.writeFile(pth, new Uint8Array([0x50, 0x4b, 3, 4, 0, 0, 0, 0]));
  const r = await runEval([pth, "--config", `${dir}/cfg.json`]);
  assertEquals(r.code, 1);
  assert(r.err.includes("a PyTorch .pth file") && r.err.includes("deno task convert"), r.err);
});

Deno.test("eval task: cleanup", async () => {
  if (trained) await Deno.remove((await trained).dir, { recursive: true });
});
