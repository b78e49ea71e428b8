/**
 * A tiny GCS JSON-API stand-in on 127.0.0.1 for tests: media download, object metadata, multipart
 * upload (with the md5Hash/crc32c the client validates), delete. Objects live in memory.
 */
import { createHash } from "node:crypto";

export interface FakeGcs {
  url: string;
  objects: Map<string, Uint8Array>;
  uploads: number;
  /** Fail the next N uploads with a 503 (to test that nothing is replaced). */
  failUploads: number;
  close(): Promise<void>;
}

export function startFakeGcs(): FakeGcs {
  const state = { objects: new Map<string, Uint8Array>(), uploads: 0, failUploads: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const obj = url.pathname.match(/^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/);
    if (obj) {
      const key = `${obj[1]}/${decodeURIComponent(obj[2])}`;
      const data = state.objects.get(key);
      if (req.method === "DELETE") {
        state.objects.delete(key);
        return new Response(null, { status: 204 });
      }
      if (!data) {
        return Response.json({ error: { code: 404, message: "No such object" } }, { status: 404 });
      }
      if (url.searchParams.get("alt") === "media") {
        return new Response(data as Uint8Array<ArrayBuffer>);
      }
      return Response.json(metadata(obj[1], decodeURIComponent(obj[2]), data));
    }
    const up = url.pathname.match(/^\/upload\/storage\/v1\/b\/([^/]+)\/o$/);
    if (up && req.method === "POST") {
      const body = new Uint8Array(await req.arrayBuffer());
      if (state.failUploads > 0) {
        state.failUploads--;
        return Response.json({ error: { code: 503, message: "try later" } }, { status: 503 });
      }
      const name = url.searchParams.get("name")!;
      const boundary = req.headers.get("content-type")!.match(/boundary=(.+)$/)![1];
      const data = mediaPart(body, boundary);
      state.objects.set(`${up[1]}/${name}`, data);
      state.uploads++;
      return Response.json(metadata(up[1], name, data));
    }
    console.log("fake gcs: unsupported", req.method, url.pathname, url.search);
    return Response.json({ error: { code: 400, message: "unsupported" } }, { status: 400 });
  });
  const port = (server.addr as Deno.NetAddr).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get objects() {
      return state.objects;
    },
    get uploads() {
      return state.uploads;
    },
    set failUploads(n: number) {
      state.failUploads = n;
    },
    get failUploads() {
      return state.failUploads;
    },
    close: () => server.shutdown(),
  };
}

function metadata(bucket: string, name: string, data: Uint8Array) {
  const crc = new Uint8Array(4);
  new DataView(crc.buffer).setUint32(0, crc32c(data));
  return {
    bucket,
    name,
    size: String(data.length),
    md5Hash: createHash("md5").update(data).digest("base64"),
    crc32c: btoa(String.fromCharCode(...crc)),
  };
}

/** The second part of a multipart/related body (the first is the JSON metadata). */
function mediaPart(body: Uint8Array, boundary: string): Uint8Array {
  const enc = new TextEncoder();
  const delim = enc.encode(`--${boundary}`);
  const find = (from: number) => {
    outer: for (let i = from; i <= body.length - delim.length; i++) {
      for (let j = 0; j < delim.length; j++) if (body[i + j] !== delim[j]) continue outer;
      return i;
    }
    return -1;
  };
  const second = find(find(0) + delim.length);
  const third = find(second + delim.length);
  let start = second + delim.length;
  while (
    !(body[start] === 13 && body[start + 1] === 10 && body[start + 2] === 13 &&
      body[start + 3] === 10)
  ) start++;
  return body.slice(start + 4, third - 2); // strip the CRLF before the closing delimiter
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
