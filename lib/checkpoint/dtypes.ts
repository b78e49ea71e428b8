/**
 * Element types as checkpoint files name them: one table of every type a file may hold, the
 * DType it is read as and its name in each format (numpy's in Flax msgpack, safetensors', the
 * torch storage class), read by flax_msgpack.ts, safetensors.ts and pth.ts. Types we have no
 * DType for are converted on read (`convert`: widened to f32, or narrowed to i32 with a range
 * check) and never written; our DTypes are written under their own names.
 */
import { byteSize, type DType, type TypedArray } from "../ir/dtype.ts";

export type Format = "numpy" | "safetensors" | "torch";

/** A file's element type: the DType it is read as, its width, and how it converts if it must. */
export interface StoredType {
  dtype: DType;
  itemBytes: number;
  convert?: "f16" | "f64" | "i64" | "i16" | "i8";
}

type Row = Omit<StoredType, "itemBytes"> & { itemBytes?: number } & Partial<Record<Format, string>>;

/**
 * The table. A name left out: the format cannot hold the type (torch has no uint32 storage), or
 * we do not read it from that format (Flax msgpack reads only float16 beyond our own).
 */
const TABLE: Row[] = [
  { dtype: "f32", numpy: "float32", safetensors: "F32", torch: "FloatStorage" },
  { dtype: "i32", numpy: "int32", safetensors: "I32", torch: "IntStorage" },
  { dtype: "u32", numpy: "uint32", safetensors: "U32" },
  { dtype: "u8", numpy: "uint8", safetensors: "U8", torch: "ByteStorage" },
  { dtype: "bool", numpy: "bool", safetensors: "BOOL", torch: "BoolStorage" },
  { dtype: "bf16", numpy: "bfloat16", safetensors: "BF16", torch: "BFloat16Storage" },
  {
    dtype: "f32",
    itemBytes: 2,
    convert: "f16",
    numpy: "float16",
    safetensors: "F16",
    torch: "HalfStorage",
  },
  { dtype: "f32", itemBytes: 8, convert: "f64", safetensors: "F64", torch: "DoubleStorage" },
  { dtype: "i32", itemBytes: 8, convert: "i64", safetensors: "I64", torch: "LongStorage" },
  { dtype: "i32", itemBytes: 2, convert: "i16", safetensors: "I16", torch: "ShortStorage" },
  { dtype: "i32", itemBytes: 1, convert: "i8", safetensors: "I8", torch: "CharStorage" },
];

const FORMATS: Format[] = ["numpy", "safetensors", "torch"];

const READ = new Map(FORMATS.map((f) => [f, new Map<string, StoredType>()]));
const WRITE = new Map(FORMATS.map((f) => [f, new Map<DType, string>()]));
for (const row of TABLE) {
  const type: StoredType = { dtype: row.dtype, itemBytes: row.itemBytes ?? byteSize(row.dtype) };
  if (row.convert) type.convert = row.convert;
  for (const f of FORMATS) {
    const name = row[f];
    if (name === undefined) continue;
    READ.get(f)!.set(name, type);
    if (!row.convert) WRITE.get(f)!.set(row.dtype, name);
  }
}

/** The element type `format` calls `name`, or undefined when we do not read it. */
export function storedType(format: Format, name: string): StoredType | undefined {
  return READ.get(format)!.get(name);
}

/** The names `format` is read with, in the table's order (for error messages). */
export function storedNames(format: Format): string[] {
  return [...READ.get(format)!.keys()];
}

/** The name `format` writes `dtype` under, or undefined when the format has no such type. */
export function dtypeName(format: Format, dtype: DType): string | undefined {
  return WRITE.get(format)!.get(dtype);
}

/** numpy's dtype names for each DType (Flax msgpack writes these). */
export const NUMPY_DTYPE = Object.fromEntries(WRITE.get("numpy")!) as Record<DType, string>;

/**
 * Fills `out` (storage of `type.dtype`) with its length of elements of `type` from the
 * little-endian bytes `raw`. Our own types are copied as bytes; the others are converted one by
 * one, and an int64 that does not fit in int32 is refused.
 */
export function decodeInto(type: StoredType, raw: Uint8Array, out: TypedArray): void {
  const n = out.length;
  if (raw.length < n * type.itemBytes) {
    throw new Error(`${raw.length} bytes hold fewer than ${n} elements of ${type.itemBytes} bytes`);
  }
  if (!type.convert) {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(raw.subarray(0, out.byteLength));
    return;
  }
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (type.convert) {
    case "f16":
      for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(v.getUint16(2 * i, true));
      return;
    case "f64":
      for (let i = 0; i < n; i++) out[i] = v.getFloat64(8 * i, true);
      return;
    case "i16":
      for (let i = 0; i < n; i++) out[i] = v.getInt16(2 * i, true);
      return;
    case "i8":
      for (let i = 0; i < n; i++) out[i] = v.getInt8(i);
      return;
    case "i64":
      for (let i = 0; i < n; i++) {
        const x = v.getBigInt64(8 * i, true);
        if (x < -0x80000000n || x > 0x7fffffffn) {
          throw new Error(`int64 value ${x} does not fit in int32`);
        }
        out[i] = Number(x);
      }
  }
}

/** One IEEE half-precision value from its bits. */
function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
