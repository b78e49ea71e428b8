import { IMAGENET_VARIANTS } from "../../lib/data/imagenet.ts";
import { assert, assertEquals } from "../assert.ts";
import { startFakeGcs } from "../fake_gcs.ts";
import { rangeResponse, serve } from "./helpers.ts";

const TASK = new URL("../../tasks/prepare_imagenet.ts", import.meta.url).pathname;
const TOKEN = "hf_test_secret_token";
const REPO = "timm/imagenet-1k-wds";

/** Deterministic content per shard name. */
function content(name: string): Uint8Array {
  const n = 3000 + (name.length * 97 + name.charCodeAt(name.length - 5) * 13) % 2000;
  return new Uint8Array(n).map((_, i) => (i * 7 + name.charCodeAt(i % name.length)) & 255);
}

/** A fake hub: tree API in pages of 500, resolve URLs, auth required, some shards broken. */
function fakeHub(broken: Set<string>) {
  const files = IMAGENET_VARIANTS["1k"].files;
  const srv = serve((path, req) => {
    if (req.headers.get("authorization") !== `Bearer ${TOKEN}`) {
      return new Response("unauthorized", { status: 401 });
    }
    const url = new URL(req.url);
    if (path === `/api/datasets/${REPO}/tree/main`) {
      const from = Number(url.searchParams.get("cursor") ?? 0);
      const page = files.slice(from, from + 500).map((f) => ({
        type: "file",
        path: f,
        size: 134,
        lfs: { size: content(f).length },
      }));
      const headers: Record<string, string> = {};
      if (from + 500 < files.length) {
        headers.link = `<${url.origin}${path}?cursor=${from + 500}>; rel="next"`;
      }
      return Response.json([{ type: "file", path: ".gitattributes", size: 10 }, ...page], {
        headers,
      });
    }
    const m = path.match(new RegExp(`^/datasets/${REPO}/resolve/main/(.+)$`));
    if (m && !broken.has(m[1])) return rangeResponse(content(m[1]), req);
    if (m) return new Response("boom", { status: 500 });
    return new Response("not found", { status: 404 });
  });
  return srv;
}

async function run(args: string[], hub: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, ...args],
    env: { HF_ENDPOINT: hub, HF_TOKEN: TOKEN },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(!text.includes(TOKEN), "the token must never be printed");
  return { code: out.code, text };
}

