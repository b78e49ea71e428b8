/**
 * `deno task train` against bad data, as a user meets it: zero-byte shards, shards cut short and
 * a wrong path stop with one clear message and a non-zero exit (no stack trace); a token in a
 * `pipe:` spec, from the shell or from `$HF_TOKEN`, appears in no output and no file of the run.
 */
import { resolveConfig } from "../../lib/config/mod.ts";
import { DEFAULT_MAX_BAD_FRACTION } from "../../lib/data/stats.ts";
import { dataOptionsOf } from "../../lib/train/run_config.ts";
import { assert, assertEquals } from "../assert.ts";
import { makeDataset, tinyConfig, withDir } from "./e2e_helpers.ts";

const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;

async function runTrain(args: string[], env: Record<string, string> = {}, clearHfToken = false) {
  const cmdEnv = { ...env };
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, ...args],
    env: cmdEnv,
    stdout: "piped",
    stderr: "piped",
    ...(clearHfToken ? { clearEnv: true, env: { PATH: Deno.env.get("PATH")!, ...cmdEnv } } : {}),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

const noStack = (text: string) => !/^\s+at .*\.ts:\d+/m.test(text);

Deno.test("train task: zero-byte shards, shards cut to 5% and a wrong path each stop, one message", async () => {
  await withDir("deit3-data-fail-", async (dir) => {
    const data = await makeDataset(dir);
    const cfgPath = `${dir}/cfg.json`;
    const cases: [string, string, RegExp][] = [];
    await Deno.writeFile(`${dir}/zero-0.tar`, new Uint8Array(0));
    await Deno.writeFile(`${dir}/zero-1.tar`, new Uint8Array(0));
    cases.push([
      "zero-byte",
      `${dir}/zero-{0..1}.tar`,
      /no shard could be read.*empty \(0 bytes\)/,
    ]);
    for (const k of [0, 1]) {
      const whole = await Deno.readFile(`${dir}/train-${k}.tar`);
      await Deno.writeFile(`${dir}/cut-${k}.tar`, whole.slice(0, Math.floor(whole.length * 0.05)));
    }
    cases.push(["cut to 5%", `${dir}/cut-{0..1}.tar`, /too many shards not read whole: 2 of 2/]);
    cases.push([
      "wrong path",
      `${dir}/nope/train-{00..17}.tar`,
      /no shard found: none of the 18 shards of ".*nope\/train-\{00..17\}.tar" exists/,
    ]);
    for (const [what, spec, expected] of cases) {
      await Deno.writeTextFile(cfgPath, JSON.stringify(tinyConfig(dir, { ...data, train: spec })));
      const t0 = performance.now();
      const r = await runTrain([cfgPath]);
      assert(r.code !== 0, `${what}: exit ${r.code}\n${r.text}`);
      assert(expected.test(r.text), `${what}:\n${r.text}`);
      assert(noStack(r.text), `${what}: a stack trace\n${r.text}`);
      // One message, not one line per shard.
      assert(r.text.split("\n").filter((l) => l.includes("train: ")).length === 1, r.text);
      assert(performance.now() - t0 < 120_000, `${what}: took too long`);
    }
  });
});

