/**
 * Checksums of the checkpoint files this project writes, so that a bit flipped on disk is found
 * on the next read instead of silently changing an evaluation or a resumed run.
 *
 * Each file `F` gets a sidecar `F.sha256` in `sha256sum`'s format (`<hex>  <name>`), so the
 * checkpoint itself stays byte for byte what Flax (or torch) reads and writes, and
 * `sha256sum -c F.sha256` checks it by hand. The sidecar lists the SHA-256 of every content `F`
 * may legitimately hold; while a write replaces `F` it lists both the old and the new one:
 *
 * 1. the new content goes to a temporary file (hashed on the way);
 * 2. when `F` has a sidecar: `F.sha256` := {new, old...} (atomic);
 * 3. the temporary file is renamed over `F`;
 * 4. `F.sha256` := {new} (atomic).
 *
 * A kill between any two steps leaves `F` matching its sidecar (or, for a file that had none, no
 * sidecar), never a false alarm. Reading a file with a sidecar hashes it first and refuses a
 * mismatch, naming the file; a file without one (the original's released checkpoints) is read
 * with a note. gs:// objects carry GCS's own CRC32C/MD5, which the client checks on download.
 */
import { createHash } from "node:crypto";
import { atomicWrite, atomicWriteFile } from "./atomic.ts";
import { CheckpointError } from "./errors.ts";

export const CHECKSUM_SUFFIX = ".sha256";

/** Writes `pieces` to `path` atomically together with its checksum file (steps above). */
export async function checkedWrite(
  path: string,
  pieces: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): Promise<void> {
  const hash = createHash("sha256");
  let digest = "";
  const sidecar = path + CHECKSUM_SUFFIX;
  await atomicWrite(path, hashed(pieces, hash), {
    async beforeRename() {
      digest = hash.digest("hex");
      const old = await readSums(sidecar);
      if (old === null) return;
      await atomicWriteFile(sidecar, sumsText([digest, ...old.filter((d) => d !== digest)], path));
    },
  });
  await atomicWriteFile(sidecar, sumsText([digest], path));
}

/** Local paths whose content was checked another way (gs:// downloads): no note about them. */
const checkedElsewhere = new Set<string>();

export function markCheckedElsewhere(path: string, on: boolean): void {
  if (on) checkedElsewhere.add(path);
  else checkedElsewhere.delete(path);
}

const noted = new Set<string>();

/**
 * Checks `path` against its checksum file; throws a CheckpointError naming `name` (default
 * `path`) on a mismatch. Without a checksum file it notes once (`note`) that nothing was checked.
 */
export async function verifyChecksum(
  path: string,
  name = path,
  note: (line: string) => void = (l) => console.warn(l),
): Promise<void> {
  const sums = await readSums(path + CHECKSUM_SUFFIX);
  if (sums === null) {
    if (!checkedElsewhere.has(path) && !noted.has(path) && await isFile(path)) {
      noted.add(path);
      note(`note: ${name} has no checksum file (${name}${CHECKSUM_SUFFIX}); read unchecked`);
    }
    return;
  }
  const actual = await fileSha256(path);
  if (!sums.includes(actual)) {
    throw new CheckpointError(
      name,
      undefined,
      `checksum mismatch: its SHA-256 is ${actual}, but ${name}${CHECKSUM_SUFFIX} records ` +
        `${sums.join(" or ")}: the file changed after it was written (disk or copy corruption); ` +
        "restore it from a good copy",
    );
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false; // the reader says what is wrong
  }
}

export async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(8 << 20);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

/** The digests a checksum file lists, or null when there is none. */
async function readSums(sidecar: string): Promise<string[] | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(sidecar);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new CheckpointError(sidecar, undefined, `cannot read it: ${(e as Error).message}`);
  }
  const sums = text.split("\n").filter((l) => l.trim()).map((l) => l.split(/\s+/)[0]);
  if (sums.length === 0 || !sums.every((s) => /^[0-9a-f]{64}$/.test(s))) {
    throw new CheckpointError(sidecar, undefined, "not a sha256sum file (<64 hex>  <name> lines)");
  }
  return sums;
}

function sumsText(digests: string[], path: string): Uint8Array {
  const name = path.split("/").pop();
  return new TextEncoder().encode(digests.map((d) => `${d}  ${name}\n`).join(""));
}

async function* hashed(
  pieces: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  hash: ReturnType<typeof createHash>,
): AsyncGenerator<Uint8Array> {
  for await (const p of pieces) {
    hash.update(p);
    yield p;
  }
}
