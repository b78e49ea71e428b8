/**
 * The issue-12 acceptance scenarios: bad held-out shards give every good sample and count the
 * bad ones; out-of-range labels are counted; zero-byte shards and shards cut short stop a run.
 */
import { createTrainLoader, createValidLoader } from "../../lib/data/loader.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { buildShard, goodSamples, jpeg, serve, simpleTransform, writeShards } from "./helpers.ts";

const TASK = new URL("../../tasks/check_data.ts", import.meta.url).pathname;
const quiet = { log: () => {}, transform: simpleTransform(8), withKeys: true };

async function checkData(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

// Four held-out shards, 38 good samples in all: 10 + a corrupt JPEG, 10 + a sample without
// .cls, 10 + a non-numeric .cls, and 8 whole samples of a shard cut inside its 9th.
const good = await goodSamples("g", 38);
const corrupt = new Uint8Array(300).map((_, i) => i < 3 ? [0xff, 0xd8, 0xff][i] : (i * 13) & 255);
const cutSource = await buildShard([
  ...good.slice(30, 38),
  { key: "z-cut", parts: { jpg: await jpeg(40, 40, 9), cls: "1" } },
]);
// The 9th sample starts after the 8 whole ones; cut inside its image data.
let offset = 0;
for (const s of good.slice(30, 38)) {
  for (const body of Object.values(s.parts)) {
    offset += 512 + Math.ceil((typeof body === "string" ? body.length : body.length) / 512) * 512;
  }
}
const heldOut = await writeShards([
  await buildShard([...good.slice(0, 10), { key: "bad-jpeg", parts: { jpg: corrupt, cls: "3" } }]),
  await buildShard([...good.slice(10, 20), {
    key: "bad-nocls",
    parts: { jpg: await jpeg(8, 8, 1) },
  }]),
  await buildShard([
    ...good.slice(20, 30),
    { key: "bad-text", parts: { jpg: await jpeg(8, 8, 2), cls: "seven" } },
  ]),
  cutSource.slice(0, offset + 512 + 300),
], "held");

Deno.test("held-out shards: every good sample (38 of 38), the bad ones counted", async () => {
  for (const workers of [0, 2]) {
    const loader = createValidLoader({
      ...quiet,
      shards: heldOut.paths,
      batchSize: 5,
      workers,
      strict: false,
      maxSkipFraction: 1,
    });
    const keys: string[] = [];
    for await (const b of loader) keys.push(...b.keys!.slice(0, b.count));
    assertEquals(keys.sort(), good.map((g) => g.key), `workers ${workers}`);
    const s = loader.stats();
    assertEquals(s.samples, 38);
    assertEquals(s.skipped, { image_decode: 1, missing_label: 1, bad_label: 1, shard_read: 1 });
    assertEquals([s.shardsOk, s.shardsPartial, s.shardsFailed], [3, 1, 0]);
  }
  const r = await checkData(`${heldOut.dir}/held-{00..03}.tar`, "--json", "--workers", "0");
  assertEquals(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assertEquals(report.samples, 38);
  assertEquals(report.skipped, { image_decode: 1, missing_label: 1, bad_label: 1, shard_read: 1 });
  assertEquals([report.shards_whole, report.shards_partial, report.whole_fraction], [3, 1, 0.75]);
});

Deno.test("check-data --labels 10 --json: labels out of range are bad_label", async () => {
  const { dir } = await writeShards([
    await buildShard([
      ...(await goodSamples("ok", 4)),
      { key: "ten", parts: { jpg: await jpeg(8, 8, 3), cls: "10" } },
      { key: "minus", parts: { jpg: await jpeg(8, 8, 4), cls: "-1" } },
      { key: "wraps", parts: { jpg: await jpeg(8, 8, 5), cls: "4294967297" } },
    ]),
  ], "labels");
  const r = await checkData(`${dir}/labels-00.tar`, "--labels", "10", "--json", "--workers", "0");
  assertEquals(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assertEquals(report.samples, 4);
  assertEquals(report.skipped, { bad_label: 3 });
  assertEquals([report.labels.min_label, report.labels.max_label], [0, 3]);
  // Without --labels only -1 and the int32 overflow are out of range.
  const loose = JSON.parse((await checkData(`${dir}/labels-00.tar`, "--json")).stdout);
  assertEquals([loose.samples, loose.skipped], [5, { bad_label: 2 }]);
  // The train loader counts them too (labels from the config's class count).
  const loader = createTrainLoader({
    ...quiet,
    shards: `${dir}/labels-00.tar`,
    batchSize: 2,
    workers: 0,
    epochs: 1,
    labels: 10,
    maxSkipFraction: 1,
  });
  const labels: number[] = [];
  for await (const b of loader) labels.push(...b.labels.slice(0, b.count));
  assertEquals(labels.sort(), [0, 1, 2, 3]);
  assertEquals(loader.stats().skipped, { bad_label: 3 });
});

Deno.test("train: zero-byte shards stop the loader with a clear error (workers 0 and 2)", async () => {
  const { paths } = await writeShards(Array.from({ length: 4 }, () => new Uint8Array(0)), "zero");
  for (const workers of [0, 2]) {
    const loader = createTrainLoader({ ...quiet, shards: paths, batchSize: 2, workers });
    const err = await assertRejects(async () => {
      for await (const _ of loader) { /* until it fails */ }
    }, /no shard could be read.*empty \(0 bytes\), not a tar archive/);
    void err;
  }
});

Deno.test("train: shards all cut to 5% stop the loader: not read whole beyond the limit", async () => {
  const shards = [];
  for (let k = 0; k < 4; k++) {
    const whole = await buildShard(await goodSamples(`c${k}-`, 40));
    shards.push(whole.slice(0, Math.floor(whole.length * 0.05)));
  }
  const { paths } = await writeShards(shards, "cut");
  const loader = createTrainLoader({ ...quiet, shards: paths, batchSize: 2, workers: 0 });
  let delivered = 0;
  await assertRejects(
    async () => {
      for await (const b of loader) delivered += b.count;
    },
    /too many shards not read whole: 4 of 4 \(4 cut short, 0 unreadable; limit 1%\).*0 read whole, 0\.0%/,
  );
  assert(delivered < 4 * 40 * 0.1, `${delivered} delivered`);
  const s = loader.stats();
  assertEquals([s.shardsOk, s.shardsPartial], [0, 4]);
});

Deno.test("train: one shard cut among 200 whole ones is within a 1% limit", async () => {
  const whole = await buildShard(await goodSamples("w", 2));
  const cut = await buildShard(await goodSamples("x", 4));
  const list = Array.from({ length: 200 }, () => whole);
  list.push(cut.slice(0, Math.floor(cut.length * 0.6)));
  const { paths } = await writeShards(list, "many");
  const loader = createTrainLoader({
    ...quiet,
    shards: paths,
    batchSize: 4,
    workers: 0,
    epochs: 1,
  });
  let n = 0;
  for await (const b of loader) n += b.count;
  assert(n >= 401, String(n));
  assertEquals(loader.stats().shardsPartial, 1);
});

Deno.test("a cut inside sample 12 gives 11 samples: file, pipe: exiting, http with a short body", async () => {
  const twelve = (await goodSamples("s", 12)).map((s) => ({
    key: s.key,
    parts: { jpg: s.parts.jpg, cls: s.parts.cls },
  }));
  const bytes = await buildShard(twelve);
  let start12 = 0;
  for (const s of twelve.slice(0, 11)) {
    for (const body of Object.values(s.parts)) {
      start12 += 512 + Math.ceil((body as Uint8Array | string).length / 512) * 512;
    }
  }
  const cut = bytes.slice(0, start12 + 512 + 100); // inside sample 12's image data
  const { dir, paths } = await writeShards([cut], "cut12");
  const whole = (await writeShards([bytes], "whole12")).paths[0];
  const srv = serve((_path, req) => {
    // Announces the whole shard, sends the cut part, then closes the connection.
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(cut);
        c.close();
      },
    });
    void req;
    return new Response(body, { headers: { "content-length": String(bytes.length) } });
  });
  try {
    const specs = [
      paths[0],
      `pipe:head -c ${cut.length} ${whole}; exit 1`,
      `${srv.url}/cut.tar`,
    ];
    for (const spec of specs) {
      const loader = createValidLoader({
        ...quiet,
        shards: [spec],
        batchSize: 4,
        workers: 0,
        strict: false,
        maxSkipFraction: 1,
        open: { retries: 0, backoffMs: 1, stallTimeoutMs: 2000 },
      });
      const keys: string[] = [];
      for await (const b of loader) keys.push(...b.keys!.slice(0, b.count));
      assertEquals(keys, twelve.slice(0, 11).map((s) => s.key), spec);
      assertEquals(loader.stats().skipped, { shard_read: 1 }, spec);
      assertEquals(loader.stats().shardsPartial, 1, spec);
    }
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
