/**
 * Image bytes -> RGB, behind one function.
 *
 * The decoder was picked by measurement (bench/data.ts; one core of the 2-core VM, 500x375
 * JPEGs at quality 90): libjpeg-turbo through FFI decodes about 1.7x faster than Pillow, sharp
 * (libvips) about 0.6x, pure-JS or wasm decoders less. So JPEGs go to libjpeg-turbo when the
 * system has it, and to sharp otherwise; PNG and WebP go to sharp. The format is read from the
 * bytes, not the extension: ImageNet has PNGs and CMYK files named `.JPEG`.
 *
 * CMYK (and YCCK) JPEGs are converted to RGB as Pillow does (`pillowCmykToRgb`: Adobe's inverted
 * CMYK assumed, no colour management), by either decoder; both match Pillow 9.4 and 12.3 exactly
 * on the fixtures.
 *
 * `DEIT3_JPEG_DECODER=sharp` forces sharp for JPEGs too.
 */
import type { RGBImage } from "../augment/image.ts";
import { JpegError, loadTurboJpeg, pillowCmykToRgb } from "./turbojpeg.ts";

export type DecoderName = "turbojpeg" | "sharp";

/** Decodes a JPEG, PNG or WebP to 8-bit RGB (alpha dropped, grey expanded), as Pillow's `convert("RGB")`. */
export async function decodeImage(bytes: Uint8Array): Promise<RGBImage> {
  if (isJpeg(bytes) && jpegDecoder() === "turbojpeg") {
    try {
      return loadTurboJpeg()!.decode(bytes);
    } catch (e) {
      if (!(e instanceof JpegError && e.unsupported)) throw new DecodeError(e as Error);
    }
  }
  return await decodeWithSharp(bytes);
}

/** Which decoder JPEGs go to in this thread. */
export function jpegDecoder(): DecoderName {
  const forced = Deno.env.get("DEIT3_JPEG_DECODER");
  if (forced === "sharp") return "sharp";
  return loadTurboJpeg() ? "turbojpeg" : "sharp";
}

export class DecodeError extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
    this.name = "DecodeError";
  }
}

/** Through sharp (libvips), for every format it knows. */
export async function decodeWithSharp(bytes: Uint8Array): Promise<RGBImage> {
  const sharp = await loadSharp();
  if (isJpeg(bytes) && jpegComponents(bytes) === 4) return await cmykWithSharp(sharp, bytes);
  try {
    const { data, info } = await sharp(bytes, { failOn: "truncated" })
      .toColourspace("srgb")
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`decoded to ${info.channels} channels of ${data.length} bytes, not RGB`);
    }
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (e) {
    if (!isJpeg(bytes)) throw new DecodeError(e as Error);
    // The same words as the turbojpeg path, so a message does not depend on the decoder.
    const reason = (e as Error).message.split("\n")[0].replace(/^.*?VipsJpeg: /, "");
    throw new DecodeError(new Error(`not a decodable JPEG (${reason})`, { cause: e }));
  }
}

/** libvips' CMYK values (Pillow's after its `CMYK;I` read), then Pillow's conversion to RGB. */
async function cmykWithSharp(sharp: Sharp, bytes: Uint8Array): Promise<RGBImage> {
  try {
    const { data, info } = await sharp(bytes, { failOn: "truncated" })
      .pipelineColourspace("cmyk")
      .toColourspace("cmyk")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 4 || data.length !== info.width * info.height * 4) {
      throw new Error(`CMYK JPEG decoded to ${info.channels} channels, not 4`);
    }
    const cmyk = new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { width: info.width, height: info.height, data: pillowCmykToRgb(cmyk, false) };
  } catch (e) {
    throw new DecodeError(e as Error);
  }
}

/** The component count in a JPEG's frame header (SOFn), or 0 when none is found. */
export function jpegComponents(b: Uint8Array): number {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return 0;
    const marker = b[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    const length = (b[i + 2] << 8) | b[i + 3];
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return i + 9 < b.length ? b[i + 9] : 0;
    }
    if (marker === 0xda) return 0; // scan data before any frame header
    i += 2 + length;
  }
  return 0;
}

function isJpeg(b: Uint8Array): boolean {
  return b.length > 2 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

type Sharp = typeof import("npm:sharp@0.35.5").default;
let sharpModule: Promise<Sharp> | undefined;

/** sharp, loaded on first use (a native addon that workers decoding with FFI do not need). */
function loadSharp(): Promise<Sharp> {
  // deno-lint-ignore no-import-prefix -- full specifiers: mod.ts imports from anywhere
  sharpModule ??= import("npm:sharp@0.35.5").then(({ default: sharp }) => {
    // One image at a time per loader worker; the loader's parallelism is the worker count.
    sharp.cache(false);
    sharp.concurrency(1);
    return sharp;
  });
  return sharpModule;
}
