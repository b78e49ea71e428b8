import type { Batch } from "../../lib/data/batch.ts";
import { createValidLoader, type ValidLoaderOptions } from "../../lib/data/loader.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { buildShard, goodSamples, simpleTransform, writeShards } from "./helpers.ts";

const SIZE = 4;
const PX = 3 * SIZE * SIZE;
// Five shards of uneven sizes: 27 samples, keys s<shard>-<i>.
const COUNTS = [7, 3, 10, 1, 6];
const shardSamples = await Promise.all(
  COUNTS.map((n, s) => goodSamples(`s${s}-`, n, (i) => 100 * s + i)),
);
const { paths } = await writeShards(await Promise.all(shardSamples.map(buildShard)));
const ALL = shardSamples.flat().map((x) => x.key);

async function run(o: Partial<ValidLoaderOptions>): Promise<Batch[]> {
  const loader = createValidLoader({
    shards: paths,
    batchSize: 4,
    transform: simpleTransform(SIZE),
    workers: 0,
    withKeys: true,
    log: () => {},
    ...o,
  });
  const out: Batch[] = [];
  for await (const b of loader) out.push(b);
  return out;
}

function realRows(batches: Batch[]) {
  return batches.flatMap((b) =>
    Array.from({ length: b.count }, (_, r) => ({ key: b.keys![r], label: b.labels[r] }))
  );
}

Deno.test("valid: one host reads everything in shard order; last batch padded with -1 and mask 0", async () => {
  for (const workers of [0, 1, 3]) {
    const batches = await run({ workers });
    const r = realRows(batches);
    assertEquals(r.map((x) => x.key), ALL, `order with ${workers} workers`);
    for (const x of r) {
      const [s, i] = x.key.slice(1).split("-").map(Number);
      assertEquals(x.label, 100 * s + i);
    }
    assertEquals(batches.length, 7);
    const last = batches[6];
    assertEquals(last.count, 3);
    assertEquals(Array.from(last.labels), [403, 404, 405, -1]);
    assertEquals(Array.from(last.mask!), [1, 1, 1, 0]);
    assertEquals(last.images.subarray(3 * PX).every((v) => v === 0), true);
    for (const b of batches.slice(0, 6)) assertEquals(Array.from(b.mask!), [1, 1, 1, 1]);
  }
});

Deno.test("valid: a simulated 4-host split sees every sample exactly once, same batch count", async () => {
  for (const hostSplit of ["samples", "shards"] as const) {
    for (const workers of hostSplit === "samples" ? [0, 2] : [0]) {
      const hosts = await Promise.all(
        [0, 1, 2, 3].map((h) =>
          run({ processIndex: h, processCount: 4, hostSplit, workers, batchSize: 3 })
        ),
      );
      const keys = hosts.flatMap((b) => realRows(b).map((x) => x.key));
      assertEquals(keys.slice().sort(), ALL.slice().sort(), `${hostSplit}, ${workers} workers`);
      // Each host's own rows keep the data's order.
      for (const b of hosts) {
        const mine = realRows(b).map((x) => x.key);
        assertEquals(mine, ALL.filter((k) => mine.includes(k)));
      }
      const lengths = hosts.map((b) => b.length);
      if (hostSplit === "samples") {
        // 27 samples over 4 hosts: at most 7 each -> 3 batches of 3 on every host.
        assertEquals(lengths, [3, 3, 3, 3]);
        for (const b of hosts) {
          for (const batch of b) {
            assertEquals(batch.mask!.reduce((a, v) => a + v, 0), batch.count);
          }
        }
      }
    }
  }
});

Deno.test("valid: steps pads with empty batches, and refuses data that needs more", async () => {
  const batches = await run({ processIndex: 1, processCount: 4, hostSplit: "shards", steps: 4 });
  assertEquals(batches.length, 4);
  // Host 1 of 4 holds shard 1 (3 samples): one real batch, then empty ones.
  assertEquals(batches.map((b) => b.count), [3, 0, 0, 0]);
  assertEquals(Array.from(batches[3].labels), [-1, -1, -1, -1]);
  await assertRejects(() => run({ steps: 2 }), "validation data needs more than steps = 2 batches");
});

Deno.test("valid: bad options are named", () => {
  let threw = "";
  try {
    createValidLoader({ shards: paths, batchSize: 0, transform: simpleTransform(SIZE) });
  } catch (e) {
    threw = (e as Error).message;
  }
  assert(threw.includes("batch size"), threw);
  try {
    createValidLoader({
      shards: paths,
      batchSize: 2,
      transform: simpleTransform(SIZE),
      processIndex: 4,
      processCount: 4,
    });
  } catch (e) {
    threw = (e as Error).message;
  }
  assert(threw.includes("process index 4 is not in [0, 4)"), threw);
});
