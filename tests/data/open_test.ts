import { OpenError, openShard } from "../../lib/data/open.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { startFakeGcs } from "../fake_gcs.ts";
import { readShard } from "../../lib/data/shard_reader.ts";
import { buildShard, collect, rangeResponse, serve, writeShards } from "./helpers.ts";

// A stall timeout long enough not to fire by accident on a loaded machine, short enough for tests.
const FAST = { stallTimeoutMs: 1000, retries: 3, backoffMs: 10 };
const payload = new Uint8Array(50_000).map((_, i) => (i * 31 + 7) & 255);

Deno.test("open: local path and file: URL; a missing file names the path", async () => {
  const { dir, paths } = await writeShards([payload]);
  try {
    assertEquals(await collect(await openShard(paths[0])), payload);
    assertEquals(await collect(await openShard(`file://${paths[0]}`)), payload);
    await assertRejects(() => openShard(`${dir}/missing.tar`), `${dir}/missing.tar: no such file`);
    await assertRejects(() => openShard("ftp://host/x.tar"), "unsupported scheme");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("open http: 200, 404 (permanent, not retried), 500 retried then served", async () => {
  let fails = 2;
  const srv = serve((path, req) => {
    if (path === "/ok.tar") return rangeResponse(payload, req);
    if (path === "/flaky.tar" && fails-- > 0) return new Response("busy", { status: 500 });
    if (path === "/flaky.tar") return rangeResponse(payload, req);
    return new Response("nope", { status: 404 });
  });
  try {
    assertEquals(await collect(await openShard(`${srv.url}/ok.tar`, FAST)), payload);
    const err = await openShard(`${srv.url}/gone.tar?sig=secret`, FAST).catch((e) => e);
    assert(err instanceof OpenError && err.permanent, String(err));
    assert(err.message.includes("/gone.tar?...: HTTP 404"), err.message);
    assert(!err.message.includes("secret"), "query strings stay out of messages");
    assertEquals(srv.requests.filter((r) => r.includes("gone")).length, 1);
    assertEquals(await collect(await openShard(`${srv.url}/flaky.tar`, FAST)), payload);
    assertEquals(srv.requests.filter((r) => r.includes("flaky")).length, 3);
    await assertRejects(
      () => openShard(`${srv.url}/flaky-forever.tar`, { ...FAST, retries: 1 }).then(collect),
      "HTTP 404",
    );
  } finally {
    await srv.close();
  }
});

Deno.test("open http: a 500 that never clears fails after the retries, naming the shard", async () => {
  const srv = serve(() => new Response("down", { status: 503 }));
  try {
    await assertRejects(
      () => openShard(`${srv.url}/x.tar`, { ...FAST, retries: 2 }),
      /x\.tar: failed after 3 attempts at byte 0: .*HTTP 503/,
    );
  } finally {
    await srv.close();
  }
});

Deno.test("open http: a stalled response times out and resumes with Range", async () => {
  let first = true;
  const srv = serve((_path, req) => {
    if (first) {
      first = false;
      // Sends 20,000 bytes, then nothing ever again.
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(payload.slice(0, 20_000));
        },
      });
      return new Response(body, { headers: { "content-length": String(payload.length) } });
    }
    return rangeResponse(payload, req);
  });
  try {
    const t0 = performance.now();
    assertEquals(await collect(await openShard(`${srv.url}/s.tar`, FAST)), payload);
    assert(performance.now() - t0 < 5000);
    assertEquals(srv.requests, ["GET /s.tar", "GET /s.tar bytes=20000-"]);
  } finally {
    await srv.close();
  }
});

Deno.test("open http: a server that ignores Range restarts from 0 and the prefix is dropped", async () => {
  let first = true;
  const srv = serve(() => {
    if (first) {
      first = false;
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(payload.slice(0, 12_345));
          c.error(new Error("connection reset"));
        },
      });
      return new Response(body, { headers: { "content-length": String(payload.length) } });
    }
    return new Response(new Uint8Array(payload)); // 200, whole body again
  });
  try {
    assertEquals(await collect(await openShard(`${srv.url}/s.tar`, FAST)), payload);
  } finally {
    await srv.close();
  }
});

Deno.test("open http: HF_TOKEN goes to the hub (HF_ENDPOINT) and nowhere else", async () => {
  const seen: Record<string, string | null> = {};
  const srv = serve((path, req) => {
    seen[path] = req.headers.get("authorization");
    return rangeResponse(payload.slice(0, 10), req);
  });
  const other = serve((path, req) => {
    seen["other" + path] = req.headers.get("authorization");
    return rangeResponse(payload.slice(0, 10), req);
  });
  try {
    const opts = { ...FAST, hfEndpoint: srv.url, hfToken: "hf_secret" };
    await collect(await openShard(`${srv.url}/datasets/x/resolve/main/a.tar`, opts));
    await collect(await openShard(`${other.url}/a.tar`, opts));
    assertEquals(seen["/datasets/x/resolve/main/a.tar"], "Bearer hf_secret");
    assertEquals(seen["other/a.tar"], null);
    // Without a token, no header at all.
    await collect(
      await openShard(`${srv.url}/b.tar`, { ...FAST, hfEndpoint: srv.url, hfToken: "" }),
    );
    assertEquals(seen["/b.tar"], null);
  } finally {
    await srv.close();
    await other.close();
  }
});

