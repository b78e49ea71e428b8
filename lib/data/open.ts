/**
 * Shard openers: a URL in, a byte stream out, never the whole shard in memory.
 *
 * | form | how |
 * |---|---|
 * | `/path/x.tar`, `file:/path/x.tar` | the local file |
 * | `http://`, `https://` | fetch, with retries, backoff, stall timeouts and resumption by `Range` |
 * | `gs://bucket/object` | `@google-cloud/storage`, resumed the same way |
 * | `pipe:CMD` | stdout of `sh -c CMD`; exit 0 or 141 (SIGPIPE) is success |
 *
 * Every error names the shard and says what went wrong; `OpenError.permanent` tells the loader
 * that retrying will not help (404, a failing command).
 */
import { isGsUrl } from "../gcs/url.ts";
import { OpenError, type OpenOptions } from "./open_base.ts";
import { openFile } from "./open_file.ts";
import { openHttp } from "./open_http.ts";
import { openPipe } from "./open_pipe.ts";

export { OpenError, type OpenOptions, redactUrl } from "./open_base.ts";

/** Opens a shard for streaming. Rejects (with `OpenError`) when it cannot be opened at all. */
export function openShard(
  url: string,
  options: OpenOptions = {},
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  if (url.startsWith("pipe:")) return openPipe(url.slice(5), options, signal);
  if (/^https?:\/\//i.test(url)) return openHttp(url, options, signal);
  // Loaded on first use: the storage client is a large module graph every worker would load.
  if (isGsUrl(url)) {
    return import("./open_gcs.ts").then((m) => m.openGcs(url, options, signal));
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith("file:")) {
    return Promise.reject(
      new OpenError(
        `${url}: unsupported scheme (use a path, file:, http(s)://, gs:// or pipe:)`,
        true,
      ),
    );
  }
  return openFile(url, signal);
}
