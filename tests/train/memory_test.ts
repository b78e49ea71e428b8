/**
 * The memory check before a run: parameter counts against timm's published ones, absurd sizes
 * refused by `deno task train` within seconds with nothing written, naming the key and the
 * memory, and integers beyond 2^53 refused by the config reader.
 */
import { resolveConfig } from "../../lib/config/mod.ts";
import { checkMemory, estimateMemory, parameterCount } from "../../lib/train/memory.ts";
import { assert, assertEquals } from "../assert.ts";
import { makeDataset, tinyConfig, withDir } from "./e2e_helpers.ts";

const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;
const CONFIGS = new URL("../../configs/", import.meta.url).pathname;

Deno.test("parameterCount: the recipes' ViTs have timm's parameter counts", () => {
  // timm's deit_{tiny,small,base}_patch16_224 (1000 classes, cls token, learnable posemb) less
  // one position: timm's pos_embed has a row for the cls token, the flax model's wpe has not.
  for (
    const [name, count] of <[string, number][]> [["t16", 5_717_416], ["s16", 22_050_664], [
      "b16",
      86_567_656,
    ]]
  ) {
    const path = `${CONFIGS}deit-${name}-224-in1k-300ep.json`;
    const config = resolveConfig(JSON.parse(Deno.readTextFileSync(path)), path, [
      ...["--train-dataset-shards", "x", "--valid-dataset-shards", "x", "--output-dir", "x"],
    ]);
    assertEquals(parameterCount(config), count - (config.dim as number), name);
  }
});

Deno.test("checkMemory: a tiny run passes; on the CPU backend activations count", () => {
  const config = resolveConfig(tinyConfig("/tmp/x", { train: "a", valid: "b" }), "<t>", []);
  checkMemory(config);
  const big = resolveConfig(
    tinyConfig("/tmp/x", { train: "a", valid: "b" }),
    "<t>",
    ["--train-batch-size", "1000000", "--train-loader-workers", "0"],
  );
  const e = estimateMemory(big);
  const act = e.parts.find((p) => p.name.startsWith("activations"))!;
  // 17 tokens x (10 x 16 + 2 x 17) floats per block and 16 x 16 x 3 input floats per image.
  assertEquals(act.bytes, 4 * 1e6 * (17 * (160 + 34) + 768));
  const message = thrown(() => checkMemory(big, { bytes: 1e9, what: "test RAM" }));
  assertStringIncludes(message, "activations of a micro-batch of 1000000 images 16 GB");
  assertStringIncludes(message, "test RAM is 1.0 GB");
  assertStringIncludes(message, '"train-batch-size" (1000000)');
});

Deno.test("config: integers beyond 2^53 are refused, from a file and from a flag", () => {
  for (
    const [json, argv] of [[{ "train-batch-size": 1e308 }, []], [{}, [
      "--train-batch-size",
      "9007199254740993",
    ]]] as const
  ) {
    const message = thrown(() =>
      resolveConfig({ labels: 10, ...json }, "c.json", argv as unknown as string[])
    );
    assertStringIncludes(message, "train-batch-size");
    assertStringIncludes(message, "2^53");
  }
});

function assertStringIncludes(text: string, part: string): void {
  assert(text.includes(part), `${JSON.stringify(part)} not in: ${text}`);
}

function thrown(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected a throw");
}

for (
  const [flags, key] of <[string[], string][]> [
    [["--dim", "1048576"], '"dim" (1048576)'],
    [["--layers", "100000000"], '"layers" (100000000)'],
    [["--train-batch-size", "100000000000"], '"train-batch-size" (100000000000)'],
    [["--train-batch-size", "1e11"], '"train-batch-size" (100000000000)'], // the spelling
  ]
) {
  Deno.test(`train task: ${flags.join(" ")} is refused at once, nothing written`, async () => {
    await withDir("deit3-memory-", async (dir) => {
      const data = await makeDataset(dir);
      await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(tinyConfig(`${dir}/run`, data)));
      const before = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      const t0 = performance.now();
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", TASK, `${dir}/c.json`, ...flags],
      }).output();
      const seconds = (performance.now() - t0) / 1000;
      const err = new TextDecoder().decode(r.stderr);
      assertEquals(r.code, 1, err);
      assertStringIncludes(err, key);
      assert(/needs at least [\d.]+ [TPE]B of memory, but host RAM is/.test(err), err);
      // Generous: a machine shared by several test runs; the point is not minutes.
      assert(seconds < 30, `took ${seconds.toFixed(1)} s`);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), before);
    });
  });
}

Deno.test("checkMemory: --backend auto that resolved to the CPU counts the activations too", () => {
  const big = resolveConfig(
    tinyConfig("/tmp/x", { train: "a", valid: "b" }),
    "<t>",
    ["--backend", "auto", "--train-batch-size", "1000000", "--train-loader-workers", "0"],
  );
  const auto = estimateMemory(big), cpu = estimateMemory(big, 1, "cpu");
  const act = cpu.parts.find((p) => p.name.startsWith("activations"))!.bytes;
  assertEquals(cpu.host - auto.host, act);
  // a machine with room for everything but the activations: auto passes before the backend is
  // known, and is refused once it is the CPU (run_setup.ts createRunBackend)
  const room = { bytes: auto.host + act / 2, what: "test memory" };
  checkMemory(big, room);
  let message = "";
  try {
    checkMemory(big, room, "cpu");
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.includes("backend cpu") && message.includes("activations"), message);
});
