import { decode, encode, ExtensionCodec } from "@msgpack/msgpack";
import {
  encodeFlaxMsgpack,
  NUMPY_DTYPE,
  readFlaxMsgpack,
  readFlaxMsgpackFile,
  writeFlaxMsgpack,
  writeFlaxMsgpackFile,
} from "../../lib/checkpoint/flax_msgpack.ts";
import { concat } from "../../lib/checkpoint/msgpack_encode.ts";
import { tensorLeaves, type Tree, unflattenTree } from "../../lib/checkpoint/tree.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import { assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { HAVE_TORCH, torchCheck } from "./torch_helper.ts";

const FIXTURE = new URL("../fixtures/checkpoint/params.msgpack", import.meta.url).pathname;

/** An independent decoder: @msgpack/msgpack with Flax's ext type 1 decoded by hand. */
function independentDecode(bytes: Uint8Array): unknown {
  const codec = new ExtensionCodec();
  codec.register({
    type: 1,
    encode: () => null,
    decode: (data: Uint8Array) => {
      const [shape, dtype, raw] = decode(data) as [number[], string, Uint8Array];
      return { shape, dtype, raw: raw.slice() };
    },
  });
  return decode(bytes, { extensionCodec: codec });
}

function encodeWithExt(value: unknown): Uint8Array {
  const codec = new ExtensionCodec();
  codec.register({
    type: 1,
    encode: (x: unknown) => {
      if (x && typeof x === "object" && "__ext1" in x) return (x as { __ext1: Uint8Array }).__ext1;
      return null;
    },
    decode: () => null,
  });
  return encode(value, { extensionCodec: codec });
}

/** A Flax-style ndarray leaf built with @msgpack/msgpack (not with the code under test). */
function extLeaf(shape: number[], dtype: string, raw: Uint8Array) {
  return { __ext1: encode([shape, dtype, raw]) };
}

Deno.test("vit-a params.msgpack: read then write is byte-identical (bytes and file reader)", async () => {
  const bytes = Deno.readFileSync(FIXTURE);
  const fromBytes = readFlaxMsgpack(bytes);
  assertEquals(writeFlaxMsgpack(fromBytes), bytes);
  const fromFile = await readFlaxMsgpackFile(FIXTURE);
  assertEquals(writeFlaxMsgpack(fromFile), bytes);
});

Deno.test("vit-a params.msgpack: every tensor equals an independent msgpack decode", () => {
  const bytes = Deno.readFileSync(FIXTURE);
  const leaves = tensorLeaves(readFlaxMsgpack(bytes));
  const ref = independentDecode(bytes) as Record<string, unknown>;
  const refLeaves = new Map<string, { shape: number[]; dtype: string; raw: Uint8Array }>();
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      const path = prefix ? `${prefix}/${k}` : k;
      if (v && typeof v === "object" && "raw" in v) refLeaves.set(path, v as never);
      else walk(v as Record<string, unknown>, path);
    }
  };
  walk(ref, "");
  assertEquals([...leaves.keys()].sort(), [...refLeaves.keys()].sort());
  assertEquals(leaves.size, 44);
  for (const [k, t] of leaves) {
    const r = refLeaves.get(k)!;
    assertEquals(t.shape, r.shape, k);
    assertEquals(r.dtype, "float32");
    assertEquals(t.dtype, "f32");
    assertEquals(Array.from(t.data), Array.from(new Float32Array(r.raw.buffer)), k);
  }
  const wte = leaves.get("model/embed/wte/kernel")!;
  assertEquals(wte.shape, [4, 4, 3, 64]);
});

