import { createTarDecoder, packTar } from "modern-tar";
import { readTar, TarError } from "../../lib/data/tar.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { buildShard, jpeg } from "./helpers.ts";

const FIXTURES = new URL("../fixtures/data/", import.meta.url);

async function members(bytes: Uint8Array, chunk = 1 << 20) {
  const out: { name: string; size: number; first: number }[] = [];
  for await (const m of readTar(chunked(bytes, chunk), "test.tar")) {
    out.push({ name: m.name, size: m.data.length, first: m.data[0] ?? -1 });
  }
  return out;
}

/** A stream delivering `bytes` in pieces of `n`, to exercise chunk boundaries. */
function chunked(bytes: Uint8Array, n: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i >= bytes.length) return c.close();
      c.enqueue(bytes.slice(i, i + n));
      i += n;
    },
  });
}

const LONG = "train/" + "x".repeat(150) + "/sample.with.dots";
const EXPECTED = [
  { name: "__index__", size: 4, first: 109 },
  { name: "train/n01440764_10026.JPEG", size: 700, first: 74 },
  { name: "train/n01440764_10026.cls", size: 1, first: 48 },
  { name: LONG + ".json", size: 8, first: 123 },
  { name: LONG + ".cls", size: 1, first: 55 },
  { name: "noext", size: 7, first: 100 },
  { name: "train/b.seg.png", size: 513, first: 80 },
];

Deno.test("readTar: Python tarfile archives, GNU and PAX, whatever the chunking", async () => {
  for (const file of ["python-gnu.tar", "python-pax.tar"]) {
    const bytes = await Deno.readFile(new URL(file, FIXTURES));
    for (const chunk of [1, 7, 512, 1000, 1 << 20]) {
      assertEquals(await members(bytes, chunk), EXPECTED, `${file} in chunks of ${chunk}`);
    }
  }
});

Deno.test("readTar: modern-tar's archives, contents byte-exact", async () => {
  const img = await jpeg(40, 30, 3);
  const bytes = await packTar([
    { header: { name: "a.jpg", size: img.length, type: "file" }, body: img },
    { header: { name: "a.cls", size: 0, type: "file" }, body: new Uint8Array(0) },
  ]);
  const got = [];
  for await (const m of readTar(chunked(bytes, 333))) got.push(m);
  assertEquals(got.map((m) => m.name), ["a.jpg", "a.cls"]);
  assertEquals(got[0].data, img);
  assertEquals(got[1].data.length, 0);
});

Deno.test("readTar: truncation inside a member or a header is an error naming the member", async () => {
  const bytes = await buildShard([
    { key: "s0", parts: { jpg: new Uint8Array(3000).fill(1), cls: "1" } },
    { key: "s1", parts: { jpg: new Uint8Array(3000).fill(2), cls: "2" } },
  ]);
  // Inside s1.jpg's data, inside s1.jpg's header, inside the padding after s0.cls.
  for (const cut of [512 * 11, 512 * 9 + 100, 512 * 8 + 3]) {
    await assertRejects(() => members(bytes.slice(0, cut), 700), /truncated/);
  }
  const err = await members(bytes.slice(0, 512 * 11), 700).catch((e) => e);
  assert(err instanceof TarError && err.kind === "truncated");
  assert(String(err.message).includes("s1.jpg"), err.message);
  // Cut exactly at a member boundary (no end-of-archive blocks): accepted, as Python does.
  const clean = await members(bytes.slice(0, 512 * 9), 700);
  assertEquals(clean.map((m) => m.name), ["s0.jpg", "s0.cls"]);
});

Deno.test("readTar: garbage is a corrupt-header error, not a hang", async () => {
  const noise = new Uint8Array(4096).map((_, i) => (i * 37 + 11) & 255);
  await assertRejects(() => members(noise), /corrupt tar header at byte 0/);
  const bytes = await buildShard([{ key: "a", parts: { cls: "1" } }, {
    key: "b",
    parts: { cls: "2" },
  }]);
  const damaged = bytes.slice();
  damaged[1024 + 10] ^= 0xff; // inside b.cls's header name
  await assertRejects(() => members(damaged), /corrupt tar header at byte 1024/);
});

Deno.test("a cut archive: modern-tar stops silently, readTar rejects (why lib/data has its own)", async () => {
  const bytes = await buildShard([{ key: "s0", parts: { jpg: new Uint8Array(3000) } }]);
  const cut = bytes.slice(0, 2000);
  let error: unknown;
  try {
    for await (const e of chunked(cut, 512).pipeThrough(createTarDecoder())) {
      for await (const _ of e.body) { /* drain */ }
    }
  } catch (e) {
    error = e;
  }
  assertEquals(error, undefined, "modern-tar now reports truncation; it could replace readTar");
  await assertRejects(() => members(cut, 512), /s0\.jpg" at byte 0 is truncated/);
});

Deno.test("readTar: a non-octal size names the member and the field, not byte NaN", async () => {
  const bytes = await buildShard([
    { key: "a", parts: { cls: "1" } },
    { key: "b", parts: { cls: "2" } },
  ]);
  const bad = bytes.slice();
  bad.set(new TextEncoder().encode("00000x00012\0"), 1024 + 124); // b.cls's size field
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : bad[1024 + i];
  bad.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 1024 + 148);
  const err = await members(bad).catch((e) => e);
  assert(err instanceof TarError && err.kind === "corrupt", String(err));
  assertEquals(
    err.message,
    'test.tar: member "b.cls" at byte 1024: corrupt header, size field "00000x00012" is not a valid size',
  );
  assert(!err.message.includes("NaN"));
});

Deno.test("readTar: a zero-byte file is an error, not an empty archive", async () => {
  const err = await members(new Uint8Array(0)).catch((e) => e);
  assert(err instanceof TarError && err.kind === "empty", String(err));
  assertEquals(err.message, "test.tar: empty (0 bytes), not a tar archive");
  // The end-of-archive blocks alone are a (memberless) archive.
  assertEquals(await members(new Uint8Array(1024)), []);
});
