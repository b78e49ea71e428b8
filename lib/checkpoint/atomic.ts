/**
 * Atomic local writes: data goes to a temporary file in the same folder, is flushed to disk, and
 * only then renamed over `path`. A crash or an error mid-write leaves the old file (if any) intact
 * and no partial file under `path`.
 */

const TMP_SUFFIX = ".tmp";
/** `{target}.{pid}-{8 hex}.tmp`: the temporary name `atomicWrite` gives a write in progress. */
const TMP_NAME = /^(.+)\.\d+-[0-9a-f]{8}\.tmp$/;

/**
 * Removes the temporary files that killed writes left in `dir` (those of `atomicWrite` whose
 * target name passes `ours`). Run it only when no other process writes there. Returns their names.
 */
export async function removeStaleTemps(
  dir: string,
  ours: (target: string) => boolean,
): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return removed;
    throw e;
  }
  for (const e of entries) {
    const target = e.isFile ? e.name.match(TMP_NAME)?.[1] : undefined;
    if (target === undefined || !ours(target)) continue;
    await Deno.remove(`${dir}/${e.name}`);
    removed.push(e.name);
  }
  return removed;
}

/** Writes `bytes` to `path` atomically. */
export async function atomicWriteFile(path: string, bytes: Uint8Array): Promise<void> {
  await atomicWrite(path, [bytes]);
}

/**
 * Writes the concatenation of `pieces` to `path` atomically. Small pieces are coalesced through a
 * 1 MiB buffer; large ones are written straight from their memory, so a big checkpoint is never
 * assembled in memory. `beforeRename` runs once the data is on disk, before it replaces `path`
 * (checksum.ts updates the checksum file there).
 */
export async function atomicWrite(
  path: string,
  pieces: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  { beforeRename }: { beforeRename?: () => Promise<void> } = {},
): Promise<void> {
  const tmp = `${path}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}${TMP_SUFFIX}`;
  let file: Deno.FsFile | undefined;
  try {
    try {
      file = await Deno.open(tmp, { write: true, createNew: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(`cannot create the file: its folder does not exist`);
      }
      throw e;
    }
    const buf = new Uint8Array(1 << 20);
    let used = 0;
    for await (const piece of pieces) {
      if (used + piece.length > buf.length) {
        await writeAll(file, buf.subarray(0, used));
        used = 0;
      }
      if (piece.length >= buf.length) await writeAll(file, piece);
      else {
        buf.set(piece, used);
        used += piece.length;
      }
    }
    await writeAll(file, buf.subarray(0, used));
    await file.syncData();
    file.close();
    file = undefined;
    await beforeRename?.();
    await Deno.rename(tmp, path);
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}
