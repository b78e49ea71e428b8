/**
 * Test helpers: shards built with modern-tar (an independent tar writer), JPEGs encoded by
 * sharp, and small local servers on 127.0.0.1.
 */
import { packTar } from "modern-tar";
import sharp from "sharp";

export interface SampleSpec {
  key: string;
  parts: Record<string, Uint8Array | string>;
}

/** A tar shard holding the samples' members in order (`key.ext`). */
export async function buildShard(samples: SampleSpec[]): Promise<Uint8Array> {
  const entries = samples.flatMap((s) =>
    Object.entries(s.parts).map(([ext, body]) => {
      const data = typeof body === "string" ? new TextEncoder().encode(body) : body;
      return {
        header: { name: `${s.key}.${ext}`, size: data.length, type: "file" as const },
        body: data,
      };
    })
  );
  return await packTar(entries);
}

/** A w x h RGB test image whose pixels depend on `seed`. */
export function testPixels(w: number, h: number, seed: number): Uint8Array {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      data[i] = (x * 7 + seed * 31) & 255;
      data[i + 1] = (y * 5 + seed * 17) & 255;
      data[i + 2] = ((x + y) * 3 + seed * 13) & 255;
    }
  }
  return data;
}

export async function jpeg(w: number, h: number, seed: number, quality = 90): Promise<Uint8Array> {
  const buf = await sharp(testPixels(w, h, seed), { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
  return new Uint8Array(buf);
}

export async function png(
  w: number,
  h: number,
  seed: number,
  channels: 1 | 3 | 4 = 3,
): Promise<Uint8Array> {
  const rgb = testPixels(w, h, seed);
  const data = new Uint8Array(w * h * channels);
  for (let p = 0; p < w * h; p++) {
    for (let c = 0; c < channels; c++) data[p * channels + c] = c < 3 ? rgb[p * 3 + c] : 200;
  }
  return new Uint8Array(
    await sharp(data, { raw: { width: w, height: h, channels } }).png().toBuffer(),
  );
}

/**
 * `n` good samples `{prefix}{i}` with a small JPEG and `.cls` = label(i). JPEG sizes vary so
 * that a wrong decode shows.
 */
export async function goodSamples(
  prefix: string,
  n: number,
  label: (i: number) => number = (i) => i % 10,
): Promise<SampleSpec[]> {
  const out: SampleSpec[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      key: `${prefix}${String(i).padStart(4, "0")}`,
      parts: { jpg: await jpeg(16 + (i % 5), 12 + (i % 3), i), cls: String(label(i)) },
    });
  }
  return out;
}

/** Writes shards to a fresh temp dir; returns their paths. */
export async function writeShards(
  shards: Uint8Array[],
  name = "shard",
): Promise<{ dir: string; paths: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "deit3-data-test-" });
  const paths: string[] = [];
  for (let i = 0; i < shards.length; i++) {
    const p = `${dir}/${name}-${String(i).padStart(2, "0")}.tar`;
    await Deno.writeFile(p, shards[i]);
    paths.push(p);
  }
  return { dir, paths };
}

/** The transform module tests hand to loaders (see simple_transform.ts). */
export const SIMPLE_TRANSFORM = new URL("./simple_transform.ts", import.meta.url).href;

export function simpleTransform(imageSize: number, options: Record<string, unknown> = {}) {
  return {
    kind: "module" as const,
    module: SIMPLE_TRANSFORM,
    factory: "createSimpleTransform",
    options: { imageSize, ...options },
    imageSize,
  };
}

/** A local HTTP server; `handler` gets the path and request. */
export function serve(
  handler: (path: string, req: Request) => Response | Promise<Response>,
): { url: string; close: () => Promise<void>; requests: string[] } {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const path = new URL(req.url).pathname;
      requests.push(
        `${req.method} ${path}${req.headers.get("range") ? ` ${req.headers.get("range")}` : ""}`,
      );
      return handler(path, req);
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
    requests,
  };
}

/** Serves `bytes` honouring `Range: bytes=N-`. */
export function rangeResponse(bytes: Uint8Array, req: Request): Response {
  const m = req.headers.get("range")?.match(/^bytes=(\d+)-$/);
  if (m) {
    const from = Number(m[1]);
    return new Response(new Uint8Array(bytes.subarray(from)), {
      status: 206,
      headers: {
        "content-length": String(bytes.length - from),
        "content-range": `bytes ${from}-${bytes.length - 1}/${bytes.length}`,
      },
    });
  }
  return new Response(new Uint8Array(bytes), {
    headers: { "content-length": String(bytes.length) },
  });
}

/** Collects a stream into one buffer. */
export async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
