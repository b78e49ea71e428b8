/** Local shards: a path, or a `file:` URL (`file:///abs/x.tar`, `file:rel/x.tar`). */
import { fileURLToPath } from "node:url";
import { OpenError } from "./open.ts";

export async function openFile(
  url: string,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const path = url.startsWith("file://") ? fileURLToPath(url) : url.replace(/^file:/, "");
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
