/**
 * MLIR spellings of IR types and values: element types, tensor types, and dense literals
 * (`dense<...>`) that round-trip exactly (floats in shortest decimal form, NaN and infinities as
 * bit patterns, large arrays as a little-endian hex blob).
 */
import { bf16ToF32, type DType } from "../../ir/dtype.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";

/** StableHLO element type of an IR dtype (`u32` is the unsigned `ui32`, `bool` is `i1`). */
export function elementType(dtype: DType): string {
  switch (dtype) {
    case "f32":
      return "f32";
    case "bf16":
      return "bf16";
    case "i32":
      return "i32";
    case "u32":
      return "ui32";
    case "u8":
      return "ui8";
    case "bool":
      return "i1";
  }
}

/** `tensor<2x3xf32>`; rank 0 is `tensor<f32>`. */
export function tensorType(shape: readonly number[], dtype: DType): string {
  return `tensor<${[...shape, elementType(dtype)].join("x")}>`;
}

/** `array<i64: 0, 2>` (StableHLO's dimension lists). */
export function i64Array(values: readonly number[]): string {
  return values.length ? `array<i64: ${values.join(", ")}>` : "array<i64>";
}

/**
 * The `dense<...> : tensor<...>` attribute of a host tensor: a splat when every element is the
 * same, a nested list when small (or bool), a hex blob of the raw little-endian bytes otherwise.
 */
export function denseAttr(t: HostTensor): string {
  const type = tensorType(t.shape, t.dtype);
  const n = t.data.length;
  if (n > 0 && isSplat(t)) return `dense<${scalarLiteral(t.dtype, t.data[0])}> : ${type}`;
  if (n <= HEX_THRESHOLD || t.dtype === "bool") {
    return `dense<${nestedList(t, 0, 0)}> : ${type}`;
  }
  return `dense<"0x${hexBytes(t)}"> : ${type}`;
}

/** One element as an MLIR literal of `dtype` (for bf16, `value` is the raw 16 bits). */
export function scalarLiteral(dtype: DType, value: number): string {
  switch (dtype) {
    case "bool":
      return value ? "true" : "false";
    case "i32":
      return String(value | 0);
    case "u32":
      return String(value >>> 0);
    case "u8":
      return String(value & 0xff);
    case "f32":
      return floatLiteral(value, f32Bits(value), 8);
    case "bf16":
      return floatLiteral(bf16ToF32(value), value & 0xffff, 4);
  }
}

/** Non-splat arrays above this many elements are written as hex blobs. */
const HEX_THRESHOLD = 64;

/** Shortest decimal that parses back to the same value; NaN/inf as hex bit patterns. */
function floatLiteral(value: number, bits: number, hexDigits: number): string {
  if (!Number.isFinite(value)) {
    return `0x${(bits >>> 0).toString(16).toUpperCase().padStart(hexDigits, "0")}`;
  }
  if (Object.is(value, -0)) return "-0.0";
  const s = String(value);
  if (s.includes(".")) return s;
  // MLIR float literals need a decimal point: "1" -> "1.0", "1e-8" -> "1.0e-8".
  const e = s.indexOf("e");
  return e < 0 ? `${s}.0` : `${s.slice(0, e)}.0${s.slice(e)}`;
}

function f32Bits(value: number): number {
  F32[0] = value;
  return U32[0];
}

function isSplat(t: HostTensor): boolean {
  const d = t.data;
  const first = d[0];
  if (t.dtype === "f32") {
    // Compare bits so that -0 vs 0 and NaN payloads are not merged.
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    const b0 = bits[0];
    for (let i = 1; i < bits.length; i++) if (bits[i] !== b0) return false;
    return true;
  }
  for (let i = 1; i < d.length; i++) if (d[i] !== first) return false;
  return true;
}

function nestedList(t: HostTensor, dim: number, offset: number): string {
  if (t.shape.length === 0) return scalarLiteral(t.dtype, t.data[0]);
  const size = t.shape[dim];
  let stride = 1;
  for (let i = dim + 1; i < t.shape.length; i++) stride *= t.shape[i];
  const parts: string[] = [];
  for (let i = 0; i < size; i++) {
    parts.push(
      dim === t.shape.length - 1
        ? scalarLiteral(t.dtype, t.data[offset + i])
        : nestedList(t, dim + 1, offset + i * stride),
    );
  }
  return `[${parts.join(", ")}]`;
}

function hexBytes(t: HostTensor): string {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (!LITTLE_ENDIAN) throw new Error("stablehlo: hex constants need a little-endian host");
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]];
  return out;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, "0"));
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