Deno.test("writer: all dtypes and scalars decode independently to the same values", () => {
  const bf16Bits = Uint16Array.of(0x3f80, 0xc000, 0x7fc0, 0x0001);
  const tree: Tree = {
    z: { f: hostTensor([2, 2], "f32", [1.5, -2, 0.25, 1e30]) },
    a: {
      i: hostTensor([3], "i32", [-1, 0, 2147483647]),
      u: hostTensor([2], "u32", [4294967295, 7]),
      b: hostTensor([2, 2], "bf16", bf16Bits),
      c: hostTensor([4], "u8", [0, 1, 128, 255]),
      d: hostTensor([2], "bool", [1, 0]),
      s: hostTensor([], "i32", [42]),
    },
    step: 12345678901,
    name: "vit-a",
    lr: 0.5,
    nothing: null,
    flag: true,
  };
  const bytes = writeFlaxMsgpack(tree);
  const ref = independentDecode(bytes) as Record<
    string,
    Record<string, { shape: number[]; dtype: string; raw: Uint8Array }>
  >;
  assertEquals(Object.keys(ref), ["a", "flag", "lr", "name", "nothing", "step", "z"]);
  assertEquals(Object.keys(ref.a), ["b", "c", "d", "i", "s", "u"]);
  assertEquals(ref.a.b.dtype, "bfloat16");
  assertEquals(Array.from(new Uint16Array(ref.a.b.raw.buffer)), Array.from(bf16Bits));
  assertEquals(ref.a.d.dtype, "bool");
  assertEquals(ref.a.s.shape, []);
  assertEquals(Array.from(new Int32Array(ref.a.i.raw.buffer)), [-1, 0, 2147483647]);
  assertEquals(ref.a.u.dtype, "uint32");
  assertEquals(ref.a.c.dtype, "uint8");
  assertEquals(ref.z.f.dtype, "float32");
  assertEquals((ref as unknown as Record<string, unknown>).step, 12345678901);
  // and our reader gives back what went in
  const back = readFlaxMsgpack(bytes);
  assertEquals(back, tree);
});

Deno.test("writer: keys sorted by code point like Python (layer_10 before layer_2)", () => {
  const t = (v: number) => hostTensor([], "f32", [v]);
  const tree: Tree = { layer_2: t(2), layer_10: t(10), Head: t(0), "é": t(3), b: t(1) };
  const keys = Object.keys(independentDecode(writeFlaxMsgpack(tree)) as object);
  assertEquals(keys, ["Head", "b", "layer_10", "layer_2", "é"]);
});

Deno.test("reader: float16 is widened to f32; numpy scalar ext 3 reads as shape []", () => {
  const f16 = Uint16Array.of(0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0xfc00);
  const bytes = encodeWithExt({ h: extLeaf([2, 3], "float16", new Uint8Array(f16.buffer)) });
  const t = readFlaxMsgpack(bytes).h as HostTensor;
  assertEquals(t.dtype, "f32");
  assertEquals(t.shape, [2, 3]);
  assertEquals(Array.from(t.data), [1, -2, 0.5, 65504, 2 ** -24, -Infinity]);
  // ext 3: hand-assembled fixext? payload is > 16 bytes, so ext8: c7 len 03 payload
  const payload = encode([[], "int32", new Uint8Array(Int32Array.of(-7).buffer)]);
  const scalar = concat([Uint8Array.of(0x81, 0xa1, 0x73, 0xc7, payload.length, 3), payload]);
  const s = readFlaxMsgpack(scalar).s as HostTensor;
  assertEquals(s.shape, []);
  assertEquals(Array.from(s.data), [-7]);
});

Deno.test("chunked arrays: written in Flax's layout and joined on read", () => {
  const big = hostTensor([3, 5], "f32", Array.from({ length: 15 }, (_, i) => i * 0.5));
  const bytes = concat([
    ...encodeFlaxMsgpack({ w: big, a: hostTensor([1], "u8", [9]) }, { maxChunkBytes: 16 }),
  ]);
  const ref = independentDecode(bytes) as Record<string, Record<string, unknown>>;
  assertEquals(Object.keys(ref.w), ["__msgpack_chunked_array__", "shape", "chunks"]);
  assertEquals(ref.w.shape, { "0": 3, "1": 5 });
  const chunks = ref.w.chunks as Record<string, { shape: number[] }>;
  assertEquals(Object.values(chunks).map((c) => c.shape), [[4], [4], [4], [3]]);
  const back = readFlaxMsgpack(bytes);
  assertEquals(back.w, big);
});

