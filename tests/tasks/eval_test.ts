/** `deno task eval` on a checkpoint that `train` wrote: one result line, one JSON object. */
import { assert, assertEquals } from "../assert.ts";
import { resolveConfig } from "../../lib/config/mod.ts";
import { train } from "../../lib/train/loop.ts";
import { makeDataset, tinyConfig } from "../train/e2e_helpers.ts";

const TASK = new URL("../../tasks/eval.ts", import.meta.url).pathname;

Deno.test("eval task: evaluates a trained checkpoint and agrees with the training run's eval", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-eval-" });
  try {
    const data = await makeDataset(dir);
    const cfg = { ...tinyConfig(dir, data), "valid-batch-size": 64 };
    const r = await train(resolveConfig(cfg, "<test>"));
    await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", TASK, `${dir}/out/tiny-last.msgpack`, "--config", `${dir}/cfg.json`],
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, stdout + new TextDecoder().decode(out.stderr));
    const json = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assertEquals(json.samples, 20);
    assertEquals(json.acc1, r.lastEval!["val/acc1"]);
    assert(!/eval \d+ images/.test(stdout), "no progress lines in a pipe for a short eval");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
