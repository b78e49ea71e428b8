/**
 * Resuming a train loader from a saved position: the batches that follow are the ones an
 * uninterrupted loader gives, bit for bit, for any cut point (mid-shard, mid-epoch, with
 * augmented copies straddling a batch end), without decoding what came before and without
 * opening shards that hold nothing still needed; a different worker count is refused.
 */
import type { Batch } from "../../lib/data/batch.ts";
import {
  createTrainLoader,
  type DataLoader,
  type TrainLoaderOptions,
  type TrainPosition,
} from "../../lib/data/loader.ts";
import { trainShardVisits } from "../../lib/data/order.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { calls } from "./counting_transform.ts";
import { buildShard, goodSamples, simpleTransform, writeShards } from "./helpers.ts";

const SIZE = 8;
const SHARDS = 6, PER_SHARD = 10;
const shardBytes = await Promise.all(
  Array.from(
    { length: SHARDS },
    async (_, s) => buildShard(await goodSamples(`s${s}-`, PER_SHARD)),
  ),
);

const COUNTING = new URL("./counting_transform.ts", import.meta.url).href;

function options(paths: string[], o: Partial<TrainLoaderOptions> = {}): TrainLoaderOptions {
  return {
    shards: paths,
    batchSize: 7,
    transform: simpleTransform(SIZE),
    workers: 0,
    shuffleSeed: 5,
    shuffleBuffer: 6,
    shuffleInitial: 3,
    withKeys: true,
    log: () => {},
    ...o,
  };
}

/** `n` batches, and the position after each. */
async function take(loader: DataLoader, n: number): Promise<[Batch[], TrainPosition[]]> {
  const out: Batch[] = [], pos: TrainPosition[] = [];
  if (n > 0) {
    for await (const b of loader) {
      out.push(b);
      // A round trip through JSON, as the training state stores it.
      pos.push(JSON.parse(JSON.stringify(loader.position())));
      if (out.length >= n) break;
    }
  }
  await loader.close();
  return [out, pos];
}

function same(a: Batch[], b: Batch[], what: string) {
  assertEquals(a.length, b.length, what);
  a.forEach((x, i) => {
    assertEquals(x.keys, b[i].keys, `${what}: keys of batch ${i}`);
    assertEquals(Array.from(x.labels), Array.from(b[i].labels), `${what}: labels of batch ${i}`);
    assert(x.images.every((v, j) => v === b[i].images[j]), `${what}: pixels of batch ${i}`);
  });
}

for (const workers of [0, 2]) {
  for (const repeats of [1, 3]) {
    Deno.test(`train resume: ${workers} workers, ${repeats} copies: continues bit for bit at any batch`, async () => {
      const { dir, paths } = await writeShards(shardBytes);
      try {
        const o = options(paths, { workers, augmentRepeats: repeats });
        const total = 24; // more than two epochs of 60 samples
        const [reference, positions] = await take(createTrainLoader(o), total);
        for (const cut of [1, 4, 9, 17]) {
          const [rest] = await take(
            createTrainLoader({ ...o, start: positions[cut - 1] }),
            total - cut,
          );
          same(rest, reference.slice(cut), `cut after batch ${cut}`);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

Deno.test("train resume: decodes only what follows, and opens no shard it does not need", async () => {
  const { dir, paths } = await writeShards(shardBytes);
  try {
    const transform = {
      kind: "module" as const,
      module: COUNTING,
      factory: "createCountingTransform",
      options: { imageSize: SIZE },
      imageSize: SIZE,
    };
    const o = options(paths, { transform, strict: true, augmentRepeats: 2 });
    const cut = 40, after = 2;
    calls.count = 0;
    const [reference, positions] = await take(createTrainLoader(o), cut + after);
    assert(calls.count >= (cut + after) * 7, `the uninterrupted run made ${calls.count} copies`);
    const position = positions[cut - 1];
    // Remove every shard that neither the cursor, the shuffle buffer nor the next visits use:
    // strict reading would fail on opening any of them.
    const cursor = position.cursors[0]!;
    const visits = [...trainShardVisits(SHARDS, 5, {
      processIndex: 0,
      processCount: 1,
      workerIndex: 0,
      workerCount: 1,
    }, 6)];
    const used = new Set<number>();
    for (const [v] of cursor.buffer.items) used.add(visits[v].shard);
    for (let v = cursor.visit; v < cursor.visit + 3; v++) used.add(visits[v].shard);
    assert(cursor.visit >= SHARDS * 2, `the cut is in epoch ${Math.floor(cursor.visit / SHARDS)}`);
    let removed = 0;
    for (let s = 0; s < SHARDS; s++) {
      if (!used.has(s)) {
        await Deno.remove(paths[s]);
        removed++;
      }
    }
    assert(removed > 0, "no shard could be removed");
    calls.count = 0;
    const [rest] = await take(createTrainLoader({ ...o, start: position }), after);
    same(rest, reference.slice(cut), "after removing unused shards");
    // Only the copies of the two batches (and of a sample straddling the cut) were made.
    assert(calls.count <= after * 7 + 2, `the resumed loader made ${calls.count} copies`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train resume: a position from another worker count is refused, naming both", async () => {
  const { dir, paths } = await writeShards(shardBytes);
  try {
    const [, positions] = await take(createTrainLoader(options(paths, { workers: 2 })), 3);
    assertThrows(
      () => createTrainLoader(options(paths, { workers: 3, start: positions[2] })),
      /saved with 2 loader worker\(s\), this loader has 3/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
