/**
 * deno task eval CKPT [--config CONFIG.json] [--valid-dataset-shards SPEC] [--flag value ...]
 *
 * Evaluates a checkpoint: a Flax msgpack of parameters (this project's `{name}-best.msgpack`,
 * or the original's released checkpoints) or a training state (`{name}-state.msgpack`).
 * Model flags come from the config (default: the embedded MNIST config) and CLI overrides.
 */
import { readFlaxMsgpackFile } from "../lib/checkpoint/flax_msgpack.ts";
import { withLocalInput } from "../lib/checkpoint/storage.ts";
import { ConfigError, loadConfig, parseCommandLine } from "../lib/config/mod.ts";
import { createBackend } from "../lib/backend/select.ts";
import { flatten, unflatten } from "../lib/ir/pytree.ts";
import type { HostTensor } from "../lib/ir/host_tensor.ts";
import { redactConsole } from "../lib/config/redact.ts";
import { Evaluator, formatEvalProgress } from "../lib/train/evaluate.ts";
import { RunLog } from "../lib/train/logging.ts";
import { loaderWorkers, stepConfigOf } from "../lib/train/run_config.ts";

const USAGE =
  `usage: deno task eval CKPT [--config CONFIG.json] [--valid-dataset-shards SPEC] [--key value ...]

Evaluates a checkpoint on validation shards: top-1 and top-5 accuracy and the loss, every
sample counted once. Prints one line, then one JSON object.

  CKPT                         a Flax msgpack of parameters (this project's {name}-best.msgpack,
                               or one of the original's released checkpoints) or a training
                               state ({name}-state.msgpack); local or gs://
  --config CONFIG.json         the model's config (default: the embedded MNIST config); its
                               layers, dim, heads, labels, patch-size, image-size, posemb and
                               pooling must match the checkpoint
  --valid-dataset-shards SPEC  the shards to evaluate on (quote braces: 'val-{000..063}.tar')
  --key value                  any other config key: --valid-batch-size 256,
                               --test-crop-ratio 0.875, --valid-loader-workers 4,
                               --backend cpu|webgpu|pjrt, --pjrt-plugin PATH
  -h, --help                   this text

Example: deno task eval deit3-s16-224-in1k-400ep-best.msgpack \\
  --config configs/deit3-s16-224-in1k-400ep.json \\
  --valid-dataset-shards '/data/imagenet-1k-wds/imagenet1k-validation-{00..63}.tar'`;

if (import.meta.main) {
  redactConsole();
  Deno.exit(await main(Deno.args));
}

export async function main(args: string[]): Promise<number> {
  const ckptIndex = args.findIndex((a) => !a.startsWith("-") && !a.endsWith(".json"));
  const configIndex = args.indexOf("--config");
  if (ckptIndex < 0 || args.includes("--help") || args.includes("-h")) {
    (ckptIndex < 0 && !args.includes("--help") && !args.includes("-h")
      ? console.error
      : console.log)(
        USAGE,
      );
    return ckptIndex < 0 && !args.includes("--help") && !args.includes("-h") ? 2 : 0;
  }
  const ckpt = args[ckptIndex];
  const rest = args.filter((_, i) => i !== ckptIndex && i !== configIndex && i !== configIndex + 1);
  const configPath = configIndex >= 0 ? args[configIndex + 1] : undefined;
  let config;
  try {
    const cl = parseCommandLine(configPath ? [configPath, ...rest] : rest);
    config = loadConfig(cl.configPath, cl.flags);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  if (!config["valid-dataset-shards"]) {
    console.error('eval: "valid-dataset-shards" is not set: pass --valid-dataset-shards SPEC');
    return 2;
  }
  try {
    const tree = await withLocalInput(ckpt, readFlaxMsgpackFile) as Record<string, unknown>;
    // A training state holds its params under "params"; a params file is {model: ...}.
    const params = "params" in tree && "opt_state" in tree ? tree.params : tree;
    const backend = await createBackend(config.backend as never, {
      pjrtPlugin: config["pjrt-plugin"] as string | undefined,
      devices: config.devices,
    });
    console.log(`backend: ${backend.name} (${backend.description})`);
    const cfg = stepConfigOf(config, backend.replicas);
    const { leaves, def } = flatten<HostTensor>(params);
    const device = unflatten(def, await Promise.all(leaves.map((l) => backend.fromHost(l))));
    const evaluator = await Evaluator.create(
      backend,
      cfg,
      params,
      config["valid-batch-size"] as number,
    );
    loaderWorkers(config, "valid-loader-workers", (l) => console.error(l));
    const log = new RunLog(null, "eval");
    const r = await evaluator.run(
      config,
      device,
      (l) => log.line(l),
      (p) => log.progress(formatEvalProgress(p), 30_000),
    );
    log.clearProgress();
    console.log(
      `${ckpt}: acc1 ${(r.acc1 * 100).toFixed(2)}%, acc5 ${(r.acc5 * 100).toFixed(2)}%, loss ${
        r.loss.toFixed(4)
      } ` +
        `on ${r.samples} images (${r.seconds.toFixed(1)} s)`,
    );
    console.log(JSON.stringify({ checkpoint: ckpt, ...r }));
    evaluator.dispose();
    backend.dispose();
    return 0;
  } catch (e) {
    console.error(`eval: ${(e as Error).message}`);
    return 1;
  }
}
