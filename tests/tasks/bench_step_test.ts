/**
 * `deno task bench --model ...`, the train-step cells scripts/device/device_check.sh runs on the GPU
 * machine, at toy sizes on the CPU: one JSON line per cell, the peers' model from the same
 * table, and a dtype the backend cannot honour refused in its cell. Plus compare_losses.ts.
 */
import { assert, assertEquals } from "../assert.ts";

const BENCH = new URL("../../tasks/bench.ts", import.meta.url).pathname;
const COMPARE = new URL("../../scripts/checks/compare_losses.ts", import.meta.url).pathname;

async function run(script: string, args: string[]) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout).trim() };
}

Deno.test("bench --model: one JSON line per model x dtype, bf16 refused off pjrt", async () => {
  const r = await run(BENCH, [
    ...["--model", "tiny", "--batch", "2", "--steps", "1", "--dtype", "f32,bf16", "--json"],
  ]);
  assertEquals(r.code, 1); // the bf16 cell failed
  const [f32, bf16] = r.out.split("\n").map((l) => JSON.parse(l));
  assertEquals([f32.model, f32.dtype, f32.batch, f32.backend], ["tiny", "f32", 2, "cpu"]);
  assertEquals(f32.matmul_precision, "default");
  assert(f32.img_per_s > 0 && f32.compile_s >= 0, JSON.stringify(f32));
  assertEquals(bf16.error, "--dtype bf16: the cpu backend computes in f32; use --backend pjrt");
});

Deno.test("bench --model: the peers' model from the same table; bad flags exit 2", async () => {
  const flags = await run(BENCH, ["--model", "b16", "--timm-flags"]);
  assertEquals(
    flags.out,
    "--layers 12 --dim 768 --heads 12 --patch 16 --image 224 --labels 1000 --droppath 0.1 " +
      "--layerscale",
  );
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    assertEquals((await run(BENCH, ["--model", "s16", "--jax-config", file])).code, 0);
    const cfg = JSON.parse(await Deno.readTextFile(file));
    assertEquals([cfg.layers, cfg.dim, cfg.heads, cfg["patch-size"]], [12, 384, 6, 16]);
    assertEquals([cfg.optimizer, cfg.criterion, cfg.mixup], ["adamw", "ce", 0]);
  } finally {
    await Deno.remove(file);
  }
  assertEquals((await run(BENCH, ["--model", "l16"])).code, 2);
  assertEquals((await run(BENCH, ["--model", "s16", "--batch", "0"])).code, 2);
  assertEquals((await run(BENCH, ["--model", "s16", "--matmul-precision", "tf32"])).code, 2);
});

Deno.test("compare_losses: same steps within the tolerance pass, else exit 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = (name: string, losses: number[]) =>
      Deno.mkdir(`${dir}/${name}`).then(() =>
        Deno.writeTextFile(
          `${dir}/${name}/metrics.jsonl`,
          losses.map((l, i) => JSON.stringify({ step: 10 * (i + 1), "train/loss": l })).join("\n"),
        )
      );
    await write("a", [2.3, 1.5, 0.9]);
    await write("b", [2.3, 1.52, 0.9]);
    await write("c", [2.3, 1.7, 0.9]);
    const ok = await run(COMPARE, [`${dir}/a`, `${dir}/b`]);
    assertEquals(ok.code, 0);
    assertEquals(JSON.parse(ok.out).worst_at_step, 20);
    const bad = await run(COMPARE, [`${dir}/a`, `${dir}/c`]);
    assertEquals(bad.code, 1);
    assertEquals(JSON.parse(bad.out).pass, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
