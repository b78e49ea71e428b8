import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import {
  readPth,
  readPthFile,
  stateDictOf,
  writePth,
  writePthFile,
} from "../../lib/checkpoint/pth.ts";
import { flaxToTimm } from "../../lib/checkpoint/timm.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import { bytesAccess, readZipDirectory } from "../../lib/checkpoint/zip.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { HAVE_TORCH, torchCheck } from "./torch_helper.ts";

const FIX = (name: string) => new URL(`../fixtures/checkpoint/${name}`, import.meta.url).pathname;

Deno.test("reads the reference params.pth (written by torch 2.11) with all 36 timm keys", async () => {
  const sd = stateDictOf(await readPthFile(FIX("params.pth")));
  assertEquals(sd.size, 36);
  assertEquals(sd.get("pos_embed")!.shape, [1, 65, 64]);
  assertEquals(sd.get("patch_embed.proj.weight")!.shape, [64, 3, 4, 4]);
  assertEquals(sd.get("blocks.1.attn.qkv.weight")!.shape, [192, 64]);
  // the cls row of pos_embed is the zero padding added by convert_flax_to_pytorch.py
  assert(Array.from(sd.get("pos_embed")!.data.subarray(0, 64)).every((x) => x === 0));
});

Deno.test("reads torch 1.13 tensors of every dtype, views, offsets and Parameters", async () => {
  const tree = await readPthFile(FIX("torch_variety.pth"));
  const expected = JSON.parse(await Deno.readTextFile(FIX("torch_variety.json"))) as Record<
    string,
    { shape: number[]; dtype: string; values: number[]; bits?: number[] }
  >;
  const dtypeOf: Record<string, string> = {
    float32: "f32",
    bfloat16: "bf16",
    float16: "f32",
    float64: "f32",
    int64: "i32",
    int32: "i32",
    uint8: "u8",
    bool: "bool",
  };
  for (const [k, e] of Object.entries(expected)) {
    const t = tree[k] as HostTensor;
    assertEquals(t.shape, e.shape, k);
    assertEquals(t.dtype, dtypeOf[e.dtype], k);
    if (e.bits) {
      assertEquals(Array.from(t.data), e.bits.map((b) => b & 0xffff), k);
    } else if (e.dtype === "bool") {
      assertEquals(Array.from(t.data), e.values.map(Number), k);
    } else {
      assertEquals(
        Array.from(t.data),
        e.values.map((x) =>
          (e.dtype.startsWith("int") || e.dtype === "uint8") ? x : Math.fround(x)
        ),
        k,
      );
    }
  }
});

Deno.test("write -> read keeps every tensor; storages are 64-byte aligned like torch's", async () => {
  const sd = new Map<string, HostTensor>([
    ["a.weight", hostTensor([2, 3], "f32", [1, 2, 3, 4, 5, 6])],
    ["b", hostTensor([3], "bf16", [0x3f80, 0x4000, 0xbf80])],
    ["c", hostTensor([], "i32", [-9])],
    ["d", hostTensor([2], "bool", [1, 0])],
    ["e", hostTensor([0, 4], "u8")],
  ]);
  const bytes = writePth(sd, { archiveName: "x" });
  const back = stateDictOf(await readPth(bytes));
  assertEquals(back, sd);
  const entries = await readZipDirectory(bytesAccess(bytes));
  assertEquals(entries.map((e) => e.name), [
    "x/data.pkl",
    "x/.format_version",
    "x/.storage_alignment",
    "x/byteorder",
    "x/data/0",
    "x/data/1",
    "x/data/2",
    "x/data/3",
    "x/data/4",
    "x/version",
  ]);
  for (const e of entries) assertEquals(e.dataOffset % 64, 0, e.name);
});

Deno.test({
  name:
    "torch: our vit-a .pth loads with weights_only=True and equals the reference tensor for tensor",
  ignore: !HAVE_TORCH,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const sd = flaxToTimm(await readFlaxMsgpackFile(FIX("params.msgpack")));
      await writePthFile(`${dir}/vit-a.pth`, sd);
      assertEquals(
        (await torchCheck("compare", `${dir}/vit-a.pth`, FIX("params.pth"))).trim(),
        "equal 36",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "torch: every dtype we write loads with weights_only=True; ZIP64 records pass zipfile",
  ignore: !HAVE_TORCH,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const sd = new Map<string, HostTensor>([
        ["f", hostTensor([2, 2], "f32", [1, 2, 3, 4])],
        ["h", hostTensor([1], "bf16", [0x3f80])],
        ["i", hostTensor([3], "i32", [1, -2, 3])],
        ["u", hostTensor([2], "u8", [0, 255])],
        ["b", hostTensor([2], "bool", [0, 1])],
        ["s", hostTensor([], "f32", [2.5])],
      ]);
      await writePthFile(`${dir}/all.pth`, sd);
      const described = JSON.parse(await torchCheck("load", `${dir}/all.pth`));
      assertEquals(described, {
        f: [[2, 2], "float32"],
        h: [[1], "bfloat16"],
        i: [[3], "int32"],
        u: [[2], "uint8"],
        b: [[2], "bool"],
        s: [[], "float32"],
      });
      // ZIP64 records (as a >4 GiB checkpoint needs), forced on a small file: checked with
      // Python's zipfile (torch's miniz only accepts ZIP64 offsets in archives really > 4 GiB)
      await writePthFile(`${dir}/z64.pth`, sd, { zip64Threshold: 100 });
      const names = JSON.parse(await torchCheck("zipcheck", `${dir}/z64.pth`));
      assertEquals(names.length, 11);
      assertEquals(stateDictOf(await readPthFile(`${dir}/z64.pth`)), sd);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("bad input: truncated, corrupt, not a zip, missing file, unsupported dtype", async () => {
  const bytes = await Deno.readFile(FIX("params.pth"));
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/cut.pth`, bytes.subarray(0, 100000));
    await assertRejects(
      () => readPthFile(`${dir}/cut.pth`),
      /cut\.pth: .*(truncated|end of central directory)/,
    );
    const flipped = bytes.slice();
    flipped[20000] ^= 0xff; // inside a storage
    await Deno.writeFile(`${dir}/flip.pth`, flipped);
    await assertRejects(() => readPthFile(`${dir}/flip.pth`), /flip\.pth: .*CRC-32 mismatch/);
    await Deno.writeFile(
      `${dir}/text.pth`,
      new TextEncoder().encode("hello, this is not a checkpoint at all"),
    );
    await assertRejects(() => readPthFile(`${dir}/text.pth`), /text\.pth: not a torch zip archive/);
    await assertRejects(() => readPthFile(`${dir}/nope.pth`), /nope\.pth: file not found/);
    await assertRejects(
      () => writePthFile(`${dir}/u32.pth`, { w: hostTensor([1], "u32", [1]) }),
      /u32\.pth: key "w": torch has no u32 tensors/,
    );
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names.sort(), ["cut.pth", "flip.pth", "text.pth"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
