/**
 * `deno task prepare-imagenet`: copy timm's webdataset shards of ImageNet from the Hugging Face
 * hub to a bucket (gs://bucket/dir) or a directory.
 *
 * - Sizes come from the hub's tree API; a shard already at the destination with the right size
 *   is skipped, so an interrupted copy resumes where it stopped.
 * - Shards are copied `workers` at a time, streaming (download -> upload/write) with the
 *   openers' retries and stall timeouts; a local shard is written as `NAME.partial`, then
 *   renamed; a GCS object only appears once its upload completes.
 * - A progress line shows bytes, bytes/s and ETA; a summary lists what was copied, skipped and
 *   what failed (and why).
 */
import { braceExpand } from "./spec.ts";
import { gcsEndpoint, isGsUrl, parseGsUrl } from "../gcs/url.ts";
import { OpenError, type OpenOptions } from "./open.ts";
import { authHeaders, DEFAULT_HF_ENDPOINT, hfEndpoint, openHttp } from "./open_http.ts";
import { formatBytes, formatDuration, Progress } from "./progress.ts";

export interface ImagenetVariant {
  repo: string;
  files: string[];
}

export const IMAGENET_VARIANTS: Record<"1k" | "21k", ImagenetVariant> = {
  "1k": {
    repo: "timm/imagenet-1k-wds",
    files: [
      ...braceExpand("imagenet1k-train-{0000..1023}.tar"),
      ...braceExpand("imagenet1k-validation-{00..63}.tar"),
    ],
  },
  "21k": {
    repo: "timm/imagenet-w21-wds",
    files: braceExpand("imagenet_w21-train-{0000..2047}.tar"),
  },
};

export interface PrepareOptions {
  variant: "1k" | "21k";
  /** gs://bucket/dir or a local directory. */
  dest: string;
  /** Parallel copies. Default 8. */
  workers?: number;
  /** List what would be copied and stop. */
  dryRun?: boolean;
  /** Per-request limit for listing the repository (default LIST_TIMEOUT_MS). */
  listTimeoutMs?: number;
  /** Only the first N shards (to try things out). */
  limit?: number;
  /** Override the hub repository (e.g. a fork). */
  repo?: string;
  open?: OpenOptions;
  /** Progress and messages (default: stderr). */
  out?: { write: (text: string) => void; tty: boolean };
}

export interface PrepareSummary {
  files: number;
  copied: string[];
  skipped: string[];
  failed: { file: string; error: string }[];
  bytesCopied: number;
  bytesTotal: number;
  seconds: number;
}

/** How long listing a repository may wait for the hub before the run gives up. */
export const LIST_TIMEOUT_MS = 10_000;

