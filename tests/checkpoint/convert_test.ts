import { convertCheckpoint } from "../../lib/checkpoint/convert.ts";
import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import { readPthFile, stateDictOf, writePthFile } from "../../lib/checkpoint/pth.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../../lib/checkpoint/safetensors.ts";
import { flattenTree } from "../../lib/checkpoint/tree.ts";
import { saveTrainingState } from "../../lib/checkpoint/train_state.ts";
import { hostTensor } from "../../lib/ir/host_tensor.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { startFakeGcs } from "../fake_gcs.ts";
import { HAVE_TORCH, torchCheck } from "./torch_helper.ts";

const FIX = (name: string) => new URL(`../fixtures/checkpoint/${name}`, import.meta.url).pathname;
const TASK = new URL("../../tasks/convert.ts", import.meta.url).pathname;
const MSGPACK = await Deno.readFile(FIX("params.msgpack"));

async function inTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function runTask(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", TASK, ...args] })
    .output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("deno task convert: msgpack -> pth (default) -> msgpack round trip, byte-identical", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/vit-a.msgpack`, MSGPACK);
    const a = await runTask(`${dir}/vit-a.msgpack`);
    assertEquals(a.code, 0, a.stderr);
    assert(a.stdout.includes(`wrote ${dir}/vit-a.pth: msgpack -> pth, 36 tensors`), a.stdout);
    const ref = stateDictOf(await readPthFile(FIX("params.pth")));
    assertEquals(stateDictOf(await readPthFile(`${dir}/vit-a.pth`)), ref);
    const b = await runTask(`${dir}/vit-a.pth`, "--out", `${dir}/back.msgpack`, "--num-heads", "4");
    assertEquals(b.code, 0, b.stderr);
    assertEquals(await Deno.readFile(`${dir}/back.msgpack`), MSGPACK);
  });
});

Deno.test("deno task convert: bad arguments and bad input exit non-zero and write nothing", async () => {
  await inTempDir(async (dir) => {
    const none = await runTask(`${dir}/none.msgpack`);
    assertEquals(none.code, 1);
    assert(none.stderr.includes(`convert: ${dir}/none.msgpack: file not found`), none.stderr);
    const to = await runTask(`${dir}/x.msgpack`, "--to", "onnx");
    assertEquals(to.code, 2);
    assert(to.stderr.includes("--to must be pth, msgpack or safetensors"), to.stderr);
    await Deno.writeFile(`${dir}/cut.msgpack`, MSGPACK.subarray(0, 300000));
    const cut = await runTask(`${dir}/cut.msgpack`);
    assertEquals(cut.code, 1);
    assert(/cut\.msgpack: key "model\/layer_1\/.*truncated/.test(cut.stderr), cut.stderr);
    const heads = await runTask(`${dir}/vit.pth`, "--num-heads", "0");
    assertEquals(heads.code, 2);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names, ["cut.msgpack"]);
  });
});

Deno.test("convert: safetensors both ways, --exclude-heads, training-state input", async () => {
  await inTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/p.msgpack`, MSGPACK);
    const r = await convertCheckpoint({
      input: `${dir}/p.msgpack`,
      to: "safetensors",
      excludeHeads: true,
    });
    assertEquals(r, {
      out: `${dir}/p.safetensors`,
      from: "msgpack",
      to: "safetensors",
      tensors: 34,
      bytes: r.bytes,
    });
    const st = await readSafetensorsFile(`${dir}/p.safetensors`);
    assertEquals(st.metadata, { format: "pt" });
    assert(!st.tensors.has("head.weight") && st.tensors.has("blocks.1.ls2.gamma"));
    await convertCheckpoint({
      input: `${dir}/p.safetensors`,
      out: `${dir}/q.msgpack`,
      numHeads: 4,
    });
    const q = flattenTree(await readFlaxMsgpackFile(`${dir}/q.msgpack`));
    const p = flattenTree(await readFlaxMsgpackFile(`${dir}/p.msgpack`));
    assertEquals(q, new Map([...p].filter(([k]) => !k.startsWith("model/head/"))));
    // a Flax-named safetensors file (dotted Flax paths) converts back to the same tree
    await writeSafetensorsFile(
      `${dir}/flaxnames.safetensors`,
      new Map([
        ...flattenTree(await readFlaxMsgpackFile(`${dir}/p.msgpack`), { sep: "." }),
      ]) as never,
    );
    await convertCheckpoint({ input: `${dir}/flaxnames.safetensors`, out: `${dir}/r.msgpack` });
    assertEquals(await Deno.readFile(`${dir}/r.msgpack`), MSGPACK);
    // a training state converts through its params
    await saveTrainingState(`${dir}/state.msgpack`, {
      params: await readFlaxMsgpackFile(`${dir}/p.msgpack`),
      optState: {},
      step: 1,
      rng: {},
      data: {},
      config: {},
    });
    const s = await convertCheckpoint({ input: `${dir}/state.msgpack`, out: `${dir}/state.pth` });
    assertEquals(s.tensors, 36);
  });
});

Deno.test("convert: refusals leave no output (gap model, unknown timm keys, same in/out)", async () => {
  await inTempDir(async (dir) => {
    const sd = stateDictOf(await readPthFile(FIX("params.pth")));
    sd.set("fc_norm.weight", hostTensor([64], "f32"));
    await writePthFile(`${dir}/gap.pth`, sd);
    await assertRejects(
      () => convertCheckpoint({ input: `${dir}/gap.pth`, numHeads: 4 }),
      /gap\.pth: fc_norm\.weight: this timm model variant has no deit3-jax equivalent/,
    );
    await Deno.writeFile(`${dir}/p.msgpack`, MSGPACK);
    await assertRejects(
      () => convertCheckpoint({ input: `${dir}/p.msgpack`, to: "msgpack" }),
      /would overwrite the input/,
    );
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names.sort(), ["gap.pth", "p.msgpack"]);
  });
});

Deno.test({
  name: "convert over gs:// (fake GCS on 127.0.0.1): msgpack in, .pth out; torch loads the result",
  async fn() {
    const gcs = startFakeGcs();
    const saved = Deno.env.get("STORAGE_EMULATOR_HOST");
    Deno.env.set("STORAGE_EMULATOR_HOST", gcs.endpoint);
    try {
      gcs.objects.set("models/vit-a.msgpack", MSGPACK);
      const r = await convertCheckpoint({ input: "gs://models/vit-a.msgpack" });
      assertEquals(r.out, "gs://models/vit-a.pth");
      const pth = gcs.objects.get("models/vit-a.pth")!;
      await inTempDir(async (dir) => {
        await Deno.writeFile(`${dir}/vit-a.pth`, pth);
        const ref = stateDictOf(await readPthFile(FIX("params.pth")));
        assertEquals(stateDictOf(await readPthFile(`${dir}/vit-a.pth`)).size, ref.size);
        if (HAVE_TORCH) {
          assertEquals(
            (await torchCheck("compare", `${dir}/vit-a.pth`, FIX("params.pth"))).trim(),
            "equal 36",
          );
        }
      });
      await assertRejects(
        () => convertCheckpoint({ input: "gs://models/missing.msgpack" }),
        /gs:\/\/models\/missing\.msgpack: object not found/,
      );
    } finally {
      if (saved === undefined) Deno.env.delete("STORAGE_EMULATOR_HOST");
      else Deno.env.set("STORAGE_EMULATOR_HOST", saved);
      await gcs.close();
    }
  },
});
