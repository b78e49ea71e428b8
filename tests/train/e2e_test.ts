/**
 * End to end through real shards, the loader, the compiled step, evaluation and checkpoints:
 * a few-step run, resume equivalence (bitwise on CPU), SIGTERM then resume, NaN handling.
 */
import { train } from "../../lib/train/loop.ts";
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { config, makeDataset, tinyConfig, withDir } from "./e2e_helpers.ts";

Deno.test("train: a few steps end to end write checkpoints, metrics and a plot", async () => {
  await withDir("deit3-e2e-", async (dir) => {
    const data = await makeDataset(dir);
    const r = await train(config(tinyConfig(dir, data)));
    assertEquals(r.step, 6);
    assert(
      r.lastEval && r.lastEval["val/samples"] === 20,
      `eval counted ${r.lastEval?.["val/samples"]} samples`,
    );
    for (
      const f of [
        "tiny-last.msgpack",
        "tiny-best.msgpack",
        "tiny-state.msgpack",
        "metrics.jsonl",
        "metrics.html",
        "config.json",
      ]
    ) {
      assert((await Deno.stat(`${dir}/out/${f}`)).size > 0, f);
    }
    const events = (await Deno.readTextFile(`${dir}/out/metrics.jsonl`)).trim().split("\n").map((
      l,
    ) => JSON.parse(l));
    assert(
      events.some((e) => e.step === 2 && typeof e["train/loss"] === "number"),
      "train log event",
    );
    assert(events.some((e) => e.step === 6 && typeof e["val/acc1"] === "number"), "eval event");
    const plot = await Deno.readTextFile(`${dir}/out/metrics.html`);
    assert(plot.includes(">cross-entropy loss</text>"), "the loss axis named by the criterion");
    const state = await loadTrainingState(`${dir}/out/tiny-state.msgpack`);
    assertEquals(state.step, 6);
  });
});

Deno.test("train: stop at step 3 + resume gives bitwise the same parameters as 6 straight steps", async () => {
  await withDir("deit3-e2e-", async (dir) => {
    const data = await makeDataset(dir);
    const straight = tinyConfig(`${dir}/a`, data, 6);
    await Deno.mkdir(`${dir}/a`);
    await train(config(straight));
    const split = tinyConfig(`${dir}/b`, data, 6);
    split["eval-interval"] = 100; // so that step 3 is not an eval step
    straight["eval-interval"] = 100;
    await Deno.mkdir(`${dir}/b`);
    const first = await train(config(split), { stopAtStep: 3 });
    assertEquals(first.step, 3);
    const second = await train(config(split));
    assertEquals(second.step, 6);
    const a = await loadTrainingState(`${dir}/a/out/tiny-state.msgpack`);
    const b = await loadTrainingState(`${dir}/b/out/tiny-state.msgpack`);
    assertEquals(b.step, 6);
    assertEquals(JSON.stringify(flat(b.params)), JSON.stringify(flat(a.params)));
    assertEquals(JSON.stringify(flat(b.optState)), JSON.stringify(flat(a.optState)));
  });
});

Deno.test("train: a NaN loss stops with the step number and keeps the last checkpoint", async () => {
  await withDir("deit3-e2e-", async (dir) => {
    const data = await makeDataset(dir);
    const cfg = tinyConfig(dir, data, 8);
    // Step 1 trains normally (lr ~1e-6) and is saved; the warmup then blows the loss up.
    cfg["learning-rate"] = 1e30;
    cfg["warmup-steps"] = 4;
    cfg["clip-grad"] = 0;
    cfg["eval-interval"] = 1;
    await assertRejects(
      () => train(config(cfg)),
      /(loss is (NaN|Infinity|-Infinity) at step \d+)|(is not finite after step \d+)/,
    );
    const state = await loadTrainingState(`${dir}/out/tiny-state.msgpack`);
    assert(state.step >= 1, `saved step ${state.step}`);
    assert(flat(state.params).every(Number.isFinite), "saved params are finite");
    assert(state.step <= 2, `a diverged step was saved: ${state.step}`);
  });
});

Deno.test("train task: SIGTERM saves the state and exits with 75; the rerun resumes", async () => {
  await withDir("deit3-e2e-", async (dir) => {
    const data = await makeDataset(dir);
    const cfg = tinyConfig(dir, data, 400);
    cfg["eval-interval"] = 1000;
    cfg["log-interval"] = 1;
    const path = `${dir}/cfg.json`;
    await Deno.writeTextFile(path, JSON.stringify(cfg));
    const task = new URL("../../tasks/train.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", task, path],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!/step 5: /.test(out)) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const status = await child.status;
    await child.stderr.cancel();
    assertEquals(status.code, 75, out);
    assert(/interrupted at step \d+; state saved/.test(out), out);
    const saved = await loadTrainingState(`${dir}/out/tiny-state.msgpack`);
    assert(saved.step >= 5 && saved.step < 400, `saved at step ${saved.step}`);
    // The rerun resumes there and finishes (a deliberate change of training-steps).
    cfg["training-steps"] = saved.step + 2;
    await Deno.writeTextFile(path, JSON.stringify(cfg));
    const rerun = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", task, path, "--accept-config-changes"],
    }).output();
    const text = new TextDecoder().decode(rerun.stdout);
    assertEquals(rerun.code, 0, text + new TextDecoder().decode(rerun.stderr));
    assert(text.includes(`resumed from`) && text.includes(`at step ${saved.step}`), text);
    assert(text.includes(`training-steps: 400 -> ${saved.step + 2}`), text);
    assertEquals((await loadTrainingState(`${dir}/out/tiny-state.msgpack`)).step, saved.step + 2);
  });
});

function flat(tree: unknown): number[] {
  const out: number[] = [];
  const walk = (x: any) => {
    if (x && typeof x === "object" && "data" in x && "shape" in x) {
      out.push(...Array.from(x.data as ArrayLike<number>));
    } else if (x && typeof x === "object") { for (const k of Object.keys(x).sort()) walk(x[k]); }
  };
  walk(tree);
  return out;
}
