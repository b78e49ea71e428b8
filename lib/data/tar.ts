/**
 * A streaming tar reader: members come out one by one while the archive streams in, so a
 * shard is never held in memory whole. Reads ustar, GNU (long names, base-256 sizes) and pax
 * (`path`, `size`) headers, which covers what Python's tarfile and GNU tar write.
 *
 * A stream that ends inside a header or a member is an error (`TarError`, "truncated"); one that
 * ends cleanly on a member boundary without the end-of-archive blocks is accepted, as Python's
 * tarfile (and so webdataset) does.
 */

export interface TarMember {
  /** Full path inside the archive. */
  name: string;
  /** The member's bytes (its own buffer, not a view into a larger one). */
  data: Uint8Array;
  /** Byte offset of the member's header in the archive, for error messages. */
  offset: number;
}

export class TarError extends Error {
  constructor(message: string, readonly kind: "truncated" | "corrupt" | "empty") {
    super(message);
    this.name = "TarError";
  }
}

const BLOCK = 512;

/**
 * Yields the regular files of a tar stream in archive order. `source` names it in errors.
 * `readToEnd`: after the end-of-archive blocks, read (and drop) the rest of the stream instead of
 * cancelling it, so that a compressed stream's checksum is checked (see gzip.ts).
 */
export async function* readTar(
  stream: ReadableStream<Uint8Array>,
  source = "tar stream",
  { readToEnd = false }: { readToEnd?: boolean } = {},
): AsyncGenerator<TarMember> {
  const input = new ByteReader(stream.getReader());
  let longName: string | undefined;
  let pax: Record<string, string> = {};
  try {
    for (;;) {
      const offset = input.position;
      const header = await input.read(BLOCK, true);
      if (header === null) {
        // A clean end on a block boundary; but a zero-byte file is no archive at all.
        if (offset === 0) {
          throw new TarError(`${source}: empty (0 bytes), not a tar archive`, "empty");
        }
        return;
      }
      if (header.length < BLOCK) {
        throw new TarError(`${source}: truncated inside a header at byte ${offset}`, "truncated");
      }
      if (isZeroBlock(header)) {
        // End-of-archive marker: what follows is ignored (but read through when asked).
        if (readToEnd) { while (await input.read(1 << 16, true) !== null); }
        return;
      }
      const h = parseHeader(header, source, offset);
      const what = `${source}: member "${longName ?? pax.path ?? h.name}" at byte ${offset}`;
      let size = h.size;
      if (pax.size !== undefined) size = /^\d+$/.test(pax.size) ? Number(pax.size) : NaN;
      if (!Number.isSafeInteger(size)) {
        const field = pax.size !== undefined
          ? `pax size "${pax.size}"`
          : `size field "${h.sizeText}"`;
        throw new TarError(`${what}: corrupt header, ${field} is not a valid size`, "corrupt");
      }
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (h.type === "L" || h.type === "x" || h.type === "0" || h.type === "\0" || h.type === "7") {
        const body = await input.read(size, false);
        if (body === null || body.length < size) {
          throw new TarError(`${what} is truncated (expected ${size} bytes)`, "truncated");
        }
        await input.skip(padded - size, what);
        if (h.type === "L") {
          longName = cString(body);
          continue;
        }
        if (h.type === "x") {
          pax = parsePax(body, what);
          continue;
        }
        const name = longName ?? pax.path ?? h.name;
        longName = undefined;
        pax = {};
        yield { name, data: body, offset };
      } else {
        // Directories, links, global pax headers, devices: no file content to read.
        await input.skip(padded, what);
        if (h.type !== "g") {
          longName = undefined;
          pax = {};
        }
      }
    }
  } finally {
    await input.cancel();
  }
}

interface Header {
  name: string;
  /** NaN when the field is not octal (nor base-256); `sizeText` is the field as written. */
  size: number;
  sizeText: string;
  type: string;
}