export async function prepareImagenet(o: PrepareOptions): Promise<PrepareSummary> {
  const variant = IMAGENET_VARIANTS[o.variant];
  if (!variant) throw new Error(`unknown variant "${o.variant}" (use 1k or 21k)`);
  const repo = o.repo ?? variant.repo;
  const open = o.open ?? {};
  const out = o.out ?? stderrOut();
  const say = (line: string) => out.write(line + "\n");
  const files = variant.files.slice(0, o.limit ?? variant.files.length);
  const endpoint = hfEndpoint(open);
  // The token first: without one the gated repositories answer 401 after a round trip.
  if (!(open.hfToken ?? Deno.env.get("HF_TOKEN")) && endpoint === DEFAULT_HF_ENDPOINT) {
    throw new Error(
      `HF_TOKEN is not set: ${repo} is gated on the Hugging Face hub. Accept its terms at ` +
        `${endpoint}/datasets/${repo} while logged in, create a read token at ` +
        `${endpoint}/settings/tokens, then export HF_TOKEN=hf_...`,
    );
  }
  const sizes = await listSizes(endpoint, repo, open, o.listTimeoutMs ?? LIST_TIMEOUT_MS);
  const missing = files.filter((f) => !sizes.has(f));
  if (missing.length) {
    throw new Error(
      `${repo} on ${endpoint} lacks ${missing.length} expected shards (e.g. ${missing[0]}); ` +
        `check the repository name and that HF_TOKEN grants access`,
    );
  }
  const dest = destination(o.dest, open);
  const existing = await dest.sizes(files);
  const todo = files.filter((f) => existing.get(f) !== sizes.get(f));
  const skipped = files.filter((f) => existing.get(f) === sizes.get(f));
  const bytesTotal = todo.reduce((n, f) => n + sizes.get(f)!, 0);
  say(
    `${repo} -> ${o.dest}: ${files.length} shards, ${skipped.length} already complete, ` +
      `${todo.length} to copy (${formatBytes(bytesTotal)})`,
  );
  const summary: PrepareSummary = {
    files: files.length,
    copied: [],
    skipped,
    failed: [],
    bytesCopied: 0,
    bytesTotal,
    seconds: 0,
  };
  if (o.dryRun) {
    for (const f of todo) {
      say(`would copy ${sourceUrl(endpoint, repo, f)} (${formatBytes(sizes.get(f)!)})`);
    }
    return summary;
  }
  const progress = new Progress(bytesTotal, todo.length, out);
  const queue = todo.slice();
  const worker = async () => {
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      const size = sizes.get(f)!;
      let copied = 0;
      try {
        const stream = await openHttp(sourceUrl(endpoint, repo, f), open);
        const counted = stream.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, c) {
              copied += chunk.length;
              progress.add(chunk.length);
              c.enqueue(chunk);
            },
          }),
        );
        await dest.write(f, counted, size);
        summary.copied.push(f);
        summary.bytesCopied += copied;
      } catch (e) {
        progress.add(-copied);
        summary.failed.push({ file: f, error: (e as Error).message });
      }
      progress.fileDone();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.workers ?? 8) }, worker));
  progress.finish();
  summary.seconds = progress.elapsedSeconds;
  say(formatSummary(summary));
  return summary;
}

export function formatSummary(s: PrepareSummary): string {
  const rate = s.seconds > 0 ? ` at ${formatBytes(s.bytesCopied / s.seconds)}/s` : "";
  const lines = [
    `copied ${s.copied.length} shards (${formatBytes(s.bytesCopied)}) in ` +
    `${formatDuration(s.seconds)}${rate}; skipped ${s.skipped.length} already complete; ` +
    `${s.failed.length} failed`,
  ];
  for (const f of s.failed.slice(0, 20)) lines.push(`  failed ${f.file}: ${f.error}`);
  if (s.failed.length > 20) lines.push(`  ... and ${s.failed.length - 20} more`);
  if (s.failed.length) lines.push("run the same command again to retry the failed shards");
  return lines.join("\n");
}

/** `<endpoint>/datasets/<repo>/resolve/main/<file>`, as huggingface_hub builds it. */
export function sourceUrl(endpoint: string, repo: string, file: string): string {
  return `${endpoint}/datasets/${repo}/resolve/main/${file}`;
}

/** File sizes from `/api/datasets/<repo>/tree/main`, following its `Link: rel="next"` pages. */
async function listSizes(
  endpoint: string,
  repo: string,
  open: OpenOptions,
  timeoutMs: number,
): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  let url: string | undefined = `${endpoint}/api/datasets/${repo}/tree/main`;
  while (url) {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { ...authHeaders(url, open), accept: "application/json" },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const why = (e as Error).name === "TimeoutError"
        ? `no answer within ${timeoutMs / 1000} s`
        : (e as Error).message;
      throw new Error(
        `cannot reach the Hugging Face hub at ${endpoint} (${why}): check the network, ` +
          "or set HF_ENDPOINT to a mirror",
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      const hint = res.status === 401 || res.status === 403 || res.status === 404
        ? " (set HF_TOKEN to a token of an account that accepted the dataset's terms)"
        : "";
      throw new Error(`listing ${repo} on ${endpoint}: HTTP ${res.status}${hint}`);
    }
    const entries = await res.json() as {
      type: string;
      path: string;
      size?: number;
      lfs?: { size?: number };
    }[];
    for (const e of entries) {
      if (e.type === "file") sizes.set(e.path, e.lfs?.size ?? e.size ?? NaN);
    }
    url = nextLink(res.headers.get("link"));
  }
  return sizes;
}

