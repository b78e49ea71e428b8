/**
 * The README's released-checkpoint command on a timm-made DeiT-III checkpoint:
 * `deno task eval CKPT --config configs/deit3-s16-224-in1k-400ep.json --valid-dataset-shards S`
 * with no `GCS_*` variable set (the recipe's output and training paths use them; eval does not).
 * The checkpoint is timm's `deit3_small_patch16_224` with random weights (the peer venv),
 * converted; the loss is compared with timm's own on the same images, through timm's own eval
 * transform. Skipped, with a message, without the peer venv.
 */
import { convertCheckpoint } from "../../lib/checkpoint/convert.ts";
import { assert, assertEquals } from "../assert.ts";
import { PEER_PYTHON, timmCheck, warnNoPeer } from "../checkpoint/timm_peer.ts";
import { buildShard, png } from "../data/helpers.ts";

const TASK = new URL("../../tasks/eval.ts", import.meta.url).pathname;
const CONFIG = new URL("../../configs/deit3-s16-224-in1k-400ep.json", import.meta.url).pathname;
warnNoPeer("eval of a timm DeiT-III checkpoint");

/** The eval task in a child process whose environment has no GCS_* variable. */
async function evalTask(args: string[]) {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const k of ["PATH", "HOME", "DENO_DIR", "TMPDIR", "LD_LIBRARY_PATH"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, ...args],
    env,
    clearEnv: true,
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test({
  name: "eval: the README's released-checkpoint command on a timm deit3_small, no GCS_* set",
  ignore: !PEER_PYTHON,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "deit3-eval-timm-" });
    try {
      await timmCheck("make", "deit3_small_patch16_224", `${dir}/timm.pth`);
      await convertCheckpoint({ input: `${dir}/timm.pth`, out: `${dir}/deit3-s16.msgpack` });
      // Four images of other sizes than 224 (resized and cropped by both pipelines).
      const sizes = [[240, 260], [300, 224], [224, 224], [256, 320]];
      const samples = [];
      await Deno.mkdir(`${dir}/images`);
      for (let i = 0; i < sizes.length; i++) {
        const [w, h] = sizes[i];
        const image = await png(w, h, 7 * i + 1);
        const key = `img${i}`, label = String((i * 271) % 1000);
        samples.push({ key, parts: { png: image, cls: label } });
        await Deno.writeFile(`${dir}/images/${key}.png`, image);
        await Deno.writeTextFile(`${dir}/images/${key}.cls`, label);
      }
      await Deno.writeFile(`${dir}/val-00.tar`, await buildShard(samples));
      const timm = JSON.parse(
        await timmCheck("eval", "deit3_small_patch16_224", `${dir}/timm.pth`, `${dir}/images`),
      );
      assertEquals(timm.samples, 4);

      // The README's command; a CPU-sized batch and one loader worker are the only additions.
      const readme = [
        `${dir}/deit3-s16.msgpack`,
        "--config",
        CONFIG,
        "--valid-dataset-shards",
        `${dir}/val-00.tar`,
      ];
      const small = ["--valid-batch-size", "4", "--valid-loader-workers", "1"];
      const losses: Record<string, number> = {};
      for (const gelu of ["tanh", "exact"]) {
        const r = await evalTask([
          ...readme,
          ...small,
          ...(gelu === "exact" ? ["--gelu", "exact"] : []),
        ]);
        assertEquals(r.code, 0, r.stdout + r.stderr);
        const json = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
        assertEquals(json.samples, 4);
        assertEquals(json.acc1, timm.acc1, `top-1, --gelu ${gelu}`);
        losses[gelu] = json.loss;
      }
      const dExact = Math.abs(losses.exact - timm.loss);
      const dTanh = Math.abs(losses.tanh - timm.loss);
      console.log(
        `BCE loss: timm ${timm.loss}, ours --gelu exact ${losses.exact} (${
          dExact.toExponential(1)
        }), ` +
          `default tanh ${losses.tanh} (${dTanh.toExponential(1)})`,
      );
      assert(dExact <= 1e-6, `--gelu exact: loss ${losses.exact} vs timm's ${timm.loss}`);
      assert(dTanh <= 1e-4, `tanh GELU: loss ${losses.tanh} vs timm's ${timm.loss}`);

      // Without --valid-dataset-shards the recipe's own path needs $GCS_DATASET_DIR: said so.
      const r = await evalTask([`${dir}/deit3-s16.msgpack`, "--config", CONFIG]);
      assertEquals(r.code, 2, r.stdout + r.stderr);
      assert(r.stderr.includes("environment variable GCS_DATASET_DIR is not set"), r.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
