/**
 * deno task convert IN [--to pth|msgpack|safetensors] [--out FILE] [--timm-model NAME]
 *   [--exclude-heads] [--num-heads N]
 *
 * Converts between deit3-jax Flax msgpack checkpoints and timm-named PyTorch .pth / safetensors
 * files (as the original's convert_flax_to_pytorch.py / convert_pytorch_to_flax.py). IN and --out
 * may be local paths or gs:// URLs. Default: msgpack -> .pth, anything else -> .msgpack, written
 * next to IN.
 */
import { parseArgs } from "node:util";
import { convertCheckpoint, type Format } from "../lib/checkpoint/convert.ts";

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

export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        to: { type: "string" },
        out: { type: "string" },
        "exclude-heads": { type: "boolean", default: false },
        "num-heads": { type: "string" },
        "timm-model": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`convert: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(`convert: expected one input checkpoint, got ${positionals.length}\n${USAGE}`);
    return 2;
  }
  const to = values.to as Format | undefined;
  if (to !== undefined && !["pth", "msgpack", "safetensors"].includes(to)) {
    console.error(`convert: --to must be pth, msgpack or safetensors, got "${to}"`);
    return 2;
  }
  let numHeads: number | undefined;
  if (values["num-heads"] !== undefined) {
    numHeads = Number(values["num-heads"]);
    if (!Number.isInteger(numHeads) || numHeads <= 0) {
      console.error(
        `convert: --num-heads must be a positive integer, got "${values["num-heads"]}"`,
      );
      return 2;
    }
  }
  const started = performance.now();
  try {
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
    return 0;
  } catch (e) {
    console.error(`convert: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
