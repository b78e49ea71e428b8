/** IR dtypes <-> `PJRT_Buffer_Type` codes. */
import type { DType } from "../lib/ir/dtype.ts";
import { BufferType } from "./pjrt_api.ts";

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
    const name = Object.entries(BufferType).find(([, c]) => c === code)?.[0] ?? `code ${code}`;
    throw new Error(
      `${what}: PJRT element type ${name} has no toolkit dtype (supported: f32 i32 u32 u8 ` +
        "bool bf16)",
    );
  }
  return dtype;
}