function nextLink(header: string | null): string | undefined {
  const m = header?.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  return m?.[1];
}

interface Destination {
  /** Sizes of the files already there (absent ones missing from the map). */
  sizes(files: string[]): Promise<Map<string, number>>;
  /** Writes a file; visible under its name only once complete and of `size` bytes. */
  write(file: string, data: ReadableStream<Uint8Array>, size: number): Promise<void>;
}

function destination(dest: string, open: OpenOptions): Destination {
  if (isGsUrl(dest)) return gcsDestination(dest, open);
  return localDestination(dest.replace(/^file:\/\//, ""));
}

function localDestination(dir: string): Destination {
  return {
    async sizes(files) {
      const out = new Map<string, number>();
      for (const f of files) {
        try {
          out.set(f, (await Deno.stat(`${dir}/${f}`)).size);
        } catch {
          // not there
        }
      }
      return out;
    },
    async write(file, data, size) {
      await Deno.mkdir(dir, { recursive: true });
      const partial = `${dir}/${file}.partial`;
      const fh = await Deno.open(partial, { write: true, create: true, truncate: true });
      await data.pipeTo(fh.writable);
      const got = (await Deno.stat(partial)).size;
      if (got !== size) {
        await Deno.remove(partial).catch(() => {});
        throw new Error(`${file}: received ${got} bytes, the hub lists ${size}`);
      }
      await Deno.rename(partial, `${dir}/${file}`);
    },
  };
}

function gcsDestination(dest: string, open: OpenOptions): Destination {
  const parts = parseGsUrl(dest, { prefix: true });
  if (!parts) throw new OpenError(`${dest}: not a gs://bucket/dir destination`, true);
  const [bucketName, prefix] = [parts.bucket, parts.object.replace(/\/+$/, "")];
  const name = (f: string) => (prefix ? `${prefix}/${f}` : f);
  const bucket = async () =>
    (await import("../gcs/client.ts")).gcsClient(gcsEndpoint(open.gcsEndpoint)).bucket(bucketName);
  return {
    async sizes(files) {
      const b = await bucket();
      const out = new Map<string, number>();
      const [objects] = await b.getFiles({ prefix: prefix ? `${prefix}/` : undefined });
      const wanted = new Set(files.map(name));
      for (const obj of objects) {
        if (wanted.has(obj.name)) {
          out.set(obj.name.slice(prefix ? prefix.length + 1 : 0), Number(obj.metadata.size));
        }
      }
      return out;
    },
    async write(file, data, size) {
      const { Readable } = await import("node:stream");
      const { pipeline } = await import("node:stream/promises");
      const obj = (await bucket()).file(name(file));
      await pipeline(
        Readable.fromWeb(data as import("node:stream/web").ReadableStream<Uint8Array>),
        obj.createWriteStream({ resumable: true, metadata: { contentType: "application/x-tar" } }),
      );
      const [meta] = await obj.getMetadata();
      if (Number(meta.size) !== size) {
        await obj.delete().catch(() => {});
        throw new Error(
          `gs://${bucketName}/${name(file)}: uploaded ${meta.size} bytes, the hub lists ${size}`,
        );
      }
    },
  };
}

function stderrOut() {
  const enc = new TextEncoder();
  return {
    write: (t: string) => Deno.stderr.writeSync(enc.encode(t)),
    tty: Deno.stderr.isTerminal(),
  };
}
