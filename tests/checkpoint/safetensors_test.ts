import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import {
  readSafetensors,
  readSafetensorsFile,
  writeSafetensors,
  writeSafetensorsFile,
} from "../../lib/checkpoint/safetensors.ts";
import { flaxToTimm } from "../../lib/checkpoint/timm.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import { assertEquals, assertRejects } from "../assert.ts";
import { HAVE_TORCH, torchCheck } from "./torch_helper.ts";

const FIX = (name: string) => new URL(`../fixtures/checkpoint/${name}`, import.meta.url).pathname;

/** A safetensors file assembled by hand from the format description (not by the code under test). */
function handMade(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("safetensors round trip: every dtype, scalars, empty tensors, metadata", async () => {
  const tensors = new Map<string, HostTensor>([
    ["w", hostTensor([2, 3], "f32", [1, -2, 3.5, 4, 5, 6])],
    ["b", hostTensor([2], "bf16", [0x3f80, 0xc000])],
    ["i", hostTensor([], "i32", [-7])],
    ["u", hostTensor([2], "u32", [4294967295, 1])],
    ["c", hostTensor([3], "u8", [0, 128, 255])],
    ["m", hostTensor([2], "bool", [1, 0])],
    ["e", hostTensor([0, 5], "f32")],
  ]);
  const bytes = writeSafetensors(tensors, { format: "pt" });
  const back = await readSafetensors(bytes);
  assertEquals(back.metadata, { format: "pt" });
  assertEquals(new Map([...back.tensors].sort()), new Map([...tensors].sort()));
  // the header as the format describes it: 8-byte aligned, offsets tiling the data
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assertEquals(n % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  // largest elements first, then by name: e (empty), i, u, w; then bf16; then bytes
  assertEquals(header.w, { dtype: "F32", shape: [2, 3], data_offsets: [12, 36] });
  assertEquals(header.i.data_offsets, [0, 4]);
  assertEquals(header.b.data_offsets, [36, 40]);
  assertEquals(header.b.dtype, "BF16");
  assertEquals(header.m.dtype, "BOOL");
});

Deno.test("reads a hand-made file with F16, F64 and I64 (converted) tensors", async () => {
  const data = new Uint8Array(8 * 2 + 8 * 2 + 2 * 2);
  const v = new DataView(data.buffer);
  v.setFloat64(0, 0.1, true);
  v.setFloat64(8, -3, true);
  v.setBigInt64(16, -5n, true);
  v.setBigInt64(24, 2147483647n, true);
  v.setUint16(32, 0x3c00, true);
  v.setUint16(34, 0xc000, true);
  const file = handMade({
    d: { dtype: "F64", shape: [2], data_offsets: [0, 16] },
    l: { dtype: "I64", shape: [2], data_offsets: [16, 32] },
    h: { dtype: "F16", shape: [2, 1], data_offsets: [32, 36] },
  }, data);
  const { tensors } = await readSafetensors(file);
  assertEquals(Array.from(tensors.get("d")!.data), [Math.fround(0.1), -3]);
  assertEquals(tensors.get("l")!.dtype, "i32");
  assertEquals(Array.from(tensors.get("l")!.data), [-5, 2147483647]);
  assertEquals(tensors.get("h")!.shape, [2, 1]);
  assertEquals(Array.from(tensors.get("h")!.data), [1, -2]);
});

Deno.test({
  name: "torch: vit-a as safetensors parses (json + numpy) to the reference params.pth tensors",
  ignore: !HAVE_TORCH,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const sd = flaxToTimm(await readFlaxMsgpackFile(FIX("params.msgpack")));
      await writeSafetensorsFile(`${dir}/vit-a.safetensors`, sd);
      const out = await torchCheck(
        "compare-safetensors",
        `${dir}/vit-a.safetensors`,
        FIX("params.pth"),
      );
      assertEquals(out.trim(), "equal 36");
      assertEquals((await readSafetensorsFile(`${dir}/vit-a.safetensors`)).tensors, sd);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("bad input: truncated, corrupt header, wrong sizes, overlaps, missing file", async () => {
  const good = writeSafetensors({ a: hostTensor([4], "f32", [1, 2, 3, 4]) });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/cut.safetensors`, good.subarray(0, good.length - 3));
    await assertRejects(
      () => readSafetensorsFile(`${dir}/cut.safetensors`),
      /cut\.safetensors: key "a": .*truncated file/,
    );
    await assertRejects(
      () => readSafetensors(good.subarray(0, 20), "h.st"),
      /h\.st: header length \d+ does not fit/,
    );
    const junk = handMade({}, new Uint8Array(0));
    junk[8] = 0x7b + 1;
    await assertRejects(() => readSafetensors(junk, "j.st"), /j\.st: header is not valid JSON/);
    const wrong = handMade(
      { k: { dtype: "F32", shape: [3], data_offsets: [0, 8] } },
      new Uint8Array(8),
    );
    await assertRejects(
      () => readSafetensors(wrong, "w.st"),
      /w\.st: key "k": .*hold 8 bytes, shape \[3\] F32 needs 12/,
    );
    const overlap = handMade({
      a: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
      b: { dtype: "U8", shape: [2], data_offsets: [1, 3] },
    }, new Uint8Array(3));
    await assertRejects(
      () => readSafetensors(overlap, "o.st"),
      /o\.st: key "b": data starts at 1, expected 2/,
    );
    const dtype = handMade(
      { c: { dtype: "C64", shape: [1], data_offsets: [0, 8] } },
      new Uint8Array(8),
    );
    await assertRejects(
      () => readSafetensors(dtype, "c.st"),
      /c\.st: key "c": unsupported dtype "C64"/,
    );
    await assertRejects(
      () => readSafetensorsFile(`${dir}/none.safetensors`),
      /none\.safetensors: file not found/,
    );
    await assertRejects(
      () =>
        writeSafetensorsFile(`${dir}/bad.safetensors`, {
          x: { shape: [2], dtype: "f32", data: new Float32Array(3) },
        }),
      /bad\.safetensors: key "x": .*3 elements for shape \[2\]/,
    );
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assertEquals(names, ["cut.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