Deno.test("open pipe: stdout of the command; 0 and 141 succeed, other codes name the command", async () => {
  const { dir, paths } = await writeShards([payload]);
  try {
    assertEquals(await collect(await openShard(`pipe:cat ${paths[0]}`)), payload);
    assertEquals(
      await collect(await openShard(`pipe:printf abc; exit 141`)),
      new TextEncoder().encode("abc"),
    );
    await assertRejects(
      async () => await collect(await openShard(`pipe:cat ${dir}/nothing.tar`)),
      /pipe:cat .*nothing\.tar: exited with status 1; stderr: .*No such file/,
    );
    await assertRejects(
      async () => await collect(await openShard(`pipe:printf partial; exit 3`)),
      "pipe:printf partial; exit 3: exited with status 3",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("open pipe: a silent command is killed after the stall timeout", async () => {
  const t0 = performance.now();
  await assertRejects(
    async () => await collect(await openShard("pipe:sleep 30", { stallTimeoutMs: 200 })),
    "pipe:sleep 30: wrote nothing for 200 ms and was killed",
  );
  assert(performance.now() - t0 < 5000);
});

Deno.test("open pipe: stopping early kills the command", async () => {
  const stream = await openShard("pipe:yes", {});
  const reader = stream.getReader();
  const { value } = await reader.read();
  assert(value && value.length > 0);
  await reader.cancel(); // must return (the process is killed), not hang
});

Deno.test("open gs: the real @google-cloud/storage client against a local endpoint", async () => {
  const gcs = startFakeGcs({ "bkt/dir/a.tar": payload });
  try {
    const opts = { ...FAST, gcsEndpoint: gcs.endpoint };
    assertEquals(await collect(await openShard("gs://bkt/dir/a.tar", opts)), payload);
    assert(gcs.requests.some((r) => r.startsWith("GET /storage/v1/b/bkt/o/dir%2Fa.tar?alt=media")));
    const err = await openShard("gs://bkt/missing.tar", opts).catch((e) => e);
    assert(err instanceof OpenError && err.permanent, String(err));
    assert(
      err.message.includes("gs://bkt/missing.tar") && err.message.includes("404"),
      err.message,
    );
    // A server error on the download is retried.
    gcs.failNext("bkt/dir/a.tar", 503, 1);
    assertEquals(await collect(await openShard("gs://bkt/dir/a.tar", opts)), payload);
  } finally {
    await gcs.close();
  }
});

/** Processes whose command line contains `text` (from /proc; Linux). */
function processesWith(text: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      if (cmd.includes(text)) out.push(Number(e.name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

async function gone(text: string): Promise<boolean> {
  for (let i = 0; i < 50 && processesWith(text).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return processesWith(text).length === 0;
}

Deno.test("open pipe: the whole process group is killed, no child is left behind", async () => {
  const { dir, paths } = await writeShards([await buildShard([{ key: "a", parts: { cls: "1" } }])]);
  try {
    // The tar ends, the reader stops: sh and its `sleep` both go.
    for (let visit = 0; visit < 3; visit++) {
      const samples = [];
      for await (const s of readShard(`pipe:cat ${paths[0]}; sleep 37.125`)) samples.push(s.key);
      assertEquals(samples, ["a"]);
    }
    assert(await gone("sleep 37.125"), `left behind: ${processesWith("sleep 37.125")}`);
    // A stalled pipeline: every member of it is killed.
    await assertRejects(
      async () => await collect(await openShard("pipe:sleep 38.25 | cat", { stallTimeoutMs: 200 })),
      "wrote nothing for 200 ms",
    );
    assert(await gone("sleep 38.25"), `left behind: ${processesWith("sleep 38.25")}`);
    // Cancelled by the caller's signal.
    const abort = new AbortController();
    const stream = await openShard("pipe:printf x; sleep 39.5", {}, abort.signal);
    const reader = stream.getReader();
    await reader.read();
    abort.abort();
    assert(await gone("sleep 39.5"), `left behind: ${processesWith("sleep 39.5")}`);
    await reader.cancel().catch(() => {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("open http: an error body that echoes the token is redacted in the message", async () => {
  const token = "hf_" + "q".repeat(30);
  const srv = serve((_path, req) =>
    new Response(`bad request, you sent authorization: ${req.headers.get("authorization")}`, {
      status: 401,
    })
  );
  try {
    const opts = { ...FAST, hfEndpoint: srv.url, hfToken: token };
    const err = await openShard(`${srv.url}/datasets/x/a.tar`, opts).catch((e) => e);
    assert(err instanceof OpenError, String(err));
    assert(!err.message.includes(token), err.message);
    assert(err.message.includes("HTTP 401"), err.message);
    assert(err.message.includes("authorization: Bearer ***"), err.message);
  } finally {
    await srv.close();
  }
});
