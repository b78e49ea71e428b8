/**
 * http(s):// shards. Requests to the Hugging Face hub carry `Authorization: Bearer $HF_TOKEN`;
 * the hub is `HF_ENDPOINT` when set (as `huggingface_hub` reads it), so mirrors and tests can
 * stand in for it. The token never appears in messages, and fetch drops it on the hub's
 * cross-origin redirect to its CDN.
 */
import { redact } from "../config/redact.ts";
import { OpenError, type OpenOptions, redactUrl } from "./open_base.ts";
import { type Connection, resumableStream, retryPolicy } from "./resumable.ts";

export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

export function openHttp(
  url: string,
  options: OpenOptions,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const shown = redactUrl(url);
  const headers = authHeaders(url, options);
  return resumableStream(
    shown,
    (offset, abort) => connectHttp(url, shown, headers, offset, abort),
    retryPolicy(options),
    signal,
  );
}

/** The hub endpoint in use: the option, else `HF_ENDPOINT`, else huggingface.co. */
export function hfEndpoint(options: OpenOptions = {}): string {
  return (options.hfEndpoint || Deno.env.get("HF_ENDPOINT") || DEFAULT_HF_ENDPOINT)
    .replace(/\/+$/, "");
}

/** `Authorization` for URLs on the hub when a token is set; nothing otherwise. */
export function authHeaders(url: string, options: OpenOptions = {}): Record<string, string> {
  const token = options.hfToken ?? Deno.env.get("HF_TOKEN");
  if (!token) return {};
  const origin = new URL(url).origin;
  const hub = new URL(hfEndpoint(options)).origin;
  return origin === hub || origin === DEFAULT_HF_ENDPOINT
    ? { authorization: `Bearer ${token}` }
    : {};
}

/** One GET from `offset` on (a `Range` request when > 0). */
export async function connectHttp(
  url: string,
  shown: string,
  baseHeaders: Record<string, string>,
  offset: number,
  signal: AbortSignal,
): Promise<Connection> {
  const headers = { ...baseHeaders, ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) };
  let res: Response;
  try {
    res = await fetch(url, { headers, signal });
  } catch (e) {
    throw new OpenError(`${shown}: ${(e as Error).message}`, false, { cause: e });
  }
  if (!res.ok) {
    // The body may echo the request (a token included): redacted, then cut to 200 characters.
    let detail = redact(await res.text().catch(() => ""));
    const token = /^bearer (.+)$/i.exec(baseHeaders.authorization ?? "")?.[1];
    if (token) detail = detail.replaceAll(token, "***"); // an option, maybe not in the env
    detail = detail.slice(0, 200).trim();
    await res.body?.cancel().catch(() => {});
    const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
    let hint = "";
    if (res.status === 401 || res.status === 403) {
      hint = " (for the Hugging Face hub, set HF_TOKEN and accept the dataset's terms)";
    }
    throw new OpenError(
      `${shown}: HTTP ${res.status} ${res.statusText}${hint}${detail ? `: ${detail}` : ""}`,
      !retryable,
    );
  }
  if (!res.body) throw new OpenError(`${shown}: HTTP ${res.status} with no body`, false);
  const ranged = res.status === 206;
  const length = Number(res.headers.get("content-length") ?? NaN);
  const reader = res.body.getReader();
  return {
    read: () => reader.read(),
    // A 200 to a range request restarts from byte 0: drop what was already delivered.
    skip: offset > 0 && !ranged ? offset : 0,
    totalLength: Number.isFinite(length) ? (ranged ? offset + length : length) : undefined,
    close() {
      reader.cancel().catch(() => {});
    },
  };
}
