/**
 * gs:// URLs and the Cloud Storage endpoint in effect. No import of the storage client here, so
 * code that only needs to recognise a gs:// URL (the shard dispatcher in every loader worker, the
 * checks before a run) does not load its large module graph.
 */

export function isGsUrl(url: string): boolean {
  return url.startsWith("gs://");
}

/**
 * Splits `gs://bucket/path/to/object`; undefined when `url` is not of that form. With
 * `prefix: true` the object part may be empty or end in `/` (`gs://bucket`, `gs://bucket/dir/`):
 * a destination folder rather than an object.
 */
export function parseGsUrl(
  url: string,
  { prefix = false }: { prefix?: boolean } = {},
): { bucket: string; object: string } | undefined {
  const m = url.match(prefix ? /^gs:\/\/([^/]+)\/?(.*)$/ : /^gs:\/\/([^/]+)\/(.+)$/);
  return m ? { bucket: m[1], object: m[2] } : undefined;
}

/**
 * The storage endpoint in effect: `override`, else `STORAGE_EMULATOR_HOST`, as
 * `http(s)://host[:port]` (a bare `host:port` gets `http://`; a trailing `/storage/v1` is cut).
 * Undefined: Google's own endpoint, with the environment's credentials.
 */
export function gcsEndpoint(override?: string): string | undefined {
  const e = override ?? Deno.env.get("STORAGE_EMULATOR_HOST");
  if (!e) return undefined;
  return (/^https?:\/\//.test(e) ? e : `http://${e}`).replace(/\/+$/, "").replace(
    /\/storage\/v1$/,
    "",
  );
}
