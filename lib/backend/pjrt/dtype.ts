/** IR dtypes <-> PJRT element types, and host tensors <-> the bytes ffi/ moves. */
import { byteSize, type DType, viewArray } from "../../ir/dtype.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import { BufferType } from "../../../ffi/pjrt_api.ts";
import { elementTypeName, type PjrtHostBuffer } from "../../../ffi/element_type.ts";
import type { PjrtBuffer } from "../../../ffi/buffer.ts";
import type { PjrtClient } from "../../../ffi/client.ts";

const TO_PJRT: Record<DType, number> = {
  f32: BufferType.F32,
  i32: BufferType.S32,
  u32: BufferType.U32,
  u8: BufferType.U8,
  bool: BufferType.PRED,
  bf16: BufferType.BF16,
};

const FROM_PJRT = new Map<number, DType>(
  Object.entries(TO_PJRT).map(([dtype, code]) => [code, dtype as DType]),
);

export function pjrtElementType(dtype: DType): number {
  const code = TO_PJRT[dtype];
  if (code === undefined) throw new Error(`dtype ${dtype} has no PJRT element type`);
  return code;
}

/** The IR dtype of a PJRT element type; throws for types the toolkit does not use. */
export function dtypeOfElementType(code: number, what: string): DType {
  const dtype = FROM_PJRT.get(code);
  if (dtype === undefined) {
    throw new Error(
      `${what}: PJRT element type ${elementTypeName(code)} has no toolkit dtype (supported: ` +
        "f32 i32 u32 u8 bool bf16)",
    );
  }
  return dtype;
}

/** A host tensor as PJRT host bytes (no copy). */
export function pjrtHostBuffer(t: HostTensor): PjrtHostBuffer {
  return { elementType: pjrtElementType(t.dtype), dims: t.shape, data: t.data };
}

/** PJRT host bytes as a host tensor; views the bytes when aligned, copies otherwise. */
export function hostTensorOf(h: PjrtHostBuffer, what: string): HostTensor {
  const dtype = dtypeOfElementType(h.elementType, what);
  const width = byteSize(dtype);
  let bytes = new Uint8Array(h.data.buffer, h.data.byteOffset, h.data.byteLength);
  if (bytes.byteOffset % width !== 0 || !(bytes.buffer instanceof ArrayBuffer)) {
    bytes = new Uint8Array(bytes); // a typed view needs an aligned offset in an ArrayBuffer
  }
  const data = viewArray(
    dtype,
    bytes.buffer as ArrayBuffer,
    bytes.byteOffset,
    bytes.byteLength / width,
  );
  return { shape: [...h.dims], dtype, data };
}

/** Uploads `t` to addressable device `deviceIndex` of `client`. */
export function uploadTensor(
  client: PjrtClient,
  t: HostTensor,
  deviceIndex: number,
): Promise<PjrtBuffer> {
  return client.bufferFromHost(pjrtHostBuffer(t), deviceIndex);
}

/** Reads `buffer` back as a host tensor. */
export async function downloadTensor(buffer: PjrtBuffer): Promise<HostTensor> {
  return hostTensorOf(await buffer.toHost(), "pjrt toHost");
}