Deno.test("prepare-imagenet: copies to a directory, resumes, reports failures, verifies sizes", async () => {
  const broken = new Set(["imagenet1k-train-0003.tar"]);
  const hub = fakeHub(broken);
  const dir = await Deno.makeTempDir();
  try {
    const files = IMAGENET_VARIANTS["1k"].files.slice(0, 5);
    // One complete shard already there; one with the wrong size (an interrupted copy).
    await Deno.writeFile(`${dir}/${files[0]}`, content(files[0]));
    await Deno.writeFile(`${dir}/${files[1]}`, content(files[1]).slice(0, 100));
    const first = await run(
      ["--dest", dir, "--limit", "5", "--workers", "2", "--retries", "1"],
      hub.url,
    );
    assertEquals(first.code, 1, first.text);
    assert(first.text.includes("5 shards, 1 already complete, 4 to copy"), first.text);
    assert(first.text.includes("copied 3 shards"), first.text);
    assert(
      first.text.includes("failed imagenet1k-train-0003.tar:") && first.text.includes("HTTP 500"),
      first.text,
    );
    for (const f of [files[0], files[1], files[2], files[4]]) {
      assertEquals(await Deno.readFile(`${dir}/${f}`), content(f), f);
    }
    assertEquals(
      hub.requests.filter((r) => r.includes("resolve/main/imagenet1k-train-0000")).length,
      0,
    );
    const leftovers = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
      n.endsWith(".partial")
    );
    assertEquals(leftovers, []);
    // Fixed upstream: the rerun copies only the missing shard.
    broken.clear();
    hub.requests.length = 0;
    const second = await run(["--dest", dir, "--limit", "5"], hub.url);
    assertEquals(second.code, 0, second.text);
    assert(second.text.includes("4 already complete, 1 to copy"), second.text);
    assertEquals(hub.requests.filter((r) => r.includes("/resolve/")), [
      "GET /datasets/timm/imagenet-1k-wds/resolve/main/imagenet1k-train-0003.tar",
    ]);
    assertEquals(await Deno.readFile(`${dir}/${files[3]}`), content(files[3]));
  } finally {
    await hub.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("prepare-imagenet: to gs:// through @google-cloud/storage, and --dry-run lists all 1,088", async () => {
  const hub = fakeHub(new Set());
  const gcs = startFakeGcs();
  try {
    const env = { STORAGE_EMULATOR_HOST: gcs.endpoint };
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", TASK, "--dest", "gs://bkt/in1k", "--limit", "3"],
      env: { HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN, ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, text);
    for (const f of IMAGENET_VARIANTS["1k"].files.slice(0, 3)) {
      assertEquals(gcs.objects.get(`bkt/in1k/${f}`), content(f), f);
    }
    const dry = await run(["--dest", "/nonexistent/dir", "--dry-run"], hub.url);
    assertEquals(dry.code, 0, dry.text);
    assert(dry.text.includes("1088 shards, 0 already complete, 1088 to copy"), dry.text);
    assert(
      dry.text.includes(
        "would copy " + hub.url +
          "/datasets/timm/imagenet-1k-wds/resolve/main/imagenet1k-validation-63.tar",
      ),
      dry.text,
    );
  } finally {
    await hub.close();
    await gcs.close();
  }
});

Deno.test("prepare-imagenet: a bad token is a clear error", async () => {
  const hub = fakeHub(new Set());
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", TASK, "--dest", "/tmp/x", "--dry-run"],
      env: { HF_ENDPOINT: hub.url, HF_TOKEN: "wrong" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1);
    assert(text.includes("HTTP 401") && text.includes("set HF_TOKEN"), text);
    assert(!text.includes("wrong"), text);
  } finally {
    await hub.close();
  }
});

Deno.test("progress: byte and duration formatting", async () => {
  const { formatBytes, formatDuration, Progress } = await import("../../lib/data/progress.ts");
  assertEquals(formatBytes(999), "999 B");
  assertEquals(formatBytes(146_000_000_000), "146.0 GB");
  assertEquals(formatDuration(59), "59s");
  assertEquals(formatDuration(3725), "1h02m");
  assertEquals(formatDuration(125), "2m05s");
  const lines: string[] = [];
  const p = new Progress(2000, 2, { write: (t) => lines.push(t), tty: false });
  p.add(1000);
  p.fileDone();
  p.finish();
  assert(lines.at(-1)!.startsWith("1/2 files  1.0 KB / 2.0 KB (50.0%)"), lines.join("|"));
});

Deno.test("prepare-imagenet --dry-run: no HF_TOKEN is the first error, before any request", async () => {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, "--dest", "/nonexistent/in1k", "--dry-run"],
    env: { HF_TOKEN: "", HF_ENDPOINT: "" },
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 1, text);
  assert(text.includes("HF_TOKEN is not set: timm/imagenet-1k-wds is gated"), text);
  assert(performance.now() - t < 15_000);
});

Deno.test("prepare-imagenet: a hub that never answers fails within the listing timeout", async () => {
  const { prepareImagenet } = await import("../../lib/data/imagenet.ts");
  // Accepts connections and never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const c of listener) held.push(c);
  })();
  const hub = `http://127.0.0.1:${listener.addr.port}`;
  const t = performance.now();
  let message = "";
  try {
    await prepareImagenet({
      variant: "1k",
      dest: "/nonexistent/in1k",
      dryRun: true,
      open: { hfEndpoint: hub, hfToken: TOKEN },
      listTimeoutMs: 300,
    });
  } catch (e) {
    message = (e as Error).message;
  } finally {
    listener.close();
    for (const c of held) c.close();
  }
  assert(performance.now() - t < 5000, `${performance.now() - t} ms`);
  assert(
    message.includes(`cannot reach the Hugging Face hub at ${hub} (no answer within 0.3 s)`),
    message,
  );
});
