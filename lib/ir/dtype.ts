/** Element types of the traced IR. `bool` is stored as one byte (0/1); `bf16` as its raw 16 bits. */
export type DType = "f32" | "i32" | "u32" | "u8" | "bool" | "bf16";

export const DTYPES: readonly DType[] = ["f32", "i32", "u32", "u8", "bool", "bf16"];

export type TypedArray = Float32Array | Int32Array | Uint32Array | Uint8Array | Uint16Array;

/** Bytes per element. */
export function byteSize(dtype: DType): number {
  switch (dtype) {
    case "f32":
    case "i32":
    case "u32":
      return 4;
    case "bf16":
      return 2;
    case "u8":
    case "bool":
      return 1;
  }
}

/** Storage arrays by dtype: `bool` is one byte, `bf16` its raw 16 bits. */
const ARRAY: Record<DType, {
  new (size: number): TypedArray;
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): TypedArray;
}> = {
  f32: Float32Array,
  i32: Int32Array,
  u32: Uint32Array,
  bf16: Uint16Array,
  u8: Uint8Array,
  bool: Uint8Array,
};

/** A new zero-filled storage array for `size` elements of `dtype`. */
export function allocArray(dtype: DType, size: number): TypedArray {
  return new ARRAY[dtype](size);
}

/** `length` elements of `dtype` viewed in `buffer` at `byteOffset` (aligned to the width). */
export function viewArray(
  dtype: DType,
  buffer: ArrayBuffer,
  byteOffset = 0,
  length = (buffer.byteLength - byteOffset) / byteSize(dtype),
): TypedArray {
  return new ARRAY[dtype](buffer, byteOffset, length);
}

export function isFloat(dtype: DType): boolean {
  return dtype === "f32" || dtype === "bf16";
}

export function isUnsigned(dtype: DType): boolean {
  return dtype === "u32" || dtype === "u8";
}

/** bf16 bits -> f32 value. */
export function bf16ToF32(bits: number): number {
  F32_SCRATCH_U32[0] = (bits & 0xffff) << 16;
  return F32_SCRATCH[0];
}

/** f32 value -> bf16 bits, rounding to nearest even (as XLA and PyTorch do). */
export function f32ToBf16(value: number): number {
  F32_SCRATCH[0] = value;
  const u = F32_SCRATCH_U32[0];
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return (u >>> 16) | 0x40; // NaN stays NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

const F32_SCRATCH = new Float32Array(1);
const F32_SCRATCH_U32 = new Uint32Array(F32_SCRATCH.buffer);