Deno.test("file writer: streams, is atomic, and leaves nothing on failure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/out.msgpack`;
    const tree = await readFlaxMsgpackFile(FIXTURE);
    await writeFlaxMsgpackFile(path, tree);
    assertEquals(await Deno.readFile(path), await Deno.readFile(FIXTURE));
    // a bad leaf half way through: the old file stays, no temp file is left
    const bad: Tree = {
      a: tree,
      b: { shape: [3], dtype: "f32", data: new Float32Array(2) } as HostTensor,
    };
    await assertRejects(
      () => writeFlaxMsgpackFile(path, bad),
      /out\.msgpack: key "b": .*2 elements for shape \[3\]/,
    );
    assertEquals(await Deno.readFile(path), await Deno.readFile(FIXTURE));
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names.sort(), ["out.msgpack", "out.msgpack.sha256"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad input: truncated, corrupt, trailing garbage, missing file name the file and key", async () => {
  const bytes = Deno.readFileSync(FIXTURE);
  const dir = await Deno.makeTempDir();
  try {
    const cut = `${dir}/cut.msgpack`;
    await Deno.writeFile(cut, bytes.subarray(0, 200000));
    await assertRejects(
      () => readFlaxMsgpackFile(cut),
      /cut\.msgpack: key "model\/layer_0\/.*truncated/,
    );
    assertThrows(
      () => readFlaxMsgpack(bytes.subarray(0, 200000), "x.msgpack"),
      /x\.msgpack: key "model\/layer_0\/.*truncated/,
    );
    // garbage after the value
    const extra = `${dir}/extra.msgpack`;
    await Deno.writeFile(extra, concat([bytes, Uint8Array.of(0)]));
    await assertRejects(() => readFlaxMsgpackFile(extra), /extra\.msgpack: garbage after/);
    // not msgpack at all
    assertThrows(
      () => readFlaxMsgpack(new TextEncoder().encode("PK\x03\x04 hello"), "y.pth"),
      /y\.pth: .*not a map|y\.pth/,
    );
    assertThrows(
      () => readFlaxMsgpack(Uint8Array.of(0x81, 0xa1, 0x61, 0xc1), "z"),
      /z: key "a": not msgpack: invalid format byte 0xc1/,
    );
    // a byte count that does not match the shape
    const wrong = encodeWithExt({ k: extLeaf([2, 2], "float32", new Uint8Array(12)) });
    assertThrows(
      () => readFlaxMsgpack(wrong, "w"),
      /w: key "k": .*needs 16 bytes, the record holds 12/,
    );
    const dtype = encodeWithExt({ k: extLeaf([2], "complex64", new Uint8Array(16)) });
    assertThrows(() => readFlaxMsgpack(dtype, "d"), /d: key "k": unsupported dtype "complex64"/);
    await assertRejects(
      () => readFlaxMsgpackFile(`${dir}/none.msgpack`),
      /none\.msgpack: file not found/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "writer: byte-identical to Python msgpack packing a tree as Flax does (maps > 15, big dims)",
  ignore: !HAVE_TORCH,
  async fn() {
    const hex = (t: HostTensor) =>
      Array.from(
        new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
    const tensors = new Map<string, HostTensor>([
      [
        "model/layer_10/w",
        hostTensor([70000], "u8", new Uint8Array(70000).map((_, i) => i & 0xff)),
      ],
      [
        "model/layer_2/w",
        hostTensor([2, 300], "f32", Array.from({ length: 600 }, (_, i) => i / 7)),
      ],
      ["model/b", hostTensor([3], "bf16", [0x3f80, 0x7fc0, 0x8000])],
      ["model/e", hostTensor([0, 3], "f32")],
      ["model/s", hostTensor([], "i32", [-5])],
      ["model/u", hostTensor([1], "u32", [4294967295])],
      ["model/m", hostTensor([2], "bool", [1, 0])],
      [`model/${"long_name_".repeat(5)}`, hostTensor([1], "f32", [1])],
      ...Array.from(
        { length: 20 },
        (_, i) => [`many/k${i}`, hostTensor([1], "i32", [i])] as [string, HostTensor],
      ),
    ]);
    const spec: Record<string, unknown> = {};
    for (const [k, t] of tensors) {
      spec[k] = { shape: t.shape, dtype: NUMPY_DTYPE[t.dtype], hex: hex(t) };
    }
    spec["step"] = { value: 70000 };
    spec["neg"] = { value: -40000 };
    spec["name"] = { value: "x".repeat(40) };
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify(spec));
      await torchCheck("flax-pack", `${dir}/spec.json`, `${dir}/py.msgpack`);
      const tree = unflattenTree([...tensors, ["step", 70000], ["neg", -40000], [
        "name",
        "x".repeat(40),
      ]]);
      const ours = writeFlaxMsgpack(tree);
      assertEquals(ours, await Deno.readFile(`${dir}/py.msgpack`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("file writer: a missing output folder is reported as such", async () => {
  await assertRejects(
    () =>
      writeFlaxMsgpackFile("/nonexistent-dir-xyz/out.msgpack", { a: hostTensor([1], "f32", [1]) }),
    /\/nonexistent-dir-xyz\/out\.msgpack: cannot create the file: its folder does not exist/,
  );
});
