/** Raw little-endian bytes of HostTensors, with checks that name the offending key. */
import { allocArray, byteSize, type DType, DTYPES } from "../ir/dtype.ts";
import { type HostTensor, numel } from "../ir/host_tensor.ts";

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
  if (!DTYPES.includes(t.dtype)) throw new Error(`tensor "${key}": unknown dtype ${t.dtype}`);
  // The storage class lib/ir's table gives the dtype (the class of an empty array of it).
  const cls = allocArray(t.dtype, 0).constructor as typeof Uint8Array;
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
