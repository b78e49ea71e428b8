/**
 * deno task eval CKPT [--config CONFIG.json] [--valid-dataset-shards SPEC] [--flag value ...]
 *
 * Evaluates a checkpoint: a Flax msgpack of parameters (this project's `{name}-best.msgpack`,
 * or the original's released checkpoints) or a training state (`{name}-state.msgpack`).
 * Model flags come from `--config`, else from the `config.json` that `train` wrote beside the
 * checkpoint, then CLI overrides. The checkpoint's tree and shapes are checked against that
 * model before anything runs, naming the first key that differs.
 */
import { isGsUrl } from "../lib/gcs/url.ts";
import { ConfigError, loadConfig } from "../lib/config/mod.ts";
import { positionalArgs } from "../lib/config/cli.ts";
import { evaluateCheckpoint } from "../lib/train/eval_checkpoint.ts";
import { formatEvalProgress } from "../lib/train/evaluate.ts";
import { RunLog } from "../lib/report/logging.ts";
import { command, commandLine, EXIT, exit, UsageError } from "./cli.ts";

const USAGE =
  `usage: deno task eval CKPT [--config CONFIG.json] [--valid-dataset-shards SPEC] [--key value ...]

Evaluates a checkpoint on validation shards: top-1 and top-5 accuracy and the loss, every
sample counted once. Prints one line, then one JSON object.

  CKPT                         a Flax msgpack of parameters (this project's {name}-best.msgpack,
                               or one of the original's released checkpoints) or a training
                               state ({name}-state.msgpack); local or gs://
  --config CONFIG.json         the model's config (default: the config.json that train wrote
                               beside CKPT); its layers, dim, heads, labels, patch-size,
                               image-size, posemb, pooling and layerscale must match the
                               checkpoint, which is checked key by key before the eval
  --valid-dataset-shards SPEC  the shards to evaluate on (quote braces: 'val-{000..063}.tar')
  --key value                  any other config key: --valid-batch-size 256,
                               --test-crop-ratio 0.875, --valid-loader-workers 4,
                               --backend cpu|webgpu|pjrt, --pjrt-plugin PATH
  -h, --help                   this text

Example: deno task eval deit3-s16-224-in1k-400ep-best.msgpack \\
  --config configs/deit3-s16-224-in1k-400ep.json \\
  --valid-dataset-shards '/data/imagenet-1k-wds/imagenet1k-validation-{00..63}.tar'`;

export const main = command({ name: "eval", usage: USAGE, run: evaluate });

async function evaluate(args: string[]): Promise<number> {
  const configIndex = args.indexOf("--config");
  const kept = args.map((_, i) => i).filter((i) =>
    configIndex < 0 || (i !== configIndex && i !== configIndex + 1)
  );
  // The checkpoint is the one positional argument; a CONFIG.json positional is the config.
  const positionals = positionalArgs(kept.map((i) => args[i]))
    .map(({ text, index }) => ({ text, index: kept[index] }));
  const ckptArgs = positionals.filter(({ text }) => !text.endsWith(".json"));
  if (ckptArgs.length === 0) throw new UsageError("", { usage: true });
  if (ckptArgs.length > 1) {
    throw new UsageError(`one checkpoint, got ${ckptArgs.map((a) => a.text)}`);
  }
  const ckpt = ckptArgs[0].text;
  const jsonArg = positionals.find(({ text }) => text.endsWith(".json"));
  const rest = kept.filter((i) => i !== ckptArgs[0].index && i !== jsonArg?.index)
    .map((i) => args[i]);
  // The checkpoint first: a mistyped name is the likely mistake, not a missing config.json.
  if (!isGsUrl(ckpt)) {
    const problem = await Deno.stat(ckpt).then(
      (info) => info.isFile ? undefined : "not a file",
      (e) => e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message,
    );
    if (problem) throw new UsageError(`checkpoint ${ckpt}: ${problem}`);
  }
  let configPath = configIndex >= 0 ? args[configIndex + 1] : jsonArg?.text;
  if (configPath === undefined) {
    configPath = await configBeside(ckpt);
    if (configPath === undefined) {
      throw new UsageError(
        `no --config, and no config.json beside ${ckpt} (train writes one into its ` +
          "output folder): pass --config CONFIG.json with the model's flags",
      );
    }
    console.log(`config: ${configPath} (beside the checkpoint)`);
  }
  const cl = commandLine([configPath, ...rest]);
  // Eval reads the model, validation and backend keys only: a recipe's `$GCS_*` output and
  // training paths need no variable unless read.
  const config = loadConfig(cl.configPath, cl.flags, { unsetVariables: "defer" });
  let validShards;
  try {
    validShards = config["valid-dataset-shards"];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new ConfigError([...e.issues, "(or pass --valid-dataset-shards SPEC)"]);
  }
  if (!validShards) {
    throw new UsageError(
      '"valid-dataset-shards" is not set: pass --valid-dataset-shards SPEC',
    );
  }
  const log = new RunLog(null, "eval");
  const r = await evaluateCheckpoint(ckpt, config, {
    log: (l) => log.line(l),
    progress: (p) => log.progress(formatEvalProgress(p), 30_000),
  });
  log.clearProgress();
  console.log(
    `${ckpt}: acc1 ${(r.acc1 * 100).toFixed(2)}%, acc5 ${(r.acc5 * 100).toFixed(2)}%, loss ` +
      `${r.loss.toFixed(4)} on ${r.samples} images (${r.seconds.toFixed(1)} s)`,
  );
  console.log(JSON.stringify({ checkpoint: ckpt, ...r }));
  return EXIT.ok;
}

/** The `config.json` in a local checkpoint's folder, if there is one. */
async function configBeside(ckpt: string): Promise<string | undefined> {
  if (isGsUrl(ckpt)) return undefined; // train keeps a gs:// run's config.json under runs/
  const slash = ckpt.lastIndexOf("/");
  const path = `${slash >= 0 ? ckpt.slice(0, slash) : "."}/config.json`;
  try {
    await Deno.stat(path);
    return path;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
