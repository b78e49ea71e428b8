/**
 * gs://bucket/object shards. `@google-cloud/storage` supplies credentials (from the
 * environment, as gcloud sets them up on TPU VMs) and the object's metadata; the bytes are
 * fetched from the JSON API's media URL directly, through the same resumable reader as
 * http(s) (the client's own download stream crashes the process on a server error under
 * Deno's node compatibility layer). `OpenOptions.gcsEndpoint` or `STORAGE_EMULATOR_HOST` points
 * everything elsewhere (an emulator, a test server); no credentials are used then.
 */
import { gcsAuthHeaders, gcsClient } from "../gcs/client.ts";
import { gcsEndpoint, parseGsUrl } from "../gcs/url.ts";
import { OpenError, type OpenOptions } from "./open_base.ts";
import { connectHttp } from "./open_http.ts";
import { resumableStream, retryPolicy } from "./resumable.ts";

export function openGcs(
  url: string,
  options: OpenOptions,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const parts = parseGsUrl(url);
  if (!parts) throw new OpenError(`${url}: not a gs://bucket/object URL`, true);
  const { bucket, object } = parts;
  const endpoint = gcsEndpoint(options.gcsEndpoint);
  const client = gcsClient(endpoint);
  const file = client.bucket(bucket).file(object);
  const media = `${endpoint ?? client.apiEndpoint}/storage/v1/b/${encodeURIComponent(bucket)}/o/` +
    `${encodeURIComponent(object)}?alt=media`;
  let size: number | undefined;
  return resumableStream(
    url,
    async (offset, abort) => {
      if (size === undefined) {
        try {
          const [meta] = await file.getMetadata();
          size = Number(meta.size);
        } catch (e) {
          throw gcsError(url, e);
        }
      }
      const headers = endpoint ? {} : await gcsAuthHeaders(client);
      const conn = await connectHttp(media, url, headers, offset, abort);
      return { ...conn, totalLength: size };
    },
    retryPolicy(options),
    signal,
  );
}

/** A storage error as an OpenError; 4xx other than 408/429 are permanent. */
export function gcsError(url: string, e: unknown): OpenError {
  if (e instanceof OpenError) return e;
  const code = Number((e as { code?: unknown }).code);
  const permanent = code >= 400 && code < 500 && code !== 408 && code !== 429;
  let message = (e as Error).message ?? String(e);
  try {
    message = JSON.parse(message).error?.message ?? message;
  } catch {
    // not JSON
  }
  const status = Number.isFinite(code) && code > 0 ? `HTTP ${code}: ` : "";
  return new OpenError(`${url}: ${status}${message}`, permanent, { cause: e });
}
