/** `PJRT_Buffer_Type` facts the bindings need: byte widths and names, for checks and messages. */
import { BufferType } from "./pjrt_api.ts";

/** A host array as PJRT sees it: element type, dimensions, dense row-major bytes. */
export interface PjrtHostBuffer {
  /** A `PJRT_Buffer_Type` code (`BufferType`). */
  elementType: number;
  dims: readonly number[];
  /** Row-major contents; `toHost` gives a fresh `Uint8Array` starting at offset 0. */
  data: ArrayBufferView;
}

const BYTES: Record<number, number> = {
  [BufferType.PRED]: 1,
  [BufferType.S8]: 1,
  [BufferType.U8]: 1,
  [BufferType.S16]: 2,
  [BufferType.U16]: 2,
  [BufferType.F16]: 2,
  [BufferType.BF16]: 2,
  [BufferType.S32]: 4,
  [BufferType.U32]: 4,
  [BufferType.F32]: 4,
  [BufferType.S64]: 8,
  [BufferType.U64]: 8,
  [BufferType.F64]: 8,
};

/** Bytes per element, or undefined for types the bindings do not size (sub-byte, complex, f8). */
export function elementByteSize(type: number): number | undefined {
  return BYTES[type];
}

/** "F32", "BF16", ... or "element type N". */
export function elementTypeName(type: number): string {
  return Object.entries(BufferType).find(([, c]) => c === type)?.[0] ??
    `element type ${type}`;
}

/** Elements in an array of these dimensions. */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((n, d) => n * d, 1);
}
