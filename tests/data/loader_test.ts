import type { Batch } from "../../lib/data/batch.ts";
import { createTrainLoader, type DataLoader } from "../../lib/data/loader.ts";
import { Rng } from "../../lib/ir/rng.ts";
import { assert, assertEquals } from "../assert.ts";
import { buildShard, goodSamples, simpleTransform, writeShards } from "./helpers.ts";

const SIZE = 8;
const PX = 3 * SIZE * SIZE;

// Three shards of 20 good samples: keys a0000.., b0000.., c0000..; label = index % 10.
const shardBytes = await Promise.all(
  ["a", "b", "c"].map(async (p) => buildShard(await goodSamples(p, 20))),
);
const { paths } = await writeShards(shardBytes);
const ALL_KEYS = ["a", "b", "c"].flatMap((p) =>
  Array.from({ length: 20 }, (_, i) => `${p}${String(i).padStart(4, "0")}`)
);

async function drain(loader: DataLoader, maxBatches = Infinity): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader) {
    out.push(b);
    if (out.length >= maxBatches) break;
  }
  await loader.close();
  return out;
}

function rows(batches: Batch[]): { key: string; label: number; draw: number; width: number }[] {
  return batches.flatMap((b) =>
    Array.from({ length: b.count }, (_, r) => ({
      key: b.keys![r],
      label: b.labels[r],
      draw: b.images[r * PX],
      width: b.images[r * PX + 1],
    }))
  );
}

function train(o: Partial<Parameters<typeof createTrainLoader>[0]> = {}) {
  return createTrainLoader({
    shards: paths,
    batchSize: 8,
    transform: simpleTransform(SIZE),
    workers: 0,
    shuffleSeed: 7,
    epochs: 1,
    shuffleBuffer: 16,
    shuffleInitial: 4,
    withKeys: true,
    log: () => {},
    ...o,
  });
}

/** The first draw of the documented per-copy stream, computed here independently. */
function expectedDraw(seed: number, epoch: number, key: string, copy: number): number {
  const shard = "abc".indexOf(key[0]);
  const index = Number(key.slice(1));
  return Math.floor(Rng.fromSeed(seed).child(2, epoch, shard, index, copy).uniform() * 256);
}

Deno.test("train: one epoch yields every sample once, labels intact, last batch padded", async () => {
  const batches = await drain(train());
  const r = rows(batches);
  assertEquals(r.map((x) => x.key).sort(), ALL_KEYS);
  for (const x of r) assertEquals(x.label, Number(x.key.slice(1)) % 10);
  for (const x of r) {
    assertEquals(x.width, 16 + (Number(x.key.slice(1)) % 5), `decoded width of ${x.key}`);
  }
  assertEquals(batches.length, 8);
  assertEquals(batches.map((b) => b.count), [8, 8, 8, 8, 8, 8, 8, 4]);
  assertEquals(Array.from(batches[7].labels.subarray(4)), [-1, -1, -1, -1]);
  assertEquals(batches[0].images.length, 8 * PX);
});

Deno.test("train: the order is fixed by the seed, differs between seeds and between epochs", async () => {
  const a = rows(await drain(train({ epochs: 2 }))).map((x) => x.key);
  const b = rows(await drain(train({ epochs: 2 }))).map((x) => x.key);
  const c = rows(await drain(train({ epochs: 2, shuffleSeed: 8 }))).map((x) => x.key);
  assertEquals(a, b);
  assert(a.join() !== c.join(), "another seed, another order");
  assertEquals(a.length, 120);
  assert(a.slice(0, 60).join() !== a.slice(60).join(), "epoch 1 is shuffled anew");
  // Samples are mixed across shards, not read shard after shard.
  assert(new Set(a.slice(0, 16).map((k) => k[0])).size > 1);
});

