/** Raw little-endian bytes of HostTensors, with checks that name the offending key. */
import { allocArray, byteSize, type DType, type TypedArray } from "../ir/dtype.ts";
import { type HostTensor, numel } from "../ir/host_tensor.ts";

/** The storage class each DType must use. */
const ARRAY_CLASS: Record<DType, new (n: number) => TypedArray> = {
  f32: Float32Array,
  i32: Int32Array,
  u32: Uint32Array,
  bf16: Uint16Array,
  u8: Uint8Array,
  bool: Uint8Array,
};

/**
 * A byte view of `t.data` (no copy) after checking that shape, dtype and storage agree.
 * Bool tensors are normalised to 0/1 bytes (a copy only when some byte is not 0 or 1).
 */
export function tensorBytes(t: HostTensor, key: string): Uint8Array {
  checkTensor(t, key);
  let data = t.data;
  if (t.dtype === "bool" && (data as Uint8Array).some((b) => b > 1)) {
    data = (data as Uint8Array).map((b) => (b ? 1 : 0));
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export function checkTensor(t: HostTensor, key: string): void {
  const cls = ARRAY_CLASS[t.dtype];
  if (cls === undefined) throw new Error(`tensor "${key}": unknown dtype ${t.dtype}`);
  if (!(t.data instanceof cls)) {
    throw new Error(
      `tensor "${key}": dtype ${t.dtype} needs a ${cls.name}, got ${t.data.constructor.name}`,
    );
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`tensor "${key}": bad shape [${t.shape}]`);
  }
  if (t.data.length !== numel(t.shape)) {
    throw new Error(`tensor "${key}": ${t.data.length} elements for shape [${t.shape}]`);
  }
}

/** A zeroed tensor and a byte view of its storage to read raw little-endian data into. */
export function allocTensor(
  shape: number[],
  dtype: DType,
): { tensor: HostTensor; bytes: Uint8Array } {
  const data = allocArray(dtype, numel(shape));
  return { tensor: { shape, dtype, data }, bytes: new Uint8Array(data.buffer) };
}

export function tensorByteLength(shape: readonly number[], dtype: DType): number {
  return numel(shape) * byteSize(dtype);
}

/** IEEE half-precision bits to float32 values. */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16BitsToNumber(bits[i]);
  return out;
}

/** One IEEE half-precision value from its bits. */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
