/** The PJRT backend's dtype mapping and host tensor <-> PJRT host bytes conversion. */
import {
  dtypeOfElementType,
  hostTensorOf,
  pjrtElementType,
  pjrtHostBuffer,
} from "../../../lib/backend/pjrt/dtype.ts";
import { BufferType } from "../../../ffi/pjrt_api.ts";
import { DTYPES } from "../../../lib/ir/dtype.ts";
import { hostTensor } from "../../../lib/ir/host_tensor.ts";
import { assertEquals, assertThrows } from "../../assert.ts";

Deno.test("pjrt dtype: every dtype maps to a PJRT element type and back", () => {
  assertEquals(DTYPES.map(pjrtElementType), [
    BufferType.F32,
    BufferType.S32,
    BufferType.U32,
    BufferType.U8,
    BufferType.PRED,
    BufferType.BF16,
  ]);
  for (const d of DTYPES) assertEquals(dtypeOfElementType(pjrtElementType(d), "t"), d);
  assertThrows(
    () => dtypeOfElementType(BufferType.F64, "PjrtBuffer"),
    "PjrtBuffer: PJRT element type F64 has no toolkit dtype",
  );
});

Deno.test("pjrt dtype: host tensors round-trip through bytes; unaligned bytes are copied", () => {
  for (const d of DTYPES) {
    const t = hostTensor([2, 2], d, [1, 0, 1, 1]);
    const h = pjrtHostBuffer(t);
    assertEquals(h.data, t.data, "no copy on the way out");
    const back = hostTensorOf(
      { ...h, data: new Uint8Array(t.data.buffer).slice() },
      "round trip",
    );
    assertEquals([back.shape, back.dtype, back.data.constructor, [...back.data]], [
      t.shape,
      d,
      t.data.constructor,
      [...t.data],
    ]);
  }
  const bytes = new Uint8Array(9);
  new Float32Array(bytes.buffer, 0, 2).set([1.5, -2]);
  bytes.copyWithin(1, 0, 8);
  const odd = hostTensorOf(
    { elementType: BufferType.F32, dims: [2], data: bytes.subarray(1) },
    "odd",
  );
  assertEquals([...odd.data], [1.5, -2]);
});
