/**
 * What every shard opener shares (open_file, open_http, open_gcs, open_pipe, resumable): the
 * options, the error and the URL redaction. In a file of its own so that the openers do not import
 * the dispatcher (open.ts) that imports them.
 */
import { redact } from "../config/redact.ts";

/** Plain data, so that it can be posted to loader workers. */
export interface OpenOptions {
  /** A read that gets no bytes for this long is aborted and retried (ms). Default 60 s. */
  stallTimeoutMs?: number;
  /** Attempts after the first, per failure, for http(s) and gs. Default 5. */
  retries?: number;
  /** First retry delay (ms), doubled each time up to 30 s. Default 500. */
  backoffMs?: number;
  /** Storage API endpoint for gs:// (default: `STORAGE_EMULATOR_HOST`, else Google's). */
  gcsEndpoint?: string;
  /** Hugging Face hub endpoint (default: `HF_ENDPOINT`, else https://huggingface.co). */
  hfEndpoint?: string;
  /** Bearer token for the hub (default: `HF_TOKEN`). Never logged. */
  hfToken?: string;
}

export class OpenError extends Error {
  constructor(message: string, readonly permanent: boolean, options?: ErrorOptions) {
    super(redact(message), options);
    this.name = "OpenError";
  }
}

/** A URL with its query string cut off, for messages (signed URLs carry secrets there). */
export function redactUrl(url: string): string {
  const q = url.search(/[?#]/);
  return q < 0 ? url : url.slice(0, q) + "?...";
}
