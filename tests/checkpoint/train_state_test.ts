import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import {
  loadTrainingState,
  saveTrainingState,
  type TrainingState,
} from "../../lib/checkpoint/train_state.ts";
import { writeFlaxMsgpack } from "../../lib/checkpoint/flax_msgpack.ts";
import { hostTensor } from "../../lib/ir/host_tensor.ts";
import { assertEquals, assertRejects } from "../assert.ts";
import { startFakeGcs } from "../fake_gcs.ts";
import { useGcsEndpoint } from "../../lib/checkpoint/storage.ts";
import { decode, ExtensionCodec } from "@msgpack/msgpack";

const FIX = (name: string) => new URL(`../fixtures/checkpoint/${name}`, import.meta.url).pathname;

async function sampleState(): Promise<TrainingState> {
  const params = await readFlaxMsgpackFile(FIX("params.msgpack"));
  return {
    params,
    optState: {
      count: hostTensor([], "i32", [3]),
      mu: { w: hostTensor([2], "f32", [0.5, -1]) },
      nu: {},
    },
    step: 123456,
    rng: {
      dropout: hostTensor([2], "u32", [0, 42]),
      mixup: hostTensor([2], "u32", [7, 4294967295]),
    },
    data: { epoch: 2, sample: 1234567, shard: "train-0003.tar" },
    config: { model: { dim: 64, layers: 2 }, lr: 0.001 },
  };
}

Deno.test("training state: save/load round trip, readable as plain Flax msgpack", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const state = await sampleState();
    await saveTrainingState(`${dir}/last.msgpack`, state);
    assertEquals(await loadTrainingState(`${dir}/last.msgpack`), state);
    // an independent decoder sees the documented layout
    const codec = new ExtensionCodec();
    codec.register({ type: 1, encode: () => null, decode: (d: Uint8Array) => decode(d) });
    const raw = decode(await Deno.readFile(`${dir}/last.msgpack`), {
      extensionCodec: codec,
    }) as Record<string, unknown>;
    assertEquals(Object.keys(raw), [
      "config",
      "data",
      "format",
      "opt_state",
      "params",
      "rng",
      "step",
    ]);
    assertEquals(raw.step, 123456);
    assertEquals(JSON.parse(raw.config as string), state.config);
    assertEquals(raw.format, "deit3-deno/train-state/1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("training state: a failing save leaves the previous checkpoint intact", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const state = await sampleState();
    await saveTrainingState(`${dir}/last.msgpack`, state);
    const before = await Deno.readFile(`${dir}/last.msgpack`);
    const broken = {
      ...state,
      step: 7,
      optState: { m: { shape: [4], dtype: "f32", data: new Float32Array(1) } },
    } as TrainingState;
    await assertRejects(
      () => saveTrainingState(`${dir}/last.msgpack`, broken),
      /last\.msgpack: key "opt_state\/m"/,
    );
    assertEquals(await Deno.readFile(`${dir}/last.msgpack`), before);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names, ["last.msgpack"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("training state: bad files give errors naming the file and key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/params.msgpack`, await Deno.readFile(FIX("params.msgpack")));
    await assertRejects(
      () => loadTrainingState(`${dir}/params.msgpack`),
      /params\.msgpack: key "format": not a training state/,
    );
    const state = await sampleState();
    const noStep = writeFlaxMsgpack({
      format: "deit3-deno/train-state/1",
      params: state.params,
      opt_state: {},
      rng: {},
      data: {},
      config: "{}",
      step: hostTensor([2], "i32", [1, 2]),
    });
    await Deno.writeFile(`${dir}/bad.msgpack`, noStep);
    await assertRejects(
      () => loadTrainingState(`${dir}/bad.msgpack`),
      /bad\.msgpack: key "step": not a non-negative integer \(an array of shape \[2\]\)/,
    );
    await Deno.writeFile(`${dir}/cut.msgpack`, noStep.subarray(0, 5000));
    await assertRejects(
      () => loadTrainingState(`${dir}/cut.msgpack`),
      /cut\.msgpack: key "params\/model\/.*truncated/,
    );
    await assertRejects(
      () => loadTrainingState(`${dir}/missing.msgpack`),
      /missing\.msgpack: file not found/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("training state on gs://: upload then load back; a failed upload keeps the old object", async () => {
  const gcs = startFakeGcs();
  useGcsEndpoint(gcs.endpoint);
  try {
    const state = await sampleState();
    await saveTrainingState("gs://ckpt/run1/last.msgpack", state);
    assertEquals(gcs.uploads, 1);
    assertEquals(await loadTrainingState("gs://ckpt/run1/last.msgpack"), state);
    const before = gcs.objects.get("ckpt/run1/last.msgpack");
    gcs.failUploads = 10;
    await assertRejects(
      () => saveTrainingState("gs://ckpt/run1/last.msgpack", { ...state, step: 9 }),
      /gs:\/\/ckpt\/run1\/last\.msgpack: upload failed/,
    );
    assertEquals(gcs.objects.get("ckpt/run1/last.msgpack"), before);
    await assertRejects(
      () => loadTrainingState("gs://ckpt/none.msgpack"),
      /gs:\/\/ckpt\/none\.msgpack: object not found/,
    );
  } finally {
    useGcsEndpoint(undefined);
    await gcs.close();
  }
});
