import { createValidLoader } from "../../lib/data/loader.ts";
import { assertEquals } from "../assert.ts";
import { startFakeGcs } from "../fake_gcs.ts";
import {
  buildShard,
  goodSamples,
  rangeResponse,
  serve,
  simpleTransform,
  writeShards,
} from "./helpers.ts";

const shards = await Promise.all(
  ["p", "q", "r"].map(async (p) => buildShard(await goodSamples(p, 9))),
);
const { paths } = await writeShards(shards);

async function keysOf(spec: string[], open = {}): Promise<string[]> {
  const loader = createValidLoader({
    shards: spec,
    batchSize: 4,
    transform: simpleTransform(4),
    workers: 1,
    withKeys: true,
    open,
    log: () => {},
  });
  const keys: string[] = [];
  for await (const b of loader) keys.push(...b.keys!.slice(0, b.count));
  return keys;
}

Deno.test("loader: http (with a stalled response), gs:// and pipe:cat give the same samples as files", async () => {
  const fromFiles = await keysOf(paths);
  assertEquals(fromFiles.length, 27);
  let stalls = 1;
  const srv = serve((path, req) => {
    const i = Number(path.match(/(\d)\.tar$/)![1]);
    if (i === 1 && stalls-- > 0) {
      // Half the shard, then silence.
      const half = shards[1].slice(0, shards[1].length >> 1);
      return new Response(new ReadableStream({ start: (c) => c.enqueue(half) }), {
        headers: { "content-length": String(shards[1].length) },
      });
    }
    return rangeResponse(shards[i], req);
  });
  const gcs = startFakeGcs(Object.fromEntries(shards.map((s, i) => [`bkt/d/s-${i}.tar`, s])));
  try {
    const http = await keysOf([0, 1, 2].map((i) => `${srv.url}/s-${i}.tar`), {
      stallTimeoutMs: 1000,
      backoffMs: 10,
    });
    assertEquals(http, fromFiles);
    assertEquals(srv.requests.filter((r) => r.includes("s-1.tar")).length, 2);
    assertEquals(
      await keysOf([0, 1, 2].map((i) => `gs://bkt/d/s-${i}.tar`), { gcsEndpoint: gcs.endpoint }),
      fromFiles,
    );
    assertEquals(await keysOf(paths.map((p) => `pipe:cat ${p}`)), fromFiles);
  } finally {
    await srv.close();
    await gcs.close();
  }
});
