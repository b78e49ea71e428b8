/**
 * Where checkpoints live: local paths or `gs://bucket/object` URLs. Local writes are atomic
 * (temp file + rename). gs:// writes go to a local temp file first, then one upload replaces the
 * object (GCS makes an object visible only once its upload completes, so an interrupted upload
 * leaves the previous object in place). gs:// reads download to a temp file and read from there,
 * so large checkpoints are streamed, not held twice.
 *
 * `STORAGE_EMULATOR_HOST` (e.g. `http://127.0.0.1:9023`) points the client at an emulator.
 */
import type { Storage } from "@google-cloud/storage";
import { gcsClient } from "../gcs/client.ts";
import { gcsEndpoint, isGsUrl, parseGsUrl } from "../gcs/url.ts";
import { atomicWrite } from "./atomic.ts";
import { CheckpointError } from "./errors.ts";

function parseGcsUrl(url: string): { bucket: string; object: string } {
  const parts = parseGsUrl(url);
  if (!parts) throw new CheckpointError(url, undefined, "not a gs://bucket/object URL");
  return parts;
}

/** Runs `fn` on a local path holding the input (downloaded first for gs:// URLs). */
export async function withLocalInput<T>(url: string, fn: (path: string) => Promise<T>): Promise<T> {
  if (!isGsUrl(url)) return await fn(url);
  const { bucket, object } = parseGcsUrl(url);
  const dir = await Deno.makeTempDir({ prefix: "ckpt-download-" });
  const local = `${dir}/${object.split("/").pop()}`;
  try {
    try {
      await gcs().bucket(bucket).file(object).download({ destination: local });
    } catch (e) {
      const code = (e as { code?: number }).code;
      throw new CheckpointError(
        url,
        undefined,
        code === 404 ? "object not found" : `download failed: ${(e as Error).message}`,
      );
    }
    return await fn(local);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Whether a local file or gs:// object exists, asked directly (a stat or a metadata request). Any
 * failure other than "it does not exist" throws, naming the path: an unreadable checkpoint is
 * never mistaken for a missing one.
 */
export async function inputExists(url: string): Promise<boolean> {
  if (!isGsUrl(url)) {
    try {
      const info = await Deno.stat(url);
      if (!info.isFile) throw new CheckpointError(url, undefined, "exists but is not a file");
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(url, undefined, `cannot check it: ${(e as Error).message}`);
    }
  }
  const { bucket, object } = parseGcsUrl(url);
  try {
    const [exists] = await gcs().bucket(bucket).file(object).exists();
    return exists;
  } catch (e) {
    throw new CheckpointError(url, undefined, `cannot check it: ${(e as Error).message}`);
  }
}

/** Writes `pieces` to a local path (atomically) or uploads them to a gs:// URL. */
export async function writeOutput(
  url: string,
  pieces: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): Promise<void> {
  if (!isGsUrl(url)) {
    await atomicWrite(url, pieces);
    return;
  }
  const { bucket, object } = parseGcsUrl(url);
  const dir = await Deno.makeTempDir({ prefix: "ckpt-upload-" });
  try {
    const local = `${dir}/upload`;
    await atomicWrite(local, pieces);
    try {
      await gcs().bucket(bucket).upload(local, { destination: object, resumable: false });
    } catch (e) {
      throw new CheckpointError(url, undefined, `upload failed: ${(e as Error).message}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Writes bytes to a local path or gs:// URL (see writeOutput). */
export function writeOutputBytes(url: string, bytes: Uint8Array): Promise<void> {
  return writeOutput(url, [bytes]);
}

/** Reads a whole (small) input, e.g. a label-mapping JSON, from a local path or gs:// URL. */
export function readInputBytes(url: string): Promise<Uint8Array> {
  return withLocalInput(url, async (path) => {
    try {
      return await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new CheckpointError(url, undefined, "file not found");
      }
      throw e;
    }
  });
}

/**
 * Points gs:// I/O of this module instance at an emulator (overrides STORAGE_EMULATOR_HOST;
 * `undefined` restores it). Tests use this: environment variables are shared by parallel tests.
 */
export function useGcsEndpoint(url: string | undefined): void {
  endpointOverride = url;
}

let endpointOverride: string | undefined;

function gcs(): Storage {
  return gcsClient(gcsEndpoint(endpointOverride));
}
