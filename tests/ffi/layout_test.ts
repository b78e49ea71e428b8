import { assertEquals, assertThrows } from "../assert.ts";
import { alignUp, defineStruct } from "../../ffi/layout.ts";
import { StructBuffer } from "../../ffi/struct_buffer.ts";

// Expected values follow the LP64 C ABI (x86-64 System V / AAPCS64); each case was checked by
// compiling the same struct with `cc` and printing offsetof/sizeof.

Deno.test("layout: fields are aligned to their own size, struct to its widest field", () => {
  // struct { int32_t a; void* b; bool c; } -> a@0 b@8 c@16, sizeof 24
  const s = defineStruct("S", [["a", "i32"], ["b", "ptr"], ["c", "bool"]]);
  assertEquals(s.fields.map((f) => f.offset), [0, 8, 16]);
  assertEquals(s.size, 24);
  assertEquals(s.align, 8);
  // PJRT_STRUCT_SIZE stops at the end of the last field: 16 + 1.
  assertEquals(s.structSize, 17);
});

Deno.test("layout: small fields pack together before padding", () => {
  // struct { bool a; uint8_t b; int32_t c; float d; size_t e; } -> 0, 1, 4, 8, 16; sizeof 24
  const s = defineStruct("S", [["a", "bool"], ["b", "u8"], ["c", "i32"], ["d", "f32"], [
    "e",
    "size_t",
  ]]);
  assertEquals(s.fields.map((f) => f.offset), [0, 1, 4, 8, 16]);
  assertEquals(s.size, 24);
  assertEquals(s.structSize, 24);
});

Deno.test("layout: anonymous unions take the largest size and alignment", () => {
  // struct { int32_t t; union { void* p; float f; bool b; }; size_t n; } -> t@0 u@8 n@16
  const s = defineStruct("S", [["t", "enum"], ["u", { union: ["ptr", "f32", "bool"] }], [
    "n",
    "size_t",
  ]]);
  assertEquals(s.fields.map((f) => f.offset), [0, 8, 16]);
  assertEquals(s.size, 24);
});

Deno.test("layout: embedded structs keep their size and alignment", () => {
  const inner = defineStruct("In", [["x", "size_t"], ["y", "i32"]]); // sizeof 16
  const s = defineStruct("Out", [["a", "i32"], ["in", inner], ["b", "i32"]]);
  assertEquals(s.fields.map((f) => f.offset), [0, 8, 24]);
  assertEquals(s.size, 32);
  assertEquals(s.structSize, 28);
});

Deno.test("layout: unknown field names and duplicates are errors naming the struct", () => {
  const s = defineStruct("PJRT_Foo_Args", [["a", "ptr"]]);
  assertThrows(() => s.offsetOf("b"), "struct PJRT_Foo_Args has no field b");
  assertThrows(() => defineStruct("T", [["a", "ptr"], ["a", "i32"]]), "field a declared twice");
  assertEquals(alignUp(9, 8), 16);
});

Deno.test("StructBuffer: struct_size counts the padding; fields are little-endian", () => {
  const s = defineStruct("Args", [["struct_size", "size_t"], ["x", "ptr"], ["n", "i32"]]);
  const b = new StructBuffer(s, 64);
  assertEquals(b.bytes.byteLength, 20 + 64);
  assertEquals(b.getSize("struct_size"), 20 + 64);
  b.setI32("n", -2).setPtr("x", 0x1122334455667788n);
  assertEquals([...b.bytes.subarray(8, 20)], [
    0x88,
    0x77,
    0x66,
    0x55,
    0x44,
    0x33,
    0x22,
    0x11,
    0xfe,
    0xff,
    0xff,
    0xff,
  ]);
  assertEquals(b.getI32("n"), -2);
  assertEquals(Deno.UnsafePointer.value(b.getPtr("x")), 0x1122334455667788n);
  b.setPtr("x", null);
  assertEquals(b.getPtr("x"), null);
});

Deno.test("StructBuffer: a typed array's pointer includes its byteOffset", () => {
  const s = defineStruct("P", [["p", "ptr"], ["q", "ptr"]]);
  const backing = new Float32Array(8);
  const b = new StructBuffer(s).setPtr("p", backing).setPtr("q", backing.subarray(3));
  const p = Deno.UnsafePointer.value(b.getPtr("p")) as bigint;
  const q = Deno.UnsafePointer.value(b.getPtr("q")) as bigint;
  assertEquals(q - p, 12n);
});
