/**
 * gzip shards (`.tgz`, `.tar.gz`, as webdataset reads them): recognized by their magic bytes,
 * whatever the source or name (a `pipe:` command or a signed URL has no telling extension), and
 * inflated as they stream in with the runtime's `DecompressionStream`. The source below stays
 * the same resumable byte stream, so retries and `Range` resumption work on the compressed bytes.
 */

const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * `stream` inflated when it starts with the gzip magic, else `stream`'s bytes unchanged;
 * `compressed` says which. gzip's checksum is checked at the end of the stream only: a reader
 * that stops early (tar's end-of-archive blocks) should read on to the end to have it checked.
 */
export async function gunzipIfCompressed(
  stream: ReadableStream<Uint8Array>,
  source: string,
): Promise<{ stream: ReadableStream<Uint8Array>; compressed: boolean }> {
  const reader = stream.getReader();
  const head: Uint8Array[] = [];
  let length = 0, done = false;
  while (length < GZIP_MAGIC.length) {
    const r = await reader.read();
    if (r.done) {
      done = true;
      break;
    }
    head.push(r.value);
    length += r.value.length;
  }
  const first = head.length === 1 ? head[0] : concat(head, length);
  const replay = new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.length) controller.enqueue(first);
      if (done) controller.close();
    },
    async pull(controller) {
      const r = await reader.read();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  if (!GZIP_MAGIC.every((b, i) => first[i] === b)) return { stream: replay, compressed: false };
  const inflated = replay
    .pipeThrough(new DecompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>)
    .getReader();
  const out = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let r;
      try {
        r = await inflated.read();
      } catch (e) {
        // The source's own errors (a dropped connection, a failing pipe:) pass through as they
        // are; the inflater's say what they are.
        if (!(e instanceof TypeError)) throw e;
        throw new Error(
          `${source}: gzip: ${e.message} (the compressed shard is cut short or damaged)`,
        );
      }
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return inflated.cancel(reason);
    },
  });
  return { stream: out, compressed: true };
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