function parseHeader(b: Uint8Array, source: string, offset: number): Header {
  const stored = parseOctal(b.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i];
  if (stored !== sum) {
    throw new TarError(
      `${source}: corrupt tar header at byte ${offset} (checksum ${stored} != ${sum}); ` +
        `this is not a tar file or the data is damaged`,
      "corrupt",
    );
  }
  let name = cString(b.subarray(0, 100));
  const magic = cString(b.subarray(257, 263));
  if (magic === "ustar") {
    const prefix = cString(b.subarray(345, 500));
    if (prefix) name = `${prefix}/${name}`;
  }
  const sizeField = b.subarray(124, 136);
  return {
    name,
    size: parseSize(sizeField),
    sizeText: sizeField[0] & 0x80 ? "(base-256)" : printable(sizeField),
    type: String.fromCharCode(b[156]),
  };
}

function parseSize(field: Uint8Array): number {
  if (field[0] & 0x80) {
    // GNU base-256 for sizes of 8 GiB and more.
    let v = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i];
    return v;
  }
  return parseOctal(field);
}

function parseOctal(field: Uint8Array): number {
  let v = 0;
  for (const c of field) {
    if (c === 0 || c === 32) {
      if (v > 0) break;
      continue;
    }
    if (c < 48 || c > 55) return NaN;
    v = v * 8 + (c - 48);
  }
  return v;
}

/** A header field for a message: NULs dropped, other control bytes escaped. */
function printable(field: Uint8Array): string {
  let out = "";
  for (const c of field) {
    if (c === 0) continue;
    out += c >= 32 && c < 127 ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return out;
}

function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end));
}

function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

// pax records: "<len> <key>=<value>\n", len counting the whole record.
function parsePax(body: Uint8Array, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const sp = body.indexOf(32, i);
    const len = sp < 0 ? NaN : Number(new TextDecoder().decode(body.subarray(i, sp)));
    if (!Number.isInteger(len) || len <= 0 || i + len > body.length) {
      throw new TarError(`${what}: malformed pax header`, "corrupt");
    }
    const record = new TextDecoder().decode(body.subarray(sp + 1, i + len - 1));
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

/** Exact-length reads over a stream of arbitrarily sized chunks. */
class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #available = 0;
  #done = false;
  position = 0;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  /**
   * Reads `n` bytes into a fresh buffer. At end of stream: null when nothing was left and
   * `nullAtEnd`, otherwise the shorter remainder.
   */
  async read(n: number, nullAtEnd: boolean): Promise<Uint8Array | null> {
    while (this.#available < n && !this.#done) await this.#pull();
    if (this.#available === 0 && nullAtEnd) return null;
    const take = Math.min(n, this.#available);
    const out = new Uint8Array(take);
    let filled = 0;
    while (filled < take) {
      const head = this.#chunks[0];
      const k = Math.min(head.length, take - filled);
      out.set(k === head.length ? head : head.subarray(0, k), filled);
      filled += k;
      if (k === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(k);
    }
    this.#available -= take;
    this.position += take;
    return out;
  }

  async skip(n: number, what: string): Promise<void> {
    while (n > 0) {
      if (this.#available === 0) {
        if (this.#done) throw new TarError(`${what} is truncated (padding missing)`, "truncated");
        await this.#pull();
        continue;
      }
      const head = this.#chunks[0];
      const k = Math.min(head.length, n);
      if (k === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(k);
      this.#available -= k;
      this.position += k;
      n -= k;
    }
  }

  async cancel(): Promise<void> {
    if (!this.#done) {
      this.#done = true;
      await this.#reader.cancel().catch(() => {});
    }
    this.#reader.releaseLock();
  }

  async #pull(): Promise<void> {
    const { value, done } = await this.#reader.read();
    if (done) {
      this.#done = true;
      return;
    }
    if (value.length) {
      this.#chunks.push(value);
      this.#available += value.length;
    }
  }
}
