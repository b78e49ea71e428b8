/**
 * deno task check-data SPEC [--transform train|valid|none] [--limit N] [--workers N] [--json]
 *
 * Reads the shards of SPEC (braces, `::`, $VARS; paths, http(s)://, gs://, pipe:) through the
 * real loader and prints the sample count, skips by reason, a label histogram summary and img/s.
 */
import { parseArgs } from "node:util";
import { redactConsole } from "../lib/config/redact.ts";
import { checkData, formatReport, verdict } from "../lib/data/check.ts";

const USAGE = `usage: deno task check-data SPEC [options]

Reads webdataset shards through the same loader as training, before a long run: how many
samples, which were skipped and why (corrupt images, missing labels, unreadable shards), the
labels seen, and the decode speed. SPEC is a shard spec as in a config (quote the braces).

  --transform train|valid|none   what to run on each image (default none: decode only)
  --limit N                      stop after N samples
  --workers N                    loader workers (default 1; 0 = in this thread)
  --image-size N                 transform output size (default 224)
  --batch-size N                 loader batch size (default 64)
  --random-crop rrc|src|none     train transform crop (default rrc)
  --auto-augment STR             train transform auto-augment (default rand-m9-mstd0.5-inc1)
  --test-crop-ratio F            valid transform crop ratio (default 0.875)
  --labels N                     class count: count labels outside 0..N-1 as bad_label
  --strict                       stop at the first bad sample instead of counting it
  --json                         print one JSON object

Examples:
  deno task check-data 'data/mnist/mnist-train-{000..008}.tar' --labels 10
  deno task check-data "$GCS_DATASET_DIR/imagenet-1k-wds/imagenet1k-validation-{00..63}.tar" \\
    --transform valid --labels 1000 --limit 5000
`;

if (import.meta.main) {
  redactConsole();
  try {
    Deno.exitCode = await main(Deno.args);
  } catch (e) {
    console.error(`check-data: ${(e as Error).message}`);
    Deno.exit(1);
  }
}

/** Prints the report; 0 when every shard gave a usable sample, else 1 (after saying why). */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      transform: { type: "string", default: "none" },
      limit: { type: "string" },
      workers: { type: "string", default: "1" },
      "image-size": { type: "string", default: "224" },
      "batch-size": { type: "string", default: "64" },
      "random-crop": { type: "string" },
      "auto-augment": { type: "string" },
      "test-crop-ratio": { type: "string" },
      labels: { type: "string" },
      strict: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new Error(`expected one shard spec\n${USAGE}`);
  const transform = values.transform;
  if (transform !== "train" && transform !== "valid" && transform !== "none") {
    throw new Error(`--transform must be train, valid or none, got "${transform}"`);
  }
  const crop = values["random-crop"];
  if (crop !== undefined && crop !== "rrc" && crop !== "src" && crop !== "none") {
    throw new Error(`--random-crop must be rrc, src or none, got "${crop}"`);
  }
  const log = values.json ? () => {} : (line: string) => console.error(line);
  const report = await checkData({
    shards: positionals[0],
    transform,
    limit: optionalInt(values.limit, "--limit"),
    workers: int(values.workers, "--workers", 0),
    imageSize: int(values["image-size"], "--image-size", 1),
    batchSize: int(values["batch-size"], "--batch-size", 1),
    randomCrop: crop,
    autoAugment: values["auto-augment"],
    testCropRatio: values["test-crop-ratio"] === undefined
      ? undefined
      : Number(values["test-crop-ratio"]),
    strict: values.strict,
    labels: optionalInt(values.labels, "--labels"),
    log,
  });
  console.log(values.json ? JSON.stringify(report) : formatReport(report));
  const bad = verdict(report);
  if (bad === undefined) return 0;
  console.error(`check-data: ${bad}`);
  return 1;
}

function int(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`${flag} must be an integer >= ${min}, got "${text}"`);
  }
  return n;
}

function optionalInt(text: string | undefined, flag: string): number | undefined {
  return text === undefined ? undefined : int(text, flag, 1);
}
