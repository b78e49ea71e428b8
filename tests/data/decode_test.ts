import { decodeImage, decodeWithSharp, jpegDecoder } from "../../lib/data/decode.ts";
import { loadTurboJpeg } from "../../lib/data/turbojpeg.ts";
import { assertEquals, assertRejects } from "../assert.ts";
import { png, testPixels } from "./helpers.ts";

const FIXTURES = new URL("../fixtures/data/", import.meta.url);

Deno.test("decodeImage: matches Pillow's decode of the reference JPEG exactly", async () => {
  const jpg = await Deno.readFile(new URL("source-q90.jpg", FIXTURES));
  // PNG is lossless, so the PNG of Pillow's output is Pillow's output.
  const pillow = await decodeWithSharp(
    await Deno.readFile(new URL("source-q90-decoded.png", FIXTURES)),
  );
  const img = await decodeImage(jpg);
  assertEquals([img.width, img.height], [pillow.width, pillow.height]);
  assertEquals(img.data, pillow.data, `decoder ${jpegDecoder()} differs from Pillow`);
  // sharp (the fallback) too, on this image.
  assertEquals((await decodeWithSharp(jpg)).data, pillow.data);
});

Deno.test("decodeImage: libturbojpeg is used when installed", () => {
  const tj = loadTurboJpeg();
  if (!tj) {
    console.warn("libturbojpeg not installed here: JPEGs go through sharp");
    return;
  }
  assertEquals(jpegDecoder(), "turbojpeg");
});

Deno.test("decodeImage: PNG grey, RGB and RGBA all come out RGB (alpha dropped, grey expanded)", async () => {
  const rgb = testPixels(9, 7, 4);
  for (const channels of [1, 3, 4] as const) {
    const img = await decodeImage(await png(9, 7, 4, channels));
    assertEquals([img.width, img.height, img.data.length], [9, 7, 9 * 7 * 3]);
    if (channels === 1) {
      for (let p = 0; p < 63; p++) {
        assertEquals([img.data[p * 3 + 1], img.data[p * 3 + 2]], [rgb[p * 3], rgb[p * 3]]);
      }
    } else {
      assertEquals(img.data, rgb);
    }
  }
});

Deno.test("decodeImage: truncated and garbage JPEGs are errors", async () => {
  const jpg = await Deno.readFile(new URL("source-q90.jpg", FIXTURES));
  await assertRejects(
    () => decodeImage(jpg.slice(0, jpg.length >> 1)),
    /premature end|truncated|corrupt|decod/i,
  );
  await assertRejects(() => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3])));
  await assertRejects(() => decodeImage(new TextEncoder().encode("not an image at all")));
  await assertRejects(() => decodeImage(new Uint8Array(0)));
  // Both decoders refuse a cut file.
  await assertRejects(() => decodeWithSharp(jpg.slice(0, jpg.length >> 1)));
});

Deno.test("decodeImage: a bad JPEG does not spoil the next ones", async () => {
  const jpg = await Deno.readFile(new URL("source-q90.jpg", FIXTURES));
  const expected = await decodeImage(jpg);
  const bad = jpg.slice();
  bad.fill(0x27, 2, 40); // garbage right after SOI
  for (let i = 0; i < 3; i++) {
    await assertRejects(() => decodeImage(bad));
    assertEquals((await decodeImage(jpg)).data, expected.data);
  }
});
