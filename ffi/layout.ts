/**
 * C struct layouts for the PJRT args structs, computed the way a C compiler lays them out on
 * the LP64 ABIs we run on (x86-64 System V, aarch64 AAPCS64): each field at the next multiple of
 * its alignment, the struct aligned to its widest field, scalars little-endian.
 *
 * Two sizes matter:
 * - `size`: `sizeof`, including trailing padding (the stride of an array of these structs);
 * - `structSize`: what the PJRT header's `PJRT_STRUCT_SIZE(type, last_field)` computes, i.e. the
 *   offset of the last field plus its size, without trailing padding. This is the value the
 *   header's `*_STRUCT_SIZE` constants hold and what plugins compare `struct_size` against.
 */

/** Scalar C types used by the PJRT header. `ptr` covers every pointer and function pointer. */
export type ScalarType =
  | "bool"
  | "u8"
  | "i32"
  | "u32"
  | "enum"
  | "f32"
  | "i64"
  | "u64"
  | "size_t"
  | "ptr";

/** A field's type: a scalar, an embedded struct, or an anonymous union of alternatives. */
export type FieldType = ScalarType | StructLayout | { union: FieldType[] };

export interface FieldLayout {
  name: string;
  offset: number;
  size: number;
  align: number;
  type: FieldType;
}

export interface StructLayout {
  kind: "struct";
  name: string;
  fields: FieldLayout[];
  /** `sizeof(T)`, trailing padding included. */
  size: number;
  align: number;
  /** `PJRT_STRUCT_SIZE(T, last_field)`: end of the last field, no trailing padding. */
  structSize: number;
  /** Offset of `field`; throws for a name the struct does not have. */
  offsetOf(field: string): number;
}

/** Lays out a struct from its fields in declaration order. */
export function defineStruct(name: string, fields: [string, FieldType][]): StructLayout {
  if (fields.length === 0) throw new Error(`struct ${name}: no fields`);
  const laid: FieldLayout[] = [];
  const byName = new Map<string, FieldLayout>();
  let offset = 0;
  let align = 1;
  for (const [fieldName, type] of fields) {
    if (byName.has(fieldName)) throw new Error(`struct ${name}: field ${fieldName} declared twice`);
    const { size, align: fieldAlign } = sizeAndAlign(type);
    offset = alignUp(offset, fieldAlign);
    const field = { name: fieldName, offset, size, align: fieldAlign, type };
    laid.push(field);
    byName.set(fieldName, field);
    offset += size;
    align = Math.max(align, fieldAlign);
  }
  return {
    kind: "struct",
    name,
    fields: laid,
    size: alignUp(offset, align),
    align,
    structSize: offset,
    offsetOf(field: string): number {
      const f = byName.get(field);
      if (!f) throw new Error(`struct ${name} has no field ${field}`);
      return f.offset;
    },
  };
}

/** Size and alignment of a field type under LP64. */
export function sizeAndAlign(type: FieldType): { size: number; align: number } {
  if (typeof type === "string") {
    const size = SCALAR_SIZE[type];
    return { size, align: size };
  }
  if ("union" in type) {
    let size = 0;
    let align = 1;
    for (const alt of type.union) {
      const sa = sizeAndAlign(alt);
      size = Math.max(size, sa.size);
      align = Math.max(align, sa.align);
    }
    return { size: alignUp(size, align), align };
  }
  return { size: type.size, align: type.align };
}

export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

const SCALAR_SIZE: Record<ScalarType, number> = {
  bool: 1,
  u8: 1,
  i32: 4,
  u32: 4,
  enum: 4, // C enums with small values are int-sized on both ABIs
  f32: 4,
  i64: 8,
  u64: 8,
  size_t: 8,
  ptr: 8,
};
