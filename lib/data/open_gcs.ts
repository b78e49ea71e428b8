/**
 * gs://bucket/object shards. `@google-cloud/storage` supplies credentials (from the
 * environment, as gcloud sets them up on TPU VMs) and the object's metadata; the bytes are
 * fetched from the JSON API's media URL directly, through the same resumable reader as
 * http(s) (the client's own download stream crashes the process on a server error under
 * Deno's node compatibility layer). `OpenOptions.gcsEndpoint` or `STORAGE_EMULATOR_HOST` points
 * everything elsewhere (an emulator, a test server); no credentials are used then.
 */
// deno-lint-ignore no-import-prefix -- full specifiers: mod.ts imports from anywhere
import { Storage } from "npm:@google-cloud/storage@8.4.0";
import { OpenError, type OpenOptions } from "./open.ts";
import { connectHttp } from "./open_http.ts";
import { resumableStream, retryPolicy } from "./resumable.ts";

export function openGcs(
  url: string,
  options: OpenOptions,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const { bucket, object } = parseGsUrl(url);
  const endpoint = gcsEndpoint(options);
  const client = gcsClient(options);
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
      const headers = endpoint ? {} : await authHeaders(client);
      const conn = await connectHttp(media, url, headers, offset, abort);
      return { ...conn, totalLength: size };
    },
    retryPolicy(options),
    signal,
  );
}

/** Splits `gs://bucket/path/to/object`. */
export function parseGsUrl(url: string): { bucket: string; object: string } {
  const m = url.match(/^gs:\/\/([^/]+)\/(.+)$/);
  if (!m) throw new OpenError(`${url}: not a gs://bucket/object URL`, true);
  return { bucket: m[1], object: m[2] };
}

const clients = new Map<string, Storage>();

/** One client per endpoint and thread. */
export function gcsClient(options: OpenOptions = {}): Storage {
  const endpoint = gcsEndpoint(options);
  let client = clients.get(endpoint ?? "");
  if (!client) {
    client = new Storage(endpoint ? { apiEndpoint: endpoint, projectId: "local" } : {});
    clients.set(endpoint ?? "", client);
  }
  return client;
}

/** The endpoint override in effect, if any. */
export function gcsEndpoint(options: OpenOptions): string | undefined {
  const e = options.gcsEndpoint ?? Deno.env.get("STORAGE_EMULATOR_HOST");
  if (!e) return undefined;
  return (/^https?:\/\//.test(e) ? e : `http://${e}`).replace(/\/+$/, "").replace(
    /\/storage\/v1$/,
    "",
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

async function authHeaders(client: Storage): Promise<Record<string, string>> {
  const h: unknown = await client.authClient.getRequestHeaders();
  if (h instanceof Headers) return Object.fromEntries(h.entries());
  return (h ?? {}) as Record<string, string>;
}
