/**
 * gs://bucket/object shards through `@google-cloud/storage` (credentials from the environment,
 * as gcloud sets them up on TPU VMs). `OpenOptions.gcsEndpoint` or `STORAGE_EMULATOR_HOST`
 * points the client elsewhere (an emulator, a test server); no credentials are used then.
 */
import { Readable } from "node:stream";
import { Storage } from "@google-cloud/storage";
import { OpenError, type OpenOptions } from "./open.ts";
import { type Connection, resumableStream, retryPolicy } from "./resumable.ts";

export function openGcs(
  url: string,
  options: OpenOptions,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const { bucket, object } = parseGsUrl(url);
  const file = gcsClient(options).bucket(bucket).file(object);
  let size: number | undefined;
  return resumableStream(
    url,
    async (offset) => {
      if (size === undefined) {
        try {
          const [meta] = await file.getMetadata();
          size = Number(meta.size);
        } catch (e) {
          throw gcsError(url, e);
        }
      }
      const stream = file.createReadStream({ start: offset, validation: false });
      const web = Readable.toWeb(stream) as ReadableStream<Uint8Array>;
      const reader = web.getReader();
      const conn: Connection = {
        read: () => reader.read().catch((e) => Promise.reject(gcsError(url, e))),
        totalLength: size,
        close() {
          stream.destroy();
        },
      };
      return conn;
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

function gcsEndpoint(options: OpenOptions): string | undefined {
  const e = options.gcsEndpoint ?? Deno.env.get("STORAGE_EMULATOR_HOST");
  if (!e) return undefined;
  return (/^https?:\/\//.test(e) ? e : `http://${e}`).replace(/\/+$/, "");
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
