/**
 * A zero-filled, JS-owned C struct (an args struct passed to a PJRT function), with typed field
 * access by name. Pointers are stored as raw 64-bit addresses.
 */
import type { StructLayout } from "./layout.ts";

/** A pointer given to a struct field: a Deno pointer, an address, or a buffer to point at. */
export type PointerLike = Deno.PointerValue | bigint | ArrayBuffer | ArrayBufferView;

export class StructBuffer {
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly view: DataView;

  /**
   * Allocates `layout` plus `padding` zero bytes. If the struct has a `struct_size` field it is
   * set to the header's `PJRT_STRUCT_SIZE` plus `padding`.
   */
  constructor(readonly layout: StructLayout, readonly padding = 0) {
    this.bytes = new Uint8Array(Math.max(layout.size, layout.structSize + padding));
    this.view = new DataView(this.bytes.buffer);
    if (layout.fields[0]?.name === "struct_size") {
      this.setU64("struct_size", layout.structSize + padding);
    }
  }

  setPtr(field: string, value: PointerLike): this {
    this.view.setBigUint64(this.layout.offsetOf(field), addressOf(value), true);
    return this;
  }

  setU64(field: string, value: number | bigint): this {
    this.view.setBigUint64(this.layout.offsetOf(field), BigInt(value), true);
    return this;
  }

  setI64(field: string, value: number | bigint): this {
    this.view.setBigInt64(this.layout.offsetOf(field), BigInt(value), true);
    return this;
  }

  setI32(field: string, value: number): this {
    this.view.setInt32(this.layout.offsetOf(field), value, true);
    return this;
  }

  setF32(field: string, value: number): this {
    this.view.setFloat32(this.layout.offsetOf(field), value, true);
    return this;
  }

  setBool(field: string, value: boolean): this {
    this.view.setUint8(this.layout.offsetOf(field), value ? 1 : 0);
    return this;
  }

  getPtr(field: string): Deno.PointerValue {
    return Deno.UnsafePointer.create(this.view.getBigUint64(this.layout.offsetOf(field), true));
  }

  /** A `size_t` field as a JS number (sizes and counts stay far below 2^53). */
  getSize(field: string): number {
    return Number(this.view.getBigUint64(this.layout.offsetOf(field), true));
  }

  getI32(field: string): number {
    return this.view.getInt32(this.layout.offsetOf(field), true);
  }

  getBool(field: string): boolean {
    return this.view.getUint8(this.layout.offsetOf(field)) !== 0;
  }
}

/** The address a pointer-like value stands for (0 for null). */
export function addressOf(value: PointerLike): bigint {
  if (value === null) return 0n;
  if (typeof value === "bigint") return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(value as BufferSource)));
  }
  return BigInt(Deno.UnsafePointer.value(value as Deno.PointerObject));
}

/** Reads `size` bytes at `ptr` as UTF-8 (PJRT strings carry a size, not a terminator). */
export function readString(ptr: Deno.PointerValue, size: number): string {
  if (ptr === null || size === 0) return "";
  return new TextDecoder().decode(new Deno.UnsafePointerView(ptr).getArrayBuffer(size));
}

/** Reads `count` pointers from a C array of pointers. */
export function readPointers(ptr: Deno.PointerValue, count: number): Deno.PointerValue[] {
  if (count === 0) return [];
  if (ptr === null) throw new Error(`PJRT returned a null array of ${count} pointers`);
  const view = new Deno.UnsafePointerView(ptr);
  const out: Deno.PointerValue[] = [];
  for (let i = 0; i < count; i++) out.push(Deno.UnsafePointer.create(view.getBigUint64(i * 8)));
  return out;
}

/** A NUL-free UTF-8 encoding of `text`, kept alive by the caller while C reads it. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text) as Uint8Array<ArrayBuffer>;
}
