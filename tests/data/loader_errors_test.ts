import { createTrainLoader, createValidLoader } from "../../lib/data/loader.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { buildShard, goodSamples, jpeg, serve, simpleTransform, writeShards } from "./helpers.ts";

const SIZE = 8;
const good = await goodSamples("g", 12);
const corruptJpeg = new Uint8Array(300).map((
  _,
  i,
) => (i < 3 ? [0xff, 0xd8, 0xff][i] : (i * 13) & 255));
const badShard = await buildShard([
  ...good.slice(0, 2),
  { key: "corrupt", parts: { jpg: corruptJpeg, cls: "1" } },
  { key: "nolabel", parts: { jpg: await jpeg(8, 8, 1) } },
  { key: "textlabel", parts: { jpg: await jpeg(8, 8, 2), cls: "cat" } },
  { key: "noimage", parts: { cls: "3", txt: "hello" } },
  { key: "dup", parts: { cls: "4" } },
  { key: "dup", parts: { cls: "4" } },
  ...good.slice(2, 4),
]);
const goodShard = await buildShard(good.slice(4, 12));
const whole = await buildShard(await goodSamples("t", 6));
const truncated = whole.slice(0, Math.floor(whole.length * 0.6));
const { dir, paths } = await writeShards([badShard, goodShard, truncated]);
const quiet = { log: () => {}, transform: simpleTransform(SIZE), withKeys: true };

Deno.test("train: bad samples and shards are skipped and counted by reason", async () => {
  const srv = serve((path) => new Response("no", { status: path.endsWith("404.tar") ? 404 : 500 }));
  const lines: string[] = [];
  try {
    const loader = createTrainLoader({
      ...quiet,
      log: (l) => lines.push(l),
      shards: [
        ...paths,
        `${srv.url}/404.tar`,
        `${srv.url}/500.tar`,
        "pipe:echo failing >&2; exit 2",
        `${dir}/missing.tar`,
      ],
      batchSize: 4,
      workers: 0,
      epochs: 1,
      maxSkipFraction: 0.9,
      open: { retries: 1, backoffMs: 5, stallTimeoutMs: 2000 },
    });
    const keys: string[] = [];
    for await (const b of loader) keys.push(...b.keys!.slice(0, b.count));
    const s = loader.stats();
    assertEquals(s.skipped, {
      image_decode: 1,
      missing_label: 1,
      bad_label: 1,
      missing_image: 1,
      duplicate_member: 1,
      shard_read: 1,
      shard_open: 4,
    });
    // 12 good + the good samples before the cut in the truncated shard.
    const cutGood = keys.filter((k) => k.startsWith("t")).length;
    assert(cutGood >= 1 && cutGood < 6, `${cutGood} samples before the cut`);
    assertEquals(keys.filter((k) => k.startsWith("g")).sort(), good.map((g) => g.key));
    assertEquals(s.samples, 12 + cutGood);
    // The truncated shard counts as read in part, not whole.
    assertEquals([s.shardsOk, s.shardsPartial, s.shardsFailed], [2, 1, 4]);
    const log = lines.join("\n");
    assert(log.includes(`skipped (image_decode): ${paths[0]}: sample "corrupt"`), log);
    assert(log.includes('sample "textlabel": ".cls" is not an integer ("cat")'), log);
    assert(log.includes("404.tar: HTTP 404"), log);
    assert(
      log.includes("pipe:echo failing >&2; exit 2: exited with status 2; stderr: failing"),
      log,
    );
    assert(/truncated/.test(log), log);
  } finally {
    await srv.close();
  }
});

Deno.test("train: fails when more than maxSkipFraction of the samples is bad", async () => {
  const loader = createTrainLoader({
    ...quiet,
    shards: [paths[0]],
    batchSize: 2,
    workers: 0,
    maxSkipFraction: 0.2,
    minSamplesForFraction: 5,
  });
  await assertRejects(async () => {
    for await (const _ of loader) { /* until it fails */ }
  }, /too many bad samples: \d+ of \d+ .*limit 20%/);
});

Deno.test("train: fails with a clear message when no shard can be read (also from a worker)", async () => {
  for (const workers of [0, 1]) {
    const loader = createTrainLoader({
      ...quiet,
      shards: ["pipe:echo nope-0 >&2; exit 3", "pipe:echo nope-1 >&2; exit 3"],
      batchSize: 2,
      workers,
    });
    await assertRejects(async () => {
      for await (const _ of loader) { /* until it fails */ }
    }, /no shard could be read.*exited with status 3; stderr: nope-\d/);
  }
});

Deno.test("train: when no shard can be read, one error and no line per shard (http 404s)", async () => {
  const srv = serve(() => new Response("gone", { status: 404 }));
  try {
    for (const workers of [0, 3]) {
      const lines: string[] = [];
      const loader = createTrainLoader({
        ...quiet,
        log: (l) => lines.push(l),
        shards: `${srv.url}/train-{00..17}.tar`,
        batchSize: 2,
        workers,
      });
      await assertRejects(
        async () => {
          for await (const _ of loader) { /* until it fails */ }
        },
        /no shard could be read.*the last: cannot open shard: .*train-\d\d\.tar: HTTP 404/,
      );
      assertEquals(lines, [], `workers ${workers}`);
    }
  } finally {
    await srv.close();
  }
});

Deno.test("train: local shards none of which exists: one error naming the spec, at creation", () => {
  assertThrows(
    () => createTrainLoader({ ...quiet, shards: `${dir}/nope-{0..17}.tar`, batchSize: 2 }),
    `no shard found: none of the 18 shards of "${dir}/nope-{0..17}.tar" exists (the first: ${dir}/nope-0.tar)`,
  );
  assertThrows(
    () => createValidLoader({ ...quiet, shards: [`${dir}/nope.tar`], batchSize: 2 }),
    `no shard found: ${dir}/nope.tar does not exist`,
  );
});

Deno.test("train: a transform that throws or gives the wrong size is a counted skip", async () => {
  const loader = createTrainLoader({
    ...quiet,
    transform: simpleTransform(SIZE, { failWidth: 17 }),
    shards: [paths[1]],
    batchSize: 4,
    workers: 0,
    epochs: 1,
    maxSkipFraction: 0.9,
  });
  for await (const _ of loader) { /* drain */ }
  // good samples 4..11 have widths 16 + i % 5: i = 6, 11 are 17 wide.
  assertEquals(loader.stats().skipped, { transform: 2 });
});

Deno.test("valid: strict by default; the error names the shard and the sample", async () => {
  for (const workers of [0, 1]) {
    const loader = createValidLoader({
      ...quiet,
      shards: [paths[1], paths[0]],
      batchSize: 4,
      workers,
    });
    await assertRejects(async () => {
      for await (const _ of loader) { /* until it fails */ }
    }, `${paths[0]}: sample "corrupt": ".jpg" not a decodable JPEG`);
  }
  const loader = createValidLoader({ ...quiet, shards: [paths[2]], batchSize: 4, workers: 0 });
  await assertRejects(async () => {
    for await (const _ of loader) { /* until it fails */ }
  }, /reading the shard failed after \d samples: .*truncated/);
});

Deno.test("valid: strict false counts the skips instead", async () => {
  const loader = createValidLoader({
    ...quiet,
    shards: [paths[0]],
    batchSize: 4,
    workers: 0,
    strict: false,
    maxSkipFraction: 0.9,
  });
  let n = 0;
  for await (const b of loader) n += b.count;
  assertEquals(n, 4);
  assertEquals(loader.stats().skipped.image_decode, 1);
});
