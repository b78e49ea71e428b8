/**
 * The subset of ZIP that PyTorch archives use: stored (uncompressed) entries, CRC-32 checked,
 * data aligned to 64 bytes with a "FB" padding extra field (as torch's writer does), and ZIP64
 * records when an entry or an offset passes 4 GiB. Writing streams; reading seeks, so entries
 * can be read straight into their final buffers.
 */
import zlib from "node:zlib";
import { concat } from "./msgpack_encode.ts";

export interface ZipEntry {
  name: string;
  /** Offset of the entry's data (after its local header) in the archive. */
  dataOffset: number;
  size: number;
  crc32: number;
  method: number;
}

/** Random access to the bytes of an archive (a file or a buffer). */
export interface RandomAccess {
  readonly size: number;
  readAt(offset: number, dst: Uint8Array): Promise<void>;
}

export function crc32(bytes: Uint8Array, previous = 0): number {
  return (zlib as unknown as { crc32(b: Uint8Array, p: number): number }).crc32(bytes, previous) >>>
    0;
}

/**
 * Builds an archive as a stream of pieces. `add` returns the pieces of one entry (local header,
 * data); `finish` returns the central directory. Data must be given whole (its CRC is needed
 * for the local header, as torch writes it).
 */
export class ZipWriter {
  #offset = 0;
  #central: Uint8Array[] = [];
  #count = 0;

  constructor(private readonly options: { align?: number; zip64Threshold?: number } = {}) {}

  *add(name: string, data: Uint8Array): Generator<Uint8Array> {
    const nameBytes = ENCODER.encode(name);
    const limit = this.options.zip64Threshold ?? 0xffffffff;
    const crc = crc32(data);
    const size = data.length;
    const offset = this.#offset;
    const zip64 = size >= limit || offset >= limit;
    const zip64Local = zip64 ? zip64Extra([size, size]) : new Uint8Array(0);
    const align = this.options.align ?? 64;
    const before = offset + 30 + nameBytes.length + zip64Local.length + 4;
    const pad = (align - (before % align)) % align;
    const fb = new Uint8Array(4 + pad).fill(0x5a); // 'Z' padding, as torch writes it
    fb[0] = 0x46;
    fb[1] = 0x42;
    fb[2] = pad & 0xff;
    fb[3] = pad >> 8;
    const local = new Uint8Array(30);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, zip64 ? 45 : 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, zip64 ? 0xffffffff : size, true);
    lv.setUint32(22, zip64 ? 0xffffffff : size, true);
    lv.setUint16(26, nameBytes.length, true);
    lv.setUint16(28, zip64Local.length + fb.length, true);
    const header = concat([local, nameBytes, zip64Local, fb]);
    this.#offset += header.length + size;

