/** CompileOptionsProto bytes, against pjrt.md and hand-assembled wire format. */
import { assertEquals, assertThrows } from "../assert.ts";
import { encodeCompileOptions, ProtoWriter } from "../../ffi/proto.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("compile options: 1 replica, 1 partition is 1a 04 20 01 28 01 (worked on the GPU)", () => {
  assertEquals(hex(encodeCompileOptions()), "1a 04 20 01 28 01");
  assertEquals(
    hex(encodeCompileOptions({ numReplicas: 1, numPartitions: 1 })),
    "1a 04 20 01 28 01",
  );
});

Deno.test("compile options: device assignment of 2 replicas, ordinal -1 as a 10-byte varint", () => {
  const got = encodeCompileOptions({ numReplicas: 2, deviceAssignment: [[0], [1]] });
  const expected = [
    "1a 1b", // executable_build_options, 27 bytes
    "08 ff ff ff ff ff ff ff ff ff 01", // device_ordinal = -1
    "20 02", // num_replicas = 2
    "28 01", // num_partitions = 1
    "4a 0a", // device_assignment, 10 bytes
    "08 02 10 01", // replica_count 2, computation_count 1
    "1a 04 0a 02 00 01", // computation_devices { replica_device_ids: [0, 1] (packed) }
  ].join(" ");
  assertEquals(hex(got), expected);
});

Deno.test("compile options: one ComputationDevice per partition", () => {
  const got = encodeCompileOptions({ numPartitions: 2, deviceAssignment: [[4, 5]] });
  const expected = [
    "1a 1f",
    "08 ff ff ff ff ff ff ff ff ff 01",
    "20 01",
    "28 02",
    "4a 0e",
    "08 01 10 02",
    "1a 03 0a 01 04", // partition 0: replica 0 on device 4
    "1a 03 0a 01 05", // partition 1: replica 0 on device 5
  ].join(" ");
  assertEquals(hex(got), expected);
});

Deno.test("compile options: spmd, process index/count, env overrides", () => {
  const got = encodeCompileOptions({
    useSpmdPartitioning: true,
    processIndex: 1,
    processCount: 8,
    envOptionOverrides: { xla_foo: true, n: 300, s: "v", d: 0.5 },
  });
  const expected = [
    "1a 0c 20 01 28 01 30 01", // build options, 12 bytes: ... use_spmd_partitioning = true
    "b0 01 01", // process_index (field 22) = 1
    "b8 01 08", // process_count (field 23) = 8
    "3a 0d 0a 07 78 6c 61 5f 66 6f 6f 12 02 10 01", // "xla_foo" -> { bool_field: true }
    "3a 08 0a 01 6e 12 03 18 ac 02", // "n" -> { int_field: 300 }
    "3a 08 0a 01 73 12 03 0a 01 76", // "s" -> { string_field: "v" }
    "3a 0e 0a 01 64 12 09 21 00 00 00 00 00 00 e0 3f", // "d" -> { double_field: 0.5 }
  ].join(" ");
  assertEquals(hex(got), expected);
});

Deno.test("compile options: bad shapes and ids are errors naming the option", () => {
  assertThrows(() => encodeCompileOptions({ numReplicas: 0 }), "numReplicas must be a positive");
  assertThrows(
    () => encodeCompileOptions({ numReplicas: 2, deviceAssignment: [[0]] }),
    "deviceAssignment must be 2 replicas x 1 partitions",
  );
  assertThrows(
    () => encodeCompileOptions({ numReplicas: 2, deviceAssignment: [[3], [3]] }),
    "device 3 is assigned twice",
  );
  assertThrows(
    () => encodeCompileOptions({ envOptionOverrides: { x: NaN } }),
    "envOptionOverrides.x",
  );
});

Deno.test("ProtoWriter: varints cross byte boundaries", () => {
  const w = new ProtoWriter();
  w.int64(1, 127);
  w.int64(1, 128);
  w.int64(1, 2 ** 40);
  assertEquals(hex(w.finish()), "08 7f 08 80 01 08 80 80 80 80 80 20");
});
