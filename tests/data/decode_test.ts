import {
  decodeImage,
  decodeWithSharp,
  jpegComponents,
  jpegDecoder,
} from "../../lib/data/decode.ts";
import { loadTurboJpeg, pillowCmykToRgb } from "../../lib/data/turbojpeg.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
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

Deno.test("decodeImage: CMYK and YCCK JPEGs convert to RGB exactly as Pillow (9.4 and 12.3)", async () => {
  // Pillow-written Adobe CMYK, the same without its APP14 marker, libjpeg-turbo's YCCK, and a
  // photo: expected bytes are Pillow's Image.open(f).convert("RGB") (make_cmyk_fixtures.py).
  for (const name of ["cmyk-adobe", "cmyk-plain", "ycck", "cmyk-photo"]) {
    const jpg = await Deno.readFile(new URL(`${name}.jpg`, FIXTURES));
    const pillow = await Deno.readFile(new URL(`${name}.rgb`, FIXTURES));
    assertEquals(jpegComponents(jpg), 4, name);
    const img = await decodeImage(jpg);
    assertEquals(img.data.length, pillow.length, name);
    assertEquals(img.data, pillow, `${name}: decoder ${jpegDecoder()} differs from Pillow`);
    assertEquals((await decodeWithSharp(jpg)).data, pillow, `${name}: sharp differs from Pillow`);
  }
  // libvips' own (colour-managed) CMYK -> sRGB is far from Pillow's: what this replaced.
  const jpg = await Deno.readFile(new URL("cmyk-adobe.jpg", FIXTURES));
  const pillow = await Deno.readFile(new URL("cmyk-adobe.rgb", FIXTURES));
  const { default: sharp } = await import("sharp");
  const vips = await sharp(jpg).toColourspace("srgb").raw().toBuffer();
  let worst = 0;
  for (let i = 0; i < pillow.length; i++) worst = Math.max(worst, Math.abs(vips[i] - pillow[i]));
  assert(worst > 30, `libvips differs by ${worst}`);
});

Deno.test("pillowCmykToRgb: Pillow's cmyk2rgb on (inverted) CMYK", () => {
  const px = (c: number, m: number, y: number, k: number, inverted = false) =>
    Array.from(pillowCmykToRgb(new Uint8Array([c, m, y, k]), inverted));
  assertEquals(px(0, 0, 0, 0), [255, 255, 255]);
  assertEquals(px(0, 0, 0, 255), [0, 0, 0]);
  assertEquals(px(255, 0, 128, 0), [0, 255, 127]);
  // R = nk - round(C nk / 255) with nk = 255 - K: C 100, K 50 -> 205 - 80 = 125.
  assertEquals(px(100, 100, 100, 50), [125, 125, 125]);
  // Stored inverted (Adobe): the same pixel.
  assertEquals(px(155, 155, 155, 205, true), [125, 125, 125]);
  assertEquals(jpegComponents(new Uint8Array([1, 2, 3])), 0);
});
