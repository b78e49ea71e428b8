import { assert, assertEquals } from "../assert.ts";
import { buildShard, goodSamples, jpeg, writeShards } from "./helpers.ts";

const TASK = new URL("../../tasks/check_data.ts", import.meta.url).pathname;

async function checkData(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const a = await goodSamples("a", 30, (i) => i % 3);
const shard0 = await buildShard(a.slice(0, 15));
const shard1 = await buildShard([
  ...a.slice(15),
  { key: "bad", parts: { jpg: new Uint8Array([0xff, 0xd8, 0xff, 0, 1]), cls: "1" } },
  { key: "nolabel", parts: { jpg: await jpeg(20, 20, 1) } },
]);
const { dir } = await writeShards([shard0, shard1], "part");
const spec = `${dir}/part-{00..01}.tar::${dir}/part-02.tar`;

Deno.test("check-data --json: samples, skips by reason, label summary, img/s", async () => {
  const r = await checkData(spec, "--json", "--workers", "0");
  // The missing third shard gave nothing usable: reported, and the check fails.
  assertEquals(r.code, 1, r.stderr);
  assert(r.stderr.includes("1 of 3 shard read(s) gave no usable sample (1 unreadable"), r.stderr);
  const report = JSON.parse(r.stdout);
  assertEquals(report.shards, 3);
  assertEquals(report.samples, 30);
  assertEquals(report.skipped, { image_decode: 1, missing_label: 1, shard_open: 1 });
  assertEquals(report.labels.classes, 3);
  assertEquals([report.labels.min_per_class, report.labels.max_per_class], [10, 10]);
  assert(report.img_per_s > 0);
});

Deno.test("check-data: train and valid transforms through lib/augment, --limit, workers", async () => {
  const train = await checkData(
    `${dir}/part-{00..01}.tar`,
    "--transform",
    "train",
    "--image-size",
    "16",
    "--limit",
    "20",
    "--workers",
    "2",
    "--json",
  );
  assertEquals(train.code, 0, train.stderr);
  assertEquals(JSON.parse(train.stdout).samples, 20);
  const valid = await checkData(
    `${dir}/part-00.tar`,
    "--transform",
    "valid",
    "--image-size",
    "8",
    "--test-crop-ratio",
    "1",
  );
  assertEquals(valid.code, 0, valid.stderr);
  assert(valid.stdout.includes("samples: 15 in"), valid.stdout);
  assert(
    valid.stdout.includes("labels: 3 classes seen (0..2), 5..5 samples per class"),
    valid.stdout,
  );
});

Deno.test("check-data: bad arguments exit 2, unreadable specs exit 1, each with a clear message", async () => {
  const r = await checkData(spec, "--transform", "sideways");
  assertEquals(r.code, 2);
  assert(r.stderr.includes('--transform must be train, valid or none, got "sideways"'), r.stderr);
  const env = await checkData("$NOT_SET_ANYWHERE/x.tar");
  assertEquals(env.code, 1);
  assert(env.stderr.includes("$NOT_SET_ANYWHERE"), env.stderr);
  const none = await checkData(`${dir}/nothing-{0..1}.tar`, "--workers", "0");
  assertEquals(none.code, 1);
  assert(none.stderr.includes("no shard found: none of the 2 shards"), none.stderr);
});
