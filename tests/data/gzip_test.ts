/**
 * gzip shards (`.tgz`, `.tar.gz`), as webdataset reads them: the same samples as the plain tar
 * from every source (file, http(s) with a dropped connection resumed by Range, gs://, pipe:),
 * damage reported as a shard failure, skips and train resume working on them; and shards of
 * other data (webdataset's tendata.tar / mpdata.tar) refused by check-data.
 *
 * `sampleTgz` rebuilds webdataset's own `testdata/sample.tgz`: 90 samples `10`..`99`, each a
 * small `.png` and a `.cls` digit, compressed by the runtime's CompressionStream (gzip).
 */
import { createTrainLoader, createValidLoader, type DataLoader } from "../../lib/data/loader.ts";
import { readShard, ShardError } from "../../lib/data/shard_reader.ts";
import { assert, assertEquals } from "../assert.ts";
import { startFakeGcs } from "../fake_gcs.ts";
import {
  buildShard,
  collect,
  goodSamples,
  png,
  rangeResponse,
  type SampleSpec,
  serve,
  simpleTransform,
} from "./helpers.ts";

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return await collect(
    new Blob([new Uint8Array(bytes)]).stream().pipeThrough(new CompressionStream("gzip")),
  );
}

const digits: SampleSpec[] = [];
for (let i = 10; i < 100; i++) {
  digits.push({ key: String(i), parts: { cls: String(i % 10), png: await png(8, 8, i, 1) } });
}
const sampleTar = await buildShard(digits);
const sampleTgz = await gzip(sampleTar);
const dir = await Deno.makeTempDir({ prefix: "deit3-gzip-test-" });
await Deno.writeFile(`${dir}/sample.tar`, sampleTar);
await Deno.writeFile(`${dir}/sample.tgz`, sampleTgz);
await Deno.writeFile(`${dir}/sample.tar.gz`, sampleTgz);
// A gzip shard under a name that does not say so: recognized by its bytes.
await Deno.writeFile(`${dir}/sample-named-plain.tar`, sampleTgz);

async function keysOf(url: string, open = {}): Promise<string[]> {
  const keys: string[] = [];
  for await (const s of readShard(url, open)) {
    assertEquals([...s.parts.keys()].sort(), ["cls", "png"], s.key);
    keys.push(s.key);
  }
  return keys;
}

const KEYS = digits.map((d) => d.key);

Deno.test("gzip shards: webdataset's sample.tgz layout gives its 90 samples from a file", async () => {
  assert(sampleTgz.length < sampleTar.length / 2, "the fixture is really compressed");
  assertEquals(await keysOf(`${dir}/sample.tar`), KEYS);
  for (const name of ["sample.tgz", "sample.tar.gz", "sample-named-plain.tar"]) {
    assertEquals(await keysOf(`${dir}/${name}`), KEYS, name);
    assertEquals(await keysOf(`file:${dir}/${name}`), KEYS, `file:${name}`);
  }
  // Through the loader, decoded: 90 images, labels as written.
  const loader = createValidLoader({
    shards: `${dir}/sample.tgz`,
    batchSize: 32,
    transform: simpleTransform(4),
    workers: 0,
    withKeys: true,
    log: () => {},
  });
  const labels: number[] = [];
  for await (const b of loader) labels.push(...b.labels.slice(0, b.count));
  assertEquals(labels, KEYS.map((k) => Number(k) % 10));
  assertEquals(loader.stats().skipped, {});
});

Deno.test("gzip shards: http (a connection dropped mid-shard, resumed by Range), gs:// and pipe:", async () => {
  let drops = 1;
  const srv = serve((_path, req) => {
    if (drops-- > 0) {
      // Half the compressed bytes, then the connection ends early.
      const half = sampleTgz.slice(0, sampleTgz.length >> 1);
      return new Response(new ReadableStream({ start: (c) => (c.enqueue(half), c.close()) }), {
        headers: { "content-length": String(sampleTgz.length) },
      });
    }
    return rangeResponse(sampleTgz, req);
  });
  const gcs = startFakeGcs({ "bkt/wds/sample.tgz": sampleTgz });
  try {
    assertEquals(await keysOf(`${srv.url}/sample.tgz`, { backoffMs: 5 }), KEYS);
    assert(srv.requests.some((r) => /bytes=\d+-/.test(r)), srv.requests.join("\n"));
    assertEquals(await keysOf("gs://bkt/wds/sample.tgz", { gcsEndpoint: gcs.endpoint }), KEYS);
    assertEquals(await keysOf(`pipe:cat ${dir}/sample.tgz`), KEYS);
  } finally {
    await srv.close();
    await gcs.close();
  }
});

