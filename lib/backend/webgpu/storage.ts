/**
 * How IR dtypes live in WebGPU storage buffers. WGSL has no byte or 16-bit storage, so every
 * element takes one 32-bit word: f32 and i32 as themselves, u32 as itself, and u8, bool and
 * bf16 widened into u32 (bf16 keeps its raw 16 bits in the low half). Uploads and downloads
 * convert; kernels see the widened values.
 */
import type { DType, TypedArray } from "../../ir/dtype.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";

/** Bytes per element on the device: always one 32-bit word. */
export const WORD = 4;

/** The WGSL scalar type that holds `dtype` in registers and storage. */
export function wgslType(dtype: DType): "f32" | "i32" | "u32" {
  return dtype === "f32" ? "f32" : dtype === "i32" ? "i32" : "u32";
}

/** Host data widened to 32-bit words, ready for `writeBuffer`. */
export function toWords(
  t: HostTensor,
): Float32Array<ArrayBuffer> | Int32Array<ArrayBuffer> | Uint32Array<ArrayBuffer> {
  switch (t.dtype) {
    case "f32":
      return t.data instanceof Float32Array && isPlain(t.data)
        ? t.data as Float32Array<ArrayBuffer>
        : Float32Array.from(t.data);
    case "i32":
      return t.data instanceof Int32Array && isPlain(t.data)
        ? t.data as Int32Array<ArrayBuffer>
        : Int32Array.from(t.data);
    case "u32":
      return t.data instanceof Uint32Array && isPlain(t.data)
        ? t.data as Uint32Array<ArrayBuffer>
        : Uint32Array.from(t.data);
    default:
      return Uint32Array.from(t.data);
  }
}

/** Device words back to the host array of `dtype` (narrowing u8, bool and bf16). */
export function fromWords(words: ArrayBuffer, dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case "f32":
      return new Float32Array(words, 0, size).slice();
    case "i32":
      return new Int32Array(words, 0, size).slice();
    case "u32":
      return new Uint32Array(words, 0, size).slice();
    case "bf16":
      return Uint16Array.from(new Uint32Array(words, 0, size));
    case "u8":
    case "bool":
      return Uint8Array.from(new Uint32Array(words, 0, size));
  }
}

/** A WGSL literal of `value` held as `dtype` (exact for every f32, including inf and NaN). */
export function literal(value: number, dtype: DType): string {
  switch (wgslType(dtype)) {
    case "f32": {
      const f = Math.fround(value);
      if (Object.is(f, -0)) return "(-0.0f)";
      if (Number.isFinite(f)) {
        // The shortest f64 string of an f32 value parses back to that same f32.
        return f < 0 ? `(${f}f)` : `${f}f`;
      }
      F32[0] = f;
      return `bitcast<f32>(0x${U32[0].toString(16)}u)`;
    }
    case "i32": {
      const v = value | 0;
      return v === -2147483648 ? "i32(-2147483647 - 1)" : v < 0 ? `(${v}i)` : `${v}i`;
    }
    case "u32":
      return `${value >>> 0}u`;
  }
}

function isPlain(a: ArrayBufferView): boolean {
  return a.buffer instanceof ArrayBuffer;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
