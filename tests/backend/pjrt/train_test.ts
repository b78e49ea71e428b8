/**
 * `deno task train --backend pjrt` as two processes on the fake plugin: each process's client
 * gets `node_id` and `num_nodes` with the job's key-value store (the fake, like the CUDA plugin,
 * builds its topology from them and refuses num_nodes > 1 without the callbacks), the plugin's
 * rendezvous goes through process 0's coordinator, and both see one job of 2 replicas. The
 * fake cannot run a ViT: the run then stops once the train step is compiled (the fake's programs
 * have one output), never at the old "multi-host training needs --backend pjrt".
 */
import { assert, assertEquals } from "../../assert.ts";
import { buildFakePlugins } from "../../ffi/fake_plugin/build.ts";
import { makeDataset, tinyConfig } from "../../train/e2e_helpers.ts";

const plugins = await buildFakePlugins({ full: [] });
const TRAIN = new URL("../../../tasks/train.ts", import.meta.url).pathname;

Deno.test({
  name: "pjrt train: two processes on the fake plugin form one job through node_id/num_nodes",
  ignore: plugins === null,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "deit3-pjrt-train-" });
    try {
      const data = await makeDataset(dir);
      await Deno.writeTextFile(
        `${dir}/cfg.json`,
        JSON.stringify({ ...tinyConfig(dir, data, 2), "train-batch-size": 4 }),
      );
      const port = freePort();
      const outs = await Promise.all([0, 1].map(async (i) => {
        const r = await new Deno.Command(Deno.execPath(), {
          args: [
            ...["run", "-A", TRAIN, `${dir}/cfg.json`, "--backend", "pjrt"],
            ...["--pjrt-plugin", plugins!.full, "--num-processes", "2", "--process-id", `${i}`],
            ...["--coordinator", `127.0.0.1:${port}`],
          ],
          stdout: "piped",
          stderr: "piped",
          env: { WANDB_MODE: "disabled" },
        }).output();
        const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
        return { code: r.code, text };
      }));
      outs.forEach(({ code, text }, i) => {
        assert(code !== 0, `process ${i} cannot train on the fake: ${text}`);
        assert(
          text.includes(`PJRT platform fake (fake 1.0), process ${i}: 1 addressable of 2 devices`),
          `process ${i}: ${text}`,
        );
        assert(text.includes("2 processes x 1 device"), `process ${i}: ${text}`);
        // The fake's "programs" have one output: the train step's compile is where it ends.
        assert(text.includes("the compiled program has 1 outputs, the graph"), `${i}: ${text}`);
        assert(!text.includes("multi-host training needs"), text);
      });
      assertEquals(outs.length, 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