    const big = [
      size >= limit ? size : -1,
      size >= limit ? size : -1,
      offset >= limit ? offset : -1,
    ]
      .filter((x) => x >= 0);
    const centralExtra = big.length ? zip64Extra(big) : new Uint8Array(0);
    const c = new Uint8Array(46);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, zip64 ? 45 : 20, true);
    cv.setUint16(6, zip64 ? 45 : 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, size >= limit ? 0xffffffff : size, true);
    cv.setUint32(24, size >= limit ? 0xffffffff : size, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint16(30, centralExtra.length, true);
    cv.setUint32(42, offset >= limit ? 0xffffffff : offset, true);
    this.#central.push(c, nameBytes, centralExtra);
    this.#count++;
    yield header;
    yield data;
  }

  *finish(): Generator<Uint8Array> {
    const limit = this.options.zip64Threshold ?? 0xffffffff;
    const cdOffset = this.#offset;
    const cd = concat(this.#central);
    yield cd;
    const zip64 = cdOffset >= limit || cd.length >= limit || this.#count >= 0xffff;
    if (zip64) {
      const rec = new Uint8Array(56 + 20);
      const v = new DataView(rec.buffer);
      v.setUint32(0, 0x06064b50, true);
      v.setBigUint64(4, 44n, true);
      v.setUint16(12, 45, true);
      v.setUint16(14, 45, true);
      v.setBigUint64(24, BigInt(this.#count), true);
      v.setBigUint64(32, BigInt(this.#count), true);
      v.setBigUint64(40, BigInt(cd.length), true);
      v.setBigUint64(48, BigInt(cdOffset), true);
      v.setUint32(56, 0x07064b50, true);
      v.setBigUint64(56 + 8, BigInt(cdOffset + cd.length), true);
      v.setUint32(56 + 16, 1, true);
      yield rec;
    }
    const end = new Uint8Array(22);
    const ev = new DataView(end.buffer);
    ev.setUint32(0, 0x06054b50, true);
    ev.setUint16(8, zip64 ? 0xffff : this.#count, true);
    ev.setUint16(10, zip64 ? 0xffff : this.#count, true);
    ev.setUint32(12, zip64 ? 0xffffffff : cd.length, true);
    ev.setUint32(16, zip64 ? 0xffffffff : cdOffset, true);
    yield end;
  }
}

/** Lists the entries of an archive from its central directory. */
export async function readZipDirectory(src: RandomAccess): Promise<ZipEntry[]> {
  const tailSize = Math.min(src.size, 22 + 0xffff + 20);
  if (src.size < 22) throw new Error(`not a zip archive (${src.size} bytes)`);
  const tail = new Uint8Array(tailSize);
  await src.readAt(src.size - tailSize, tail);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailSize - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("not a zip archive (no end of central directory): truncated?");
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tv.getUint32(loc, true) !== 0x07064b50) throw new Error("zip64 locator missing");
    const recOffset = Number(tv.getBigUint64(loc + 8, true));
    const rec = new Uint8Array(56);
    await src.readAt(recOffset, rec);
    const rv = new DataView(rec.buffer);
    if (rv.getUint32(0, true) !== 0x06064b50) throw new Error("zip64 end record missing");
    count = Number(rv.getBigUint64(32, true));
    cdSize = Number(rv.getBigUint64(40, true));
    cdOffset = Number(rv.getBigUint64(48, true));
  }
  if (cdOffset + cdSize > src.size) {
    throw new Error("central directory runs past the end: truncated?");
  }
  const cd = new Uint8Array(cdSize);
  await src.readAt(cdOffset, cd);
  const v = new DataView(cd.buffer);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || v.getUint32(p, true) !== 0x02014b50) {
      throw new Error(`corrupt central directory at entry ${i}`);
    }
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let size = v.getUint32(p + 24, true);
    let compressed = v.getUint32(p + 20, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let local = v.getUint32(p + 42, true);
    const name = DECODER.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extra: only the fields saturated in the fixed header, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = v.getUint16(e, true), len = v.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        if (size === 0xffffffff) size = Number(v.getBigUint64((q += 8) - 8, true));
        if (compressed === 0xffffffff) compressed = Number(v.getBigUint64((q += 8) - 8, true));
        if (local === 0xffffffff) local = Number(v.getBigUint64(q, true));
      }
      e += 4 + len;
    }
    if (method !== 0) {
      throw new Error(
        `entry "${name}" is compressed (method ${method}); only stored entries are supported`,
      );
    }
    if (compressed !== size) throw new Error(`entry "${name}": stored sizes disagree`);
    const lh = new Uint8Array(30);
    if (local + 30 > src.size) {
      throw new Error(`entry "${name}": local header past the end: truncated?`);
    }
    await src.readAt(local, lh);
    const lv = new DataView(lh.buffer);
    if (lv.getUint32(0, true) !== 0x04034b50) throw new Error(`entry "${name}": bad local header`);
    const dataOffset = local + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
    if (dataOffset + size > src.size) {
      throw new Error(`entry "${name}" runs past the end of the archive: truncated?`);
    }
    entries.push({ name, dataOffset, size, crc32: crc, method });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Reads an entry into `dst` (or a new buffer) and checks its CRC-32. */
export async function readZipEntry(
  src: RandomAccess,
  entry: ZipEntry,
  dst?: Uint8Array,
): Promise<Uint8Array> {
  const out = dst ?? new Uint8Array(entry.size);
  if (out.length !== entry.size) {
    throw new Error(`entry "${entry.name}": size ${entry.size}, buffer ${out.length}`);
  }
  await src.readAt(entry.dataOffset, out);
  if (crc32(out) !== entry.crc32) {
    throw new Error(`entry "${entry.name}": CRC-32 mismatch (corrupt file)`);
  }
  return out;
}

/** Random access over an open file. */
export function fileAccess(file: Deno.FsFile, size: number): RandomAccess {
  return {
    size,
    async readAt(offset, dst) {
      await file.seek(offset, Deno.SeekMode.Start);
      let filled = 0;
      while (filled < dst.length) {
        const n = await file.read(dst.subarray(filled));
        if (n === null) {
          throw new Error(`unexpected end of file at byte ${offset + filled}: truncated?`);
        }
        filled += n;
      }
    },
  };
}

/** Random access over bytes in memory. */
export function bytesAccess(bytes: Uint8Array): RandomAccess {
  return {
    size: bytes.length,
    readAt(offset, dst) {
      if (offset + dst.length > bytes.length) {
        return Promise.reject(
          new Error(`unexpected end of data at byte ${bytes.length}: truncated?`),
        );
      }
      dst.set(bytes.subarray(offset, offset + dst.length));
      return Promise.resolve();
    },
  };
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

function zip64Extra(values: number[]): Uint8Array {
  const out = new Uint8Array(4 + 8 * values.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, 1, true);
  v.setUint16(2, 8 * values.length, true);
  values.forEach((x, i) => v.setBigUint64(4 + 8 * i, BigInt(x), true));
  return out;
}