Deno.test("train: each augmented copy draws from Rng(seed).child(2, epoch, shard, sample, copy)", async () => {
  const r = rows(await drain(train({ epochs: 2, augmentSeed: 99 })));
  // The shuffle buffer mixes the epochs at their boundary, so match each key's two rows to the
  // two epochs' draws as a set.
  const byKey = new Map<string, number[]>();
  for (const x of r) byKey.set(x.key, [...(byKey.get(x.key) ?? []), x.draw]);
  assertEquals(byKey.size, 60);
  for (const [key, d] of byKey) {
    const want = [expectedDraw(99, 0, key, 0), expectedDraw(99, 1, key, 0)];
    assertEquals(d.sort(), want.sort(), key);
  }
});

Deno.test("train: augmentation per sample is the same with 0, 1 or 3 workers and 2 hosts", async () => {
  const draws = (batches: Batch[]) => new Map(rows(batches).map((x) => [x.key, x.draw]));
  const inline = draws(await drain(train()));
  const one = draws(await drain(train({ workers: 1 })));
  const three = draws(await drain(train({ workers: 3 })));
  const hosts = new Map([
    ...draws(await drain(train({ workers: 2, processIndex: 0, processCount: 2 }))),
    ...draws(await drain(train({ workers: 2, processIndex: 1, processCount: 2 }))),
  ]);
  assertEquals(inline.size, 60);
  for (const m of [one, three, hosts]) {
    assertEquals(new Map([...m].sort()), new Map([...inline].sort()));
  }
});

Deno.test("train: hosts and workers read disjoint shards that together cover the data", async () => {
  const h0 = rows(await drain(train({ workers: 2, processIndex: 0, processCount: 2, epochs: 2 })));
  const h1 = rows(await drain(train({ workers: 2, processIndex: 1, processCount: 2, epochs: 2 })));
  // Over two epochs (6 shard visits dealt round-robin), each host reads 3 shards' worth.
  assertEquals(h0.length + h1.length, 120);
  const all = [...h0, ...h1].map((x) => x.key).sort();
  assertEquals(all, [...ALL_KEYS, ...ALL_KEYS].sort());
  // With workers the order is still fixed by the seed and the worker count.
  const again = rows(
    await drain(train({ workers: 2, processIndex: 0, processCount: 2, epochs: 2 })),
  );
  assertEquals(again.map((x) => x.key), h0.map((x) => x.key));
});

Deno.test("train: repeated augmentation interleaves copies as concat(batch[i::r])", async () => {
  const batches = await drain(train({ augmentRepeats: 3, batchSize: 6, epochs: 1 }), 3);
  for (const b of batches) {
    const k = b.keys!;
    // items s0c0 s0c1 s0c2 s1c0 s1c1 s1c2 -> rows s0c0 s1c0 s0c1 s1c1 s0c2 s1c2
    assertEquals([k[0], k[2], k[4]], [k[0], k[0], k[0]]);
    assertEquals([k[1], k[3], k[5]], [k[1], k[1], k[1]]);
    assert(k[0] !== k[1]);
    for (let copy = 0; copy < 3; copy++) {
      assertEquals(b.images[2 * copy * PX], expectedDraw(7, 0, k[0], copy));
      assertEquals(b.images[(2 * copy + 1) * PX], expectedDraw(7, 0, k[1], copy));
    }
  }
});

Deno.test("train: endless by default, and bounded: a paused consumer stops the reading", async () => {
  const loader = createTrainLoader({
    shards: paths.map((p) => `pipe:cat ${p}`),
    batchSize: 8,
    transform: simpleTransform(SIZE),
    workers: 1,
    prefetch: 1,
    shuffleBuffer: 8,
    shuffleInitial: 2,
    log: () => {},
  });
  const it = loader[Symbol.asyncIterator]();
  for (let i = 0; i < 12; i++) await it.next(); // 96 samples: more than one epoch (60)
  const before = loader.stats().samples;
  await new Promise((r) => setTimeout(r, 400));
  const after = loader.stats().samples;
  // At most the batch in flight plus the one being built may be read while paused.
  assert(after - before <= 16, `read ${after - before} samples while paused`);
  assert(loader.stats().shardsOk >= 2);
  await loader.close();
});
