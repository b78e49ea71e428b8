/**
 * The one fake GCS server of the tests: a minimal GCS JSON API on 127.0.0.1, enough for
 * `@google-cloud/storage` to list, read (metadata, media with Range), upload (multipart and
 * resumable, with the md5/crc32c hashes the client checks) and delete objects, held in memory.
 * Failures can be injected into downloads (`failNext`) and uploads (`failUploads`).
 */
import { createHash } from "node:crypto";

export interface FakeGcs {
  endpoint: string;
  objects: Map<string, Uint8Array>;
  requests: string[];
  /** Uploads completed. */
  readonly uploads: number;
  /** Fail the next N uploads with a 503 (to test that nothing is replaced). */
  failUploads: number;
  /** Makes the next `n` media downloads of `object` fail with `status`. */
  failNext(object: string, status: number, n?: number): void;
  close(): Promise<void>;
}

export function startFakeGcs(initial: Record<string, Uint8Array> = {}): FakeGcs {
  const objects = new Map(Object.entries(initial));
  const requests: string[] = [];
  const failures = new Map<string, { status: number; n: number }>();
  const sessions = new Map<string, { key: string; parts: Uint8Array[] }>();
  let sessionId = 0;
  const state = { uploads: 0, failUploads: 0 };
  const stored = (key: string, data: Uint8Array) => {
    objects.set(key, data);
    state.uploads++;
    return json(metadata(key, data));
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const path = url.pathname.replace(/^\/storage\/v1/, "");
    requests.push(
      `${req.method} ${url.pathname}${url.search}${
        req.headers.get("content-range") ? " " + req.headers.get("content-range") : ""
      }`,
    );
    const obj = path.match(/^\/b\/([^/]+)\/o\/([^/]+)$/);
    const list = path.match(/^\/b\/([^/]+)\/o\/?$/);
    if (req.method === "GET" && list) {
      const prefix = url.searchParams.get("prefix") ?? "";
      const items = [...objects]
        .filter(([k]) => k.startsWith(`${list[1]}/${prefix}`))
        .map(([k, d]) => metadata(k, d));
      return json({ kind: "storage#objects", items });
    }
    if (req.method === "GET" && obj) {
      const key = `${obj[1]}/${decodeURIComponent(obj[2])}`;
      const data = objects.get(key);
      if (!data) return json({ error: { code: 404, message: `No such object: ${key}` } }, 404);
      if (url.searchParams.get("alt") !== "media") return json(metadata(key, data));
      const fail = failures.get(key);
      if (fail && fail.n > 0) {
        fail.n--;
        return json({ error: { code: fail.status, message: "injected failure" } }, fail.status);
      }
      const from = Number(req.headers.get("range")?.match(/^bytes=(\d+)-/)?.[1] ?? 0);
      return new Response(new Uint8Array(data.subarray(from)), {
        status: from ? 206 : 200,
        headers: { "content-length": String(data.length - from) },
      });
    }
    const up = url.pathname.match(/^\/upload\/storage\/v1\/b\/([^/]+)\/o$/);
    const session = url.pathname.match(/^\/upload\/session\/(\d+)$/);
    if ((req.method === "POST" && up || req.method === "PUT" && session) && state.failUploads > 0) {
      await req.arrayBuffer();
      state.failUploads--;
      return json({ error: { code: 503, message: "try later" } }, 503);
    }
    if (req.method === "POST" && up) {
      const type = url.searchParams.get("uploadType");
      if (type === "resumable") {
        const meta = await req.json().catch(() => ({}));
        const name = url.searchParams.get("name") ?? meta.name;
        const id = String(++sessionId);
        sessions.set(id, { key: `${up[1]}/${name}`, parts: [] });
        return new Response(null, {
          headers: { location: `${new URL(req.url).origin}/upload/session/${id}` },
        });
      }
      if (type === "multipart") {
        const body = new Uint8Array(await req.arrayBuffer());
        const { name, data } = parseMultipart(body, req.headers.get("content-type") ?? "");
        return stored(`${up[1]}/${url.searchParams.get("name") ?? name}`, data);
      }
    }
    if (req.method === "PUT" && session) {
      const s = sessions.get(session[1]);
      if (!s) return json({ error: { code: 404, message: "no session" } }, 404);
      s.parts.push(new Uint8Array(await req.arrayBuffer()));
      const total = s.parts.reduce((n, p) => n + p.length, 0);
      const range = req.headers.get("content-range") ?? "";
      // "bytes A-B/*" is one chunk of more to come; "bytes 0-*/*" (a stream of unknown length
      // in one request) and "bytes A-B/N" complete the upload.
      if (/^bytes \d+-\d+\/\*$/.test(range)) {
        return new Response(null, { status: 308, headers: { range: `bytes=0-${total - 1}` } });
      }
      sessions.delete(session[1]);
      return stored(s.key, concat(s.parts));
    }
    if (req.method === "DELETE" && obj) {
      objects.delete(`${obj[1]}/${decodeURIComponent(obj[2])}`);
      return new Response(null, { status: 204 });
    }
    return json({ error: { code: 400, message: `fake GCS: ${req.method} ${url.pathname}` } }, 400);
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    objects,
    requests,
    get uploads() {
      return state.uploads;
    },
    get failUploads() {
      return state.failUploads;
    },
    set failUploads(n: number) {
      state.failUploads = n;
    },
    failNext(object, status, n = 1) {
      failures.set(object, { status, n });
    },
    close: () => server.shutdown(),
  };
}

function metadata(key: string, data: Uint8Array) {
  const slash = key.indexOf("/");
  return {
    kind: "storage#object",
    bucket: key.slice(0, slash),
    name: key.slice(slash + 1),
    size: String(data.length),
    md5Hash: createHash("md5").update(data).digest("base64"),
    crc32c: crc32cBase64(data),
  };
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function parseMultipart(
  body: Uint8Array,
  contentType: string,
): { name?: string; data: Uint8Array } {
  const boundary = contentType.match(/boundary=([^;]+)/)?.[1];
  if (!boundary) throw new Error("fake GCS: multipart without boundary");
  const sep = new TextEncoder().encode(`--${boundary}`);
  const idx: number[] = [];
  for (let i = 0; i + sep.length <= body.length; i++) {
    let ok = true;
    for (let j = 0; j < sep.length && ok; j++) ok = body[i + j] === sep[j];
    if (ok) idx.push(i);
  }
  const part = (k: number) => {
    const raw = body.subarray(idx[k] + sep.length, idx[k + 1]);
    const text = new TextDecoder("latin1").decode(raw.subarray(0, Math.min(raw.length, 2000)));
    const headerEnd = text.indexOf("\r\n\r\n") + 4;
    return raw.subarray(headerEnd, raw.length - 2);
  };
  const meta = JSON.parse(new TextDecoder().decode(part(0)));
  return { name: meta.name, data: new Uint8Array(part(1)) };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

let table: Uint32Array | undefined;
function crc32cBase64(data: Uint8Array): string {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      table[i] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]) & 255] ^ (crc >>> 8);
  crc = (crc ^ 0xffffffff) >>> 0;
  const bytes = new Uint8Array([crc >>> 24, (crc >>> 16) & 255, (crc >>> 8) & 255, crc & 255]);
  return btoa(String.fromCharCode(...bytes));
}
