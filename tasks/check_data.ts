/**
 * deno task check-data SPEC [--transform train|valid|none] [--limit N] [--workers N] [--json]
 *
 * Reads the shards of SPEC (braces, `::`, $VARS; paths, http(s)://, gs://, pipe:) through the
 * real loader and prints the sample count, skips by reason, a label histogram summary and img/s.
 */
import { checkData, formatReport, verdict } from "../lib/data/check.ts";
import { command, EXIT, exit, intFlag, parseFlags, TaskError, UsageError } from "./cli.ts";

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

export const main = command({ name: "check-data", usage: USAGE, run: checkShards });

/** Prints the report; 0 when every shard gave a usable sample, else 1 (after saying why). */
async function checkShards(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
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
  }, true);
  if (positionals.length !== 1) throw new UsageError("expected one shard spec", { usage: true });
  const transform = values.transform;
  if (transform !== "train" && transform !== "valid" && transform !== "none") {
    throw new UsageError(`--transform must be train, valid or none, got "${transform}"`);
  }
  const crop = values["random-crop"];
  if (crop !== undefined && crop !== "rrc" && crop !== "src" && crop !== "none") {
    throw new UsageError(`--random-crop must be rrc, src or none, got "${crop}"`);
  }
  const optionalInt = (text: string | undefined, flag: string) =>
    text === undefined ? undefined : intFlag(flag, text, 1);
  const log = values.json ? () => {} : (line: string) => console.error(line);
  const report = await checkData({
    shards: positionals[0],
    transform,
    limit: optionalInt(values.limit, "--limit"),
    workers: intFlag("--workers", values.workers, 0),
    imageSize: intFlag("--image-size", values["image-size"], 1),
    batchSize: intFlag("--batch-size", values["batch-size"], 1),
    randomCrop: crop,
    autoAugment: values["auto-augment"],
    testCropRatio: cropRatio(values["test-crop-ratio"]),
    strict: values.strict,
    labels: optionalInt(values.labels, "--labels"),
    log,
  });
  console.log(values.json ? JSON.stringify(report) : formatReport(report));
  const bad = verdict(report);
  if (bad === undefined) return EXIT.ok;
  throw new TaskError(bad);
}

function cropRatio(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const r = Number(text);
  if (!(text.trim() !== "" && r > 0 && Number.isFinite(r))) {
    throw new UsageError(`--test-crop-ratio must be a number > 0, got "${text}"`);
  }
  return r;
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
