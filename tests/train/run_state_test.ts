/**
 * Run state through the real loop: what a resume restores and refuses, what it cleans up, and
 * the checks made before anything is written.
 */
import { train } from "../../lib/train/loop.ts";
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { config, makeDataset, tinyConfig, withDir } from "./e2e_helpers.ts";

const data = await (async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-runstate-data-" });
  return { dir, ...(await makeDataset(dir)) };
})();
globalThis.addEventListener("unload", () => Deno.removeSync(data.dir, { recursive: true }));

async function listing(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) {
      const bytes = await Deno.readFile(`${dir}/${e.name}`);
      out[e.name] = `${bytes.length}:${Array.from(bytes.subarray(0, 64)).join(",")}`;
    }
  }
  return out;
}

function records(text: string): Record<string, unknown>[] {
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("run state: a corrupt state in a folder named exp404 is refused and nothing is written", async () => {
  await withDir("deit3-runstate-", async (dir) => {
    const cfg = tinyConfig(`${dir}/exp404`, data, 6);
    const out = cfg["output-dir"] as string;
    await Deno.mkdir(out, { recursive: true });
    await Deno.writeFile(`${out}/tiny-state.msgpack`, new TextEncoder().encode("not msgpack"));
    await Deno.writeFile(`${out}/tiny-best.msgpack`, new Uint8Array([1, 2, 3]));
    await Deno.writeFile(`${out}/tiny-last.msgpack`, new Uint8Array([4, 5, 6]));
    const before = await listing(out);
    await assertRejects(
      () => train(config(cfg)),
      new RegExp(`cannot resume: ${out}/tiny-state.msgpack: .*Nothing was changed`),
    );
    assertEquals(await listing(out), before);
  });
});

Deno.test("run state: changed training settings are refused, each listed; the flag accepts them", async () => {
  await withDir("deit3-runstate-", async (dir) => {
    const cfg = tinyConfig(dir, data, 6);
    cfg["eval-interval"] = 100;
    await train(config(cfg), { stopAtStep: 2 });
    const changed = {
      ...cfg,
      "train-batch-size": 4,
      "learning-rate": 0.001,
      "log-interval": 1, // may change
    };
    const msg = await train(config(changed)).then(() => "", (e) => (e as Error).message);
    assert(msg.includes("train-batch-size: 8 -> 4"), msg);
    assert(msg.includes("learning-rate: 0.003 -> 0.001"), msg);
    assert(!msg.includes("log-interval"), msg);
    assert(msg.includes("--accept-config-changes"), msg);
    assert(msg.includes("another --name or --output-dir"), msg);
    // The model and the loader workers cannot change, flag or not.
    await assertRejects(
      () => train(config({ ...cfg, "train-loader-workers": 2 }, ["--accept-config-changes"])),
      /train-loader-workers: 1 -> 2/,
    );
    await assertRejects(
      () => train(config({ ...cfg, dim: 32 }, ["--accept-config-changes"])),
      /dim: 16 -> 32/,
    );
    const r = await train(config(changed, ["--accept-config-changes"]), { stopAtStep: 3 });
    assertEquals(r.step, 3);
    // Only the keys of RESUME_CHANGEABLE_KEYS change freely.
    const r2 = await train(
      config({ ...changed, "valid-batch-size": 4, "save-minutes": 1 }, [
        "--accept-config-changes",
      ]),
      { stopAtStep: 4 },
    );
    assertEquals(r2.step, 4);
  });
});

Deno.test("run state: best accuracy, the log window and metrics.jsonl continue as uninterrupted", async () => {
  await withDir("deit3-runstate-", async (dir) => {
    const straight = tinyConfig(`${dir}/a`, data, 9);
    straight["log-interval"] = 2;
    await Deno.mkdir(`${dir}/a`);
    await train(config(straight));
    const split = tinyConfig(`${dir}/b`, data, 9);
    split["log-interval"] = 2;
    await Deno.mkdir(`${dir}/b`);
    // Stop at 5: after the first eval (3), inside a log window (4..6).
    assertEquals((await train(config(split), { stopAtStep: 5 })).step, 5);
    const out = `${dir}/b/out`;
    // A killed run's leftovers: records past the saved step, a cut line, a temp file.
    await Deno.writeTextFile(
      `${out}/metrics.jsonl`,
      JSON.stringify({ step: 6, time: 0, "train/loss": 9 }) + '\n{"step": 7, "ti',
      { append: true },
    );
    await Deno.writeFile(`${out}/tiny-state.msgpack.4242-0123abcd.tmp`, new Uint8Array(10));
    const second = await train(config(split));
    assertEquals(second.step, 9);
    const names = await listing(out);
    assert(!Object.keys(names).some((n) => n.endsWith(".tmp")), Object.keys(names).join(" "));
    const strip = (rs: Record<string, unknown>[]) =>
      rs.map((
        {
          time: _t,
          "train/img_per_s": _i,
          "train/data_time": _d,
          "train/compute_time": _c,
          ...rest
        },
      ) => rest);
    const a = strip(records(await Deno.readTextFile(`${dir}/a/out/metrics.jsonl`)));
    const b = strip(records(await Deno.readTextFile(`${out}/metrics.jsonl`)));
    assertEquals(b, a);
    const sa = await loadTrainingState(`${dir}/a/out/tiny-state.msgpack`);
    const sb = await loadTrainingState(`${out}/tiny-state.msgpack`);
    assertEquals(sb.data.best_acc1, sa.data.best_acc1);
    assertEquals(second.bestAcc1, sa.data.best_acc1);
    for (const f of ["tiny-last.msgpack", "tiny-best.msgpack"]) {
      assertEquals(
        await Deno.readFile(`${out}/${f}`),
        await Deno.readFile(`${dir}/a/out/${f}`),
        f,
      );
    }
  });
});

Deno.test("run state: inputs and outputs are checked before anything is created", async () => {
  await withDir("deit3-runstate-", async (dir) => {
    const base = tinyConfig(`${dir}/run`, data, 2);
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { "valid-dataset-shards": `${data.valid}::${dir}/missing-1.tar` },
        /"valid-dataset-shards": 1 of 2 shards cannot be read: .*missing-1\.tar/,
      ],
      [{ name: "sub/run" }, /name "sub\/run" is not a file name/],
      [
        { "pretrained-ckpt": `${dir}/nope.msgpack` },
        /"pretrained-ckpt": .*nope\.msgpack: no such file/,
      ],
    ];
    for (const [change, pattern] of cases) {
      await assertRejects(() => train(config({ ...base, ...change })), pattern);
    }
    assert(!(await exists(`${dir}/run`)), "the output folder was created");
    // A .pth given as the pretrained checkpoint is named, with the command that converts it.
    const pth = `${dir}/model.pth`;
    await Deno.writeFile(pth, new Uint8Array([0x50, 0x4b, 3, 4, 0, 0, 0, 0, 0]));
    await assertRejects(
      () => train(config({ ...base, "pretrained-ckpt": pth })),
      /a PyTorch \.pth file, not a Flax msgpack checkpoint: convert it first with `deno task convert .*model\.pth --to msgpack`/,
    );
    // An output folder that is a file.
    await Deno.writeTextFile(`${dir}/file`, "x");
    await assertRejects(
      () => train(config({ ...base, "output-dir": `${dir}/file/out` })),
      /output-dir .*file\/out: (.*not a folder|Not a directory)/,
    );
    assert(!(await exists(`${dir}/run`)), "the output folder was created");
  });
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