Deno.test("gzip shards: a cut or damaged file fails the shard after the samples before, naming gzip", async () => {
  const cut = `${dir}/cut.tgz`;
  await Deno.writeFile(cut, sampleTgz.slice(0, Math.floor(sampleTgz.length * 0.6)));
  const damaged = `${dir}/damaged.tgz`;
  const bytes = sampleTgz.slice();
  bytes[bytes.length >> 1] ^= 0x55;
  await Deno.writeFile(damaged, bytes);
  for (const url of [cut, damaged]) {
    let n = 0, e: unknown;
    try {
      for await (const _ of readShard(url)) n++;
    } catch (err) {
      e = err;
    }
    assert(e instanceof ShardError, `${url}: expected a ShardError, got ${e}`);
    assertEquals((e as ShardError).reason, "shard_read");
    // Damage is found by gzip's checksum at the end, or earlier as a broken tar header.
    const pattern = url === cut ? /gzip: .*cut short or damaged/ : /gzip: |corrupt tar header/;
    assert(pattern.test((e as Error).message), (e as Error).message);
    assert(n < 90 || url === damaged, `${url}: ${n} samples before the failure`);
  }
});

Deno.test("gzip shards: bad samples inside are skipped and counted; train resume continues bit for bit", async () => {
  const shards: string[] = [];
  for (let s = 0; s < 3; s++) {
    const samples = await goodSamples(`g${s}-`, 8);
    if (s === 1) samples.splice(3, 0, { key: "broken", parts: { jpg: "not a jpeg", cls: "1" } });
    const path = `${dir}/train-${s}.tar.gz`;
    await Deno.writeFile(path, await gzip(await buildShard(samples)));
    shards.push(path);
  }
  const o = {
    shards,
    batchSize: 5,
    transform: simpleTransform(8),
    workers: 0,
    shuffleSeed: 3,
    shuffleBuffer: 4,
    shuffleInitial: 2,
    withKeys: true,
    maxSkipFraction: 0.5,
    log: () => {},
  };
  const take = async (loader: DataLoader, n: number) => {
    const keys: string[][] = [], positions: unknown[] = [];
    for await (const b of loader) {
      keys.push(b.keys!.slice(0, b.count));
      positions.push(JSON.parse(JSON.stringify(loader.position())));
      if (keys.length >= n) break;
    }
    const skipped = loader.stats().skipped;
    await loader.close();
    return { keys, positions, skipped };
  };
  const whole = await take(createTrainLoader(o), 10); // two epochs of 24 good samples
  assert((whole.skipped.image_decode ?? 0) >= 2, "the broken sample, once per epoch");
  for (const cut of [2, 5]) {
    const rest = await take(
      createTrainLoader({ ...o, start: whole.positions[cut - 1] as never }),
      10 - cut,
    );
    assertEquals(rest.keys, whole.keys.slice(cut), `resumed after batch ${cut}`);
  }
});

// check-data: webdataset's tendata.tar (tenbin tensors) and mpdata.tar (msgpack) hold samples
// with neither an image nor a label; equivalents with the same member layout.
const TASK = new URL("../../tasks/check_data.ts", import.meta.url).pathname;

async function checkData(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("check-data: sample.tgz passes; shards with nothing usable exit 1, naming every missing part", async () => {
  const ok = await checkData(`${dir}/sample.tgz`, "--workers", "0", "--json");
  assertEquals(ok.code, 0, ok.stderr);
  assertEquals(JSON.parse(ok.stdout).samples, 90);

  const other = (ext: string, size: number) =>
    buildShard(
      Array.from({ length: 10 }, (_, i) => ({
        key: String(i).padStart(6, "0"),
        parts: { [ext]: new Uint8Array(size).fill(i) },
      })),
    );
  await Deno.writeFile(`${dir}/tendata.tar`, await other("ten", 12736));
  await Deno.writeFile(`${dir}/mpdata.tar`, await other("mp", 7));
  for (const [name, ext] of [["tendata", "ten"], ["mpdata", "mp"]]) {
    const json = await checkData(`${dir}/${name}.tar`, "--workers", "0", "--json");
    assertEquals(json.code, 1, `${name}: ${json.stdout}${json.stderr}`);
    const report = JSON.parse(json.stdout);
    assertEquals([report.samples, report.shards_unusable], [0, 1]);
    assertEquals(report.skipped, { missing_image: 10 });
    const r = await checkData(`${dir}/${name}.tar`, "--workers", "0");
    assertEquals(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
    assert(
      r.stderr.includes(
        `sample "000000" has no image member (.jpg/.jpeg/.png/.webp) and no label member ` +
          `(.cls); it has .${ext}`,
      ),
      r.stderr,
    );
    assert(r.stderr.includes("check-data: no usable sample in 1 shard read(s)"), r.stderr);
  }
  // One unusable shard among good ones still fails the check, and says which counts.
  const mixed = await checkData(`${dir}/sample.tgz::${dir}/mpdata.tar`, "--workers", "0");
  assertEquals(mixed.code, 1, mixed.stdout + mixed.stderr);
  assert(mixed.stdout.includes("samples: 90 in"), mixed.stdout);
  assert(
    mixed.stderr.includes(
      "check-data: 1 of 2 shard read(s) gave no usable sample (0 unreadable, 1 with every sample skipped)",
    ),
    mixed.stderr,
  );
});

Deno.test("gzip shards: cleanup", async () => {
  await Deno.remove(dir, { recursive: true });
});