Deno.test("train task: a token, through the shell or $HF_TOKEN in the spec, is in no output and no file", async () => {
  await withDir("deit3-data-fail-", async (dir) => {
    const data = await makeDataset(dir);
    const token = "hf_" + crypto.randomUUID().replaceAll("-", "");
    const out = `${dir}/out`;
    const failing = (auth: string) =>
      `pipe:echo "denied for ${auth}" >&2; curl-is-not-here -H 'Authorization: Bearer ${auth}'; exit 7`;
    const shards = (auth: string) =>
      `pipe:cat ${dir}/train-0.tar; true ${auth}::pipe:cat ${dir}/train-1.tar::${failing(auth)}`;
    const base = { ...tinyConfig(dir, data, 2), "eval-interval": 2, "max-bad-fraction": 0.9 };
    const runs: [string, string[], Record<string, string>, boolean][] = [];
    // $HF_TOKEN in the config file: the toolkit expands it.
    await Deno.writeTextFile(
      `${dir}/spec.json`,
      JSON.stringify({ ...base, "train-dataset-shards": shards("$HF_TOKEN") }),
    );
    runs.push(["$HF_TOKEN in the spec", [`${dir}/spec.json`], { HF_TOKEN: token }, false]);
    // The shell expanded it into a flag: the value arrives literally (HF_TOKEN exported or not).
    await Deno.writeTextFile(`${dir}/plain.json`, JSON.stringify(base));
    const flag = ["--train-dataset-shards", shards(token)];
    runs.push(["shell, exported", [`${dir}/plain.json`, ...flag], { HF_TOKEN: token }, false]);
    runs.push(["shell, not exported", [`${dir}/plain.json`, ...flag], {}, true]);
    for (const [what, args, env, clear] of runs) {
      await Deno.remove(out, { recursive: true }).catch(() => {});
      const r = await runTrain(args, env, clear);
      assertEquals(r.code, 0, `${what}:\n${r.text}`);
      assert(
        r.text.includes("exited with status 7"),
        `${what}: the failing shard is logged\n${r.text}`,
      );
      assert(!r.text.includes(token), `${what}: token in the output\n${r.text}`);
      const files = [];
      for (const e of Deno.readDirSync(out)) {
        const bytes = await Deno.readFile(`${out}/${e.name}`);
        files.push(e.name);
        const text = new TextDecoder("latin1").decode(bytes);
        assert(!text.includes(token), `${what}: token in ${e.name}`);
      }
      assert(files.includes("config.json") && files.includes("tiny-state.msgpack"), `${files}`);
      const saved = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
      if (what === "$HF_TOKEN in the spec") {
        // Saved as written, unexpanded.
        assertEquals(saved["train-dataset-shards"], shards("$HF_TOKEN"));
      } else if (clear) {
        assert(saved["train-dataset-shards"].includes("Bearer ***"), saved["train-dataset-shards"]);
      } else {
        // Known by value: saved as a reference that expands back.
        assertEquals(saved["train-dataset-shards"], shards("${HF_TOKEN}"));
      }
    }
  });
});

Deno.test("train task: data-stall-timeout and data-retries reach the shard readers", async () => {
  await withDir("deit3-data-fail-", async (dir) => {
    const data = await makeDataset(dir);
    const cfg = {
      ...tinyConfig(dir, data, 2),
      "eval-interval": 2,
      "max-bad-fraction": 0.9,
      "train-dataset-shards": `${data.train}::pipe:sleep 30.5`,
    };
    await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
    const t0 = performance.now();
    const r = await runTrain([
      `${dir}/cfg.json`,
      "--data-stall-timeout",
      "0.3",
      "--data-retries",
      "0",
    ]);
    assertEquals(r.code, 0, r.text);
    assert(r.text.includes("pipe:sleep 30.5: wrote nothing for 300 ms and was killed"), r.text);
    assert(performance.now() - t0 < 30_000, "the 60 s default was used");
  });
});

Deno.test("dataOptionsOf: labels, max-bad-fraction, stall timeout (s -> ms) and retries", () => {
  const c = resolveConfig(
    tinyConfig("/tmp/x", { train: "a.tar", valid: "b.tar" }),
    "<test>",
    ["--data-stall-timeout", "2.5", "--data-retries", "1", "--max-bad-fraction", "0.2"],
  );
  assertEquals(dataOptionsOf(c), {
    labels: 4,
    maxSkipFraction: 0.2,
    open: { stallTimeoutMs: 2500, retries: 1 },
  });
  const d = resolveConfig(tinyConfig("/tmp/x", { train: "a.tar", valid: "b.tar" }), "<test>");
  assertEquals(dataOptionsOf(d).open, { stallTimeoutMs: 60_000, retries: 5 });
  assertEquals(dataOptionsOf(d).maxSkipFraction, DEFAULT_MAX_BAD_FRACTION);
});
