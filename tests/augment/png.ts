/**
 * A small PNG decoder for the test fixtures: 8-bit, non-interlaced, gray / RGB / RGBA (alpha
 * dropped), filters 0-4, zlib via DecompressionStream.
 */
import type { RGBImage } from "../../lib/augment/image.ts";

export async function decodePng(bytes: Uint8Array, name = "png"): Promise<RGBImage> {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (bytes.length < 8 || sig.some((v, i) => bytes[i] !== v)) {
    throw new Error(`${name}: not a PNG file`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let width = 0, height = 0, colorType = -1;
  const idat: Uint8Array[] = [];
  while (pos + 8 <= bytes.length) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = view.getUint32(pos + 8);
      height = view.getUint32(pos + 12);
      const depth = body[8], interlace = body[12];
      colorType = body[9];
      if (depth !== 8 || interlace !== 0 || ![0, 2, 6].includes(colorType)) {
        throw new Error(
          `${name}: unsupported PNG (depth ${depth}, color type ${colorType}, interlace ${interlace})`,
        );
      }
    } else if (type === "IDAT") {
      idat.push(body);
    } else if (type === "IEND") {
      break;
    }
    pos += 12 + len;
  }
  if (width === 0 || idat.length === 0) throw new Error(`${name}: missing IHDR or IDAT`);
  const raw = await inflate(idat);
  const channels = colorType === 0 ? 1 : colorType === 2 ? 3 : 4;
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error(`${name}: truncated image data`);
  const pixels = unfilter(raw, width, height, channels, name);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += channels) {
    data[i * 3] = pixels[j];
    data[i * 3 + 1] = pixels[channels === 1 ? j : j + 1];
    data[i * 3 + 2] = pixels[channels === 1 ? j : j + 2];
  }
  return { width, height, data };
}

export async function readPng(path: string): Promise<RGBImage> {
  return await decodePng(await Deno.readFile(path), path);
}

async function inflate(parts: Uint8Array[]): Promise<Uint8Array> {
  const stream = new Blob(parts as BlobPart[]).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function unfilter(
  raw: Uint8Array,
  width: number,
  height: number,
  bpp: number,
  name: string,
): Uint8Array {
  const stride = width * bpp;
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1, dst = y * stride, up = dst - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[dst + x - bpp] : 0;
      const b = y > 0 ? out[up + x] : 0;
      const c = x >= bpp && y > 0 ? out[up + x - bpp] : 0;
      let pred: number;
      switch (filter) {
        case 0:
          pred = 0;
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = b;
          break;
        case 3:
          pred = (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`${name}: bad PNG filter type ${filter} on row ${y}`);
      }
      out[dst + x] = (raw[src + x] + pred) & 255;
    }
  }
  return out;
}
