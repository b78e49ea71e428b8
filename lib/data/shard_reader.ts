/** One shard -> its samples, with failures tagged by what failed (opening or reading). */
import { redact } from "../config/redact.ts";
import { gunzipIfCompressed } from "./gzip.ts";
import { OpenError, type OpenOptions, openShard } from "./open.ts";
import { groupSamples, type RawSample } from "./samples.ts";
import { readTar } from "./tar.ts";

export class ShardError extends Error {
  constructor(
    readonly reason: "shard_open" | "shard_read",
    message: string,
    options?: ErrorOptions,
  ) {
    super(redact(message), options);
    this.name = "ShardError";
  }
}

/**
 * Streams the samples of the shard at `url` (a tar, or a gzip-compressed tar: `.tgz`,
 * `.tar.gz`, recognized by its first bytes). Rejects with `ShardError`: `shard_open` when it
 * cannot be opened, `shard_read` when reading fails part-way (the samples before were
 * delivered, the last complete one included) or when the shard holds no sample at all (a
 * zero-byte file, a tar of directories): a shard that gives nothing is never a good one.
 */
export async function* readShard(
  url: string,
  options: OpenOptions = {},
  signal?: AbortSignal,
): AsyncGenerator<RawSample> {
  let stream: ReadableStream<Uint8Array>, compressed: boolean;
  try {
    ({ stream, compressed } = await gunzipIfCompressed(await openShard(url, options, signal), url));
  } catch (e) {
    const msg = e instanceof OpenError ? e.message : `${url}: ${(e as Error).message}`;
    throw new ShardError("shard_open", `cannot open shard: ${msg}`, { cause: e });
  }
  let n = 0;
  try {
    for await (const sample of groupSamples(readTar(stream, url, { readToEnd: compressed }))) {
      n++;
      yield sample;
    }
    if (n === 0) throw new Error("the shard holds no sample (no member named KEY.EXT)");
  } catch (e) {
    let msg = (e as Error).message;
    // Messages are redacted where they are made: compare with the shard as they show it.
    if (!msg.includes(url) && !msg.includes(redact(url))) msg = `${url}: ${msg}`;
    // A source that fails before delivering anything (a failing pipe: command) never opened.
    if (n === 0 && e instanceof OpenError) {
      throw new ShardError("shard_open", `cannot open shard: ${msg}`, { cause: e });
    }
    throw new ShardError("shard_read", `reading the shard failed after ${n} samples: ${msg}`, {
      cause: e,
    });
  }
}
