import {
  groupSamples,
  imageBytes,
  parseJson,
  parseLabel,
  type RawSample,
  SampleError,
  splitKey,
} from "../../lib/data/samples.ts";
import { readTar, TarError } from "../../lib/data/tar.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { buildShard } from "./helpers.ts";

const FIXTURES = new URL("../fixtures/data/", import.meta.url);

async function samplesOf(bytes: Uint8Array) {
  const stream = new Blob([new Uint8Array(bytes)]).stream();
  const out = [];
  for await (const s of groupSamples(readTar(stream))) out.push(s);
  return out;
}

Deno.test("splitKey: webdataset's base_plus_ext, lowercased extension", () => {
  assertEquals(splitKey("n01440764_10026.JPEG"), ["n01440764_10026", "jpeg"]);
  assertEquals(splitKey("dir/a.b.c.Seg.PNG"), ["dir/a", "b.c.seg.png"]);
  assertEquals(splitKey("d.x/y/a.jpg"), ["d.x/y/a", "jpg"]);
  assertEquals(splitKey("noext"), undefined);
  assertEquals(splitKey(".hidden"), undefined);
  assertEquals(splitKey("__index__"), undefined);
  assertEquals(splitKey("__meta__/a.json"), undefined);
});

Deno.test("groupSamples: Python tarfile shard grouped as webdataset does", async () => {
  const samples = await samplesOf(await Deno.readFile(new URL("python-pax.tar", FIXTURES)));
  const long = "train/" + "x".repeat(150) + "/sample";
  assertEquals(samples.map((s) => [s.key, s.index, [...s.parts.keys()]]), [
    ["train/n01440764_10026", 0, ["jpeg", "cls"]],
    [long, 1, ["with.dots.json", "with.dots.cls"]],
    ["train/b", 2, ["seg.png"]],
  ]);
  assertEquals(parseLabel(samples[0]), 0);
  assertEquals(parseLabel(samples[1], undefined, "with.dots.cls"), 7);
  assertEquals(parseJson(samples[1], "with.dots.json"), { a: 1 });
  assertEquals(imageBytes(samples[0])[0], "jpeg");
});

Deno.test("groupSamples: a key seen again later starts a new sample; duplicates are flagged", async () => {
  const bytes = await buildShard([
    { key: "a", parts: { jpg: "1", cls: "1" } },
    { key: "b", parts: { cls: "2" } },
    { key: "a", parts: { cls: "3" } },
  ]);
  const s = await samplesOf(bytes);
  assertEquals(s.map((x) => x.key), ["a", "b", "a"]);
  const dup = await samplesOf(
    await buildShard([{ key: "a", parts: { cls: "1" } }, { key: "a", parts: { cls: "2" } }]),
  );
  assertEquals(dup.length, 1);
  assertEquals(dup[0].problem, 'duplicate ".cls" member in sample "a"');
});

Deno.test("parseLabel / imageBytes: errors name the sample and the reason", () => {
  const sample = (parts: Record<string, string>) => ({
    key: "k1",
    index: 0,
    parts: new Map(Object.entries(parts).map(([k, v]) => [k, new TextEncoder().encode(v)])),
  });
  assertEquals(parseLabel(sample({ cls: " 417\n" })), 417);
  assertThrows(() => parseLabel(sample({})), 'sample "k1" has no ".cls" member');
  assertThrows(() => parseLabel(sample({ cls: "dog" })), '".cls" is not an integer ("dog")');
  assertThrows(() => parseLabel(sample({ cls: "4.5" })), "not an integer");
  assertThrows(() => imageBytes(sample({ cls: "1", txt: "x" })), "has no image member");
  assertThrows(() => parseJson(sample({ json: "{" })), '".json" is not valid JSON');
});

Deno.test("groupSamples: a cut inside sample 12 still delivers sample 11, then rethrows", async () => {
  const twelve = Array.from({ length: 12 }, (_, i) => ({
    key: `s${String(i).padStart(2, "0")}`,
    parts: { jpg: new Uint8Array(600).fill(i), cls: String(i) },
  }));
  const bytes = await buildShard(twelve);
  const perSample = 512 + 1024 + 512 + 512; // jpg header + data, cls header + data
  const got = async (cut: number) => {
    const out: RawSample[] = [];
    let error: unknown;
    try {
      for await (const s of groupSamples(readTar(new Blob([bytes.slice(0, cut)]).stream()))) {
        out.push(s);
      }
    } catch (e) {
      error = e;
    }
    return { out, error };
  };
  // Inside sample 12's image: 11 samples, the 11th whole (and marked as the one cut at).
  const inImage = await got(11 * perSample + 700);
  assert(inImage.error instanceof TarError, String(inImage.error));
  assertEquals(inImage.out.map((s) => s.key), twelve.slice(0, 11).map((s) => s.key));
  assertEquals(parseLabel(inImage.out[10]), 10);
  assertEquals(inImage.out.map((s) => !!s.cutShort), [...Array(10).fill(false), true]);
  // Inside sample 12's label header: sample 12 comes too, with what was read of it.
  const inLabel = await got(11 * perSample + 1536 + 100);
  assertEquals(inLabel.out.length, 12);
  assertEquals([...inLabel.out[11].parts.keys()], ["jpg"]);
  assert(inLabel.out[11].cutShort);
});

Deno.test("parseLabel: labels out of range are bad_label, with and without a class count", () => {
  const sample = (cls: string): RawSample => ({
    key: "k",
    index: 0,
    parts: new Map([["cls", new TextEncoder().encode(cls)]]),
  });
  assertEquals(parseLabel(sample("9"), 10), 9);
  assertEquals(parseLabel(sample("0"), 10), 0);
  for (const [cls, labels] of [["10", 10], ["-1", 10], ["-1", undefined], ["4294967297", 10]]) {
    assertThrows(
      () => parseLabel(sample(cls as string), labels as number | undefined),
      "out of range",
    );
    try {
      parseLabel(sample(cls as string), labels as number | undefined);
    } catch (e) {
      assertEquals((e as SampleError).reason, "bad_label");
    }
  }
  // 4294967297 would wrap to 1 in the int32 label array: never accepted.
  assertThrows(
    () => parseLabel(sample("4294967297")),
    "label 4294967297 is out of range (0..2^31-1)",
  );
  assertThrows(() => parseLabel(sample("12"), 10), "label 12 is out of range (0..9 for 10 labels)");
});
