/**
 * What `deno task train` prints when its output is not a terminal (a pipe, nohup, a cluster's
 * log), and what it writes: compile and first-step lines, no `error` lines, the dashboard hint
 * naming the run's own folder, metrics.html without validation, no accuracy without an
 * evaluation, singular "1 step", and --devices 3 with a validation batch that does not split.
 */
import { assert, assertEquals } from "../assert.ts";
import { makeDataset, tinyConfig, withDir } from "../train/e2e_helpers.ts";

const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;

async function runTrain(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, ...args],
    env: { NO_COLOR: "1", WANDB_MODE: "disabled" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test("train in a pipe, no validation: progress lines, metrics.html, no made-up accuracy", async () => {
  await withDir("deit3-train-out-", async (dir) => {
    const data = await makeDataset(dir);
    const cfg = {
      ...tinyConfig(dir, data, 1),
      "valid-dataset-shards": null,
      "warmup-steps": 0,
      "log-interval": 1,
      "backend": "auto",
    };
    await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(cfg));
    const { code, text } = await runTrain([`${dir}/c.json`]);
    assertEquals(code, 0, text);
    const lines = text.split("\n");
    assertEquals(lines.filter((l) => /^error/i.test(l)), [], "no error lines");
    assert(lines.includes("compiling the training step on cpu..."), text);
    assert(lines.some((l) => /^compiled the training step in \d+\.\d s$/.test(l)), text);
    assert(lines.some((l) => l.startsWith("step 1/1 | loss ")), `the first step: ${text}`);
    assert(text.includes(`(live: deno task dashboard ${dir}/out)`), text);
    assert(text.includes("1 step of batch 8"), text);
    const done = lines.find((l) => l.startsWith("done: "))!;
    assert(/^done: step 1, no evaluation, \d+\.\d s$/.test(done), done);
    const html = await Deno.readTextFile(`${dir}/out/metrics.html`);
    assert(html.includes("<svg") && html.includes("no evaluation yet"), html.slice(0, 300));
  });
});

Deno.test("train --devices 3: validation batches are padded, every sample counted once", async () => {
  await withDir("deit3-train-dev3-", async (dir) => {
    const data = await makeDataset(dir); // 20 validation images
    const cfg = {
      ...tinyConfig(dir, data, 2),
      "train-batch-size": 12,
      "valid-batch-size": 8,
      "mixup": 0,
      "cutmix": 0,
      "warmup-steps": 0,
    };
    await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(cfg));
    const { code, text } = await runTrain([`${dir}/c.json`, "--devices", "3"]);
    assertEquals(code, 0, text);
    assert(
      text.includes(
        "validation: batches of 8 images are padded to 9 to split over 3 devices; the 1 padding " +
          "row(s) are not counted",
      ),
      text,
    );
    assertEquals(text.split("\n").filter((l) => l.startsWith("validation: ")).length, 1, text);
    assert(/eval at step 2: .* on 20 images/.test(text), text);
  });
});
