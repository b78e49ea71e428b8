import {
  groupSamples,
  imageBytes,
  parseJson,
  parseLabel,
  splitKey,
} from "../../lib/data/samples.ts";
import { readTar } from "../../lib/data/tar.ts";
import { assertEquals, assertThrows } from "../assert.ts";
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
  assertEquals(parseLabel(samples[1], "with.dots.cls"), 7);
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
