/**
 * deno task convert IN [--to pth|msgpack|safetensors] [--out FILE] [--timm-model NAME]
 *   [--exclude-heads] [--num-heads N]
 *
 * Converts between deit3-jax Flax msgpack checkpoints and timm-named PyTorch .pth / safetensors
 * files (as the original's convert_flax_to_pytorch.py / convert_pytorch_to_flax.py). IN and --out
 * may be local paths or gs:// URLs. Default: msgpack -> .pth, anything else -> .msgpack, written
 * next to IN.
 */
import { convertCheckpoint, type Format } from "../lib/checkpoint/convert.ts";
import { command, EXIT, exit, intFlag, parseFlags, UsageError } from "./cli.ts";

const USAGE =
  `usage: deno task convert IN [--to pth|msgpack|safetensors] [--out FILE] [--timm-model NAME]
                         [--exclude-heads] [--num-heads N]

Converts a checkpoint between deit3-jax's Flax msgpack and timm-named PyTorch .pth or
safetensors, as the original's convert_flax_to_pytorch.py and convert_pytorch_to_flax.py do.
IN and --out may be local paths or gs:// URLs.

  IN                      a .msgpack (ours or the original's), .pth or .safetensors checkpoint
  --to pth|msgpack|safetensors
                          the output format (default: msgpack -> pth, anything else -> msgpack)
  --out FILE              where to write (default: next to IN, with the new extension)
  --timm-model NAME       write the layout timm's NAME loads strictly, checked against it:
                          deit3_* (DeiT-III: pos_embed without a class row, layer scale),
                          vit_* / deit_* (a zero class row; layer scale via init_values).
                          Default: the original converter's layout (vit_*)
  --exclude-heads         leave out the classifier head (for fine-tuning on other labels)
  --num-heads N           attention heads, when IN does not tell (pth/safetensors -> msgpack)
  -h, --help              this text

Examples: deno task convert runs/mnist-vit-tiny/mnist-vit-tiny-best.msgpack --to pth
          deno task convert deit3-s16-224-in1k-400ep-best.msgpack --to pth \\
            --timm-model deit3_small_patch16_224`;

export const main = command({ name: "convert", usage: USAGE, run: convert });

const FORMATS: readonly Format[] = ["pth", "msgpack", "safetensors"];

async function convert(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    to: { type: "string" },
    out: { type: "string" },
    "exclude-heads": { type: "boolean", default: false },
    "num-heads": { type: "string" },
    "timm-model": { type: "string" },
  }, true);
  if (positionals.length !== 1) {
    throw new UsageError(`expected one input checkpoint, got ${positionals.length}`, {
      usage: true,
    });
  }
  const to = FORMATS.find((f) => f === values.to);
  if (values.to !== undefined && to === undefined) {
    throw new UsageError(`--to must be pth, msgpack or safetensors, got "${values.to}"`);
  }
  const numHeads = values["num-heads"] === undefined
    ? undefined
    : intFlag("--num-heads", values["num-heads"], 1);
  const started = performance.now();
  const r = await convertCheckpoint({
    input: positionals[0],
    to,
    out: values.out,
    excludeHeads: values["exclude-heads"],
    numHeads,
    timmModel: values["timm-model"],
  });
  for (const note of r.notes) console.log(`note: ${note}`);
  const secs = ((performance.now() - started) / 1000).toFixed(2);
  console.log(
    `wrote ${r.out}: ${r.from} -> ${r.to}, ${r.tensors} tensors, ${
      (r.bytes / 2 ** 20).toFixed(1)
    } MiB in ${secs}s`,
  );
  return EXIT.ok;
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
