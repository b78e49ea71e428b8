/**
 * MessagePack headers encoded byte for byte as Python's `msgpack.packb` (msgpack-python 1.x,
 * `use_bin_type=True`) writes them: the smallest format that fits, fixext for payloads of
 * 1/2/4/8/16 bytes, Python floats as float64.
 */

export function mapHeader(n: number): Uint8Array {
  if (n < 16) return Uint8Array.of(0x80 | n);
  if (n < 0x10000) return Uint8Array.of(0xde, n >> 8, n & 0xff);
  return be(0xdf, n, 4);
}

export function arrayHeader(n: number): Uint8Array {
  if (n < 16) return Uint8Array.of(0x90 | n);
  if (n < 0x10000) return Uint8Array.of(0xdc, n >> 8, n & 0xff);
  return be(0xdd, n, 4);
}

export function encodeStr(s: string): Uint8Array {
  const utf8 = ENCODER.encode(s);
  const n = utf8.length;
  const head = n < 32
    ? Uint8Array.of(0xa0 | n)
    : n < 0x100
    ? Uint8Array.of(0xd9, n)
    : n < 0x10000
    ? Uint8Array.of(0xda, n >> 8, n & 0xff)
    : be(0xdb, n, 4);
  return concat([head, utf8]);
}

export function binHeader(n: number): Uint8Array {
  if (n < 0x100) return Uint8Array.of(0xc4, n);
  if (n < 0x10000) return Uint8Array.of(0xc5, n >> 8, n & 0xff);
  return be(0xc6, n, 4);
}

export function extHeader(type: number, n: number): Uint8Array {
  const fix = FIXEXT[n];
  if (fix !== undefined) return Uint8Array.of(fix, type);
  if (n < 0x100) return Uint8Array.of(0xc7, n, type);
  if (n < 0x10000) return Uint8Array.of(0xc8, n >> 8, n & 0xff, type);
  const out = be(0xc9, n, 4);
  return concat([out, Uint8Array.of(type)]);
}

/** An integer as msgpack-python packs it (unsigned formats for non-negative values). */
export function encodeInt(x: number | bigint): Uint8Array {
  const v = BigInt(x);
  if (v >= 0n) {
    if (v < 0x80n) return Uint8Array.of(Number(v));
    if (v < 0x100n) return Uint8Array.of(0xcc, Number(v));
    if (v < 0x10000n) return Uint8Array.of(0xcd, Number(v >> 8n), Number(v & 0xffn));
    if (v < 0x100000000n) return be(0xce, Number(v), 4);
    if (v < 1n << 64n) {
      const out = new Uint8Array(9);
      out[0] = 0xcf;
      new DataView(out.buffer).setBigUint64(1, v);
      return out;
    }
  } else {
    if (v >= -32n) return Uint8Array.of(Number(v) & 0xff);
    if (v >= -0x80n) return Uint8Array.of(0xd0, Number(v) & 0xff);
    if (v >= -0x8000n) {
      const out = new Uint8Array(3);
      out[0] = 0xd1;
      new DataView(out.buffer).setInt16(1, Number(v));
      return out;
    }
    if (v >= -0x80000000n) {
      const out = new Uint8Array(5);
      out[0] = 0xd2;
      new DataView(out.buffer).setInt32(1, Number(v));
      return out;
    }
    if (v >= -(1n << 63n)) {
      const out = new Uint8Array(9);
      out[0] = 0xd3;
      new DataView(out.buffer).setBigInt64(1, v);
      return out;
    }
  }
  throw new RangeError(`integer ${x} does not fit in 64 bits`);
}

export function encodeFloat64(x: number): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = 0xcb;
  new DataView(out.buffer).setFloat64(1, x);
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const ENCODER = new TextEncoder();
const FIXEXT: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };

/** A format byte followed by `n` as a big-endian unsigned integer of `size` bytes. */
function be(format: number, n: number, size: 4): Uint8Array {
  const out = new Uint8Array(1 + size);
  out[0] = format;
  new DataView(out.buffer).setUint32(1, n);
  return out;
}
