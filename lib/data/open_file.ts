/** Local shards: a path, or a `file:` URL (`file:///abs/x.tar`, `file:rel/x.tar`). */
import { fileURLToPath } from "node:url";
import { OpenError } from "./open_base.ts";

/** Whether `url` names a local file (a path or `file:`), as `openShard` reads it. */
export function isLocalShard(url: string): boolean {
  return url.startsWith("file:") ||
    (!url.startsWith("pipe:") && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url));
}

/**
 * When every shard is a local file and none exists, one error naming the spec and the first
 * path, before any worker starts (instead of one skip line per shard). A list where some
 * files exist goes ahead: the missing ones are counted skips.
 */
export function checkLocalShards(urls: readonly string[], spec?: string): void {
  if (urls.length === 0 || !urls.every(isLocalShard)) return;
  for (const url of urls) {
    try {
      Deno.statSync(localPath(url));
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) return; // let the reader report it
    }
  }
  const of = spec === undefined ? "" : ` of "${spec}"`;
  throw new OpenError(
    urls.length === 1
      ? `no shard found: ${urls[0]} does not exist; check the path`
      : `no shard found: none of the ${urls.length} shards${of} exists (the first: ${
        urls[0]
      }); check the path`,
    true,
  );
}

export async function openFile(
  url: string,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const path = localPath(url);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new OpenError(`${url}: ${why}`, true, { cause: e });
  }
  const stream = file.readable;
  signal?.addEventListener("abort", () => stream.cancel().catch(() => {}), { once: true });
  return stream;
}

/** The file system path of a local shard URL. */
export function localPath(url: string): string {
  return url.startsWith("file://") ? fileURLToPath(url) : url.replace(/^file:/, "");
}
