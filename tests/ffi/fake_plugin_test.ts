/**
 * End-to-end tests of the bindings against a fake PJRT plugin compiled from
 * fake_plugin/fake_pjrt_plugin.c with `cc` (skipped when no C compiler is installed). The fake
 * declares its structs in C, so the C compiler's offsets are checked against ours on every call.
 */
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { cudaClientOptions, PjrtClient } from "../../ffi/client.ts";
import { PjrtError, PjrtPluginError } from "../../ffi/errors.ts";
import { PjrtPlugin } from "../../ffi/plugin.ts";
import { defineStruct } from "../../ffi/layout.ts";
import { StructBuffer } from "../../ffi/struct_buffer.ts";
import { BufferType } from "../../ffi/pjrt_api.ts";
import type { PjrtHostBuffer } from "../../ffi/element_type.ts";
import { buildFakePlugins, openQueries } from "./fake_plugin/build.ts";

const plugins = await buildFakePlugins({
  full: [],
  slots13: ["-DFAKE_SLOTS=13"],
  nocompile: ["-DFAKE_NO_COMPILE"],
  old: ["-DFAKE_MINOR=40"],
});
const ignore = plugins === null;
const fake = plugins ? openQueries(plugins.full) : null;
const quiet = () => {};

function test(name: string, fn: () => Promise<void> | void) {
  Deno.test({ name: `fake plugin: ${name}`, ignore, fn });
}

test("open logs plugin, platform and devices; reads attributes", async () => {
  const lines: string[] = [];
  using client = await PjrtClient.open({ pluginPath: plugins!.full, log: (l) => lines.push(l) });
  assertEquals(client.platformName, "fake");
  assertEquals(client.platformVersion, "fake 1.0");
  assertEquals(client.devices.map((d) => [d.id, d.index, d.addressable]), [[0, 0, true], [
    1,
    1,
    true,
  ]]);
  assertEquals(
    client.allDevices.map((d) => [d.id, d.processIndex, d.index, d.addressable]),
    [[0, 0, 0, true], [1, 0, 1, true], [2, 1, -1, false]],
  );
  assertEquals(client.devices[1].kind, "FakeDevice");
  assertEquals(client.devices[1].debugString, "FakeDevice(id=1)");
  assertEquals(client.attributes, {
    xla_version: 42n,
    stablehlo_current_version: [1n, 9n, 3n],
    fake_name: "fake-pjrt",
  });
  assertEquals(lines, [
    `PJRT plugin ${plugins!.full} (from --pjrt-plugin), C API 0.114, xla_version 42, ` +
    "stablehlo_current_version 1.9.3",
    "PJRT platform fake (fake 1.0), process 0: 2 addressable of 3 devices",
    "  device 0: id 0, FakeDevice",
    "  device 1: id 1, FakeDevice",
  ]);
});

test("client options arrive as typed PJRT_NamedValues", async () => {
  using _client = await PjrtClient.open({
    pluginPath: plugins!.full,
    log: quiet,
    options: {
      ...cudaClientOptions({ allocator: "bfc", memoryFraction: 0.75, preallocate: false }),
      node_id: 3,
      ids: [4n, 5n],
      big: 7n,
      forced: { int64: 9 },
    },
  });
  assertEquals(
    fake!.lastOptions(),
    "allocator=s:bfc;memory_fraction=f:0.75;preallocate=b:0;node_id=i:3;ids=l:4,5;big=i:7;" +
      "forced=i:9;",
  );
});

test("a Client_Create error becomes a PjrtError with the plugin's code and message", async () => {
  const before = fake!.live();
  let error: unknown;
  try {
    await PjrtClient.open({ pluginPath: plugins!.full, log: quiet, options: { fail: "no GPU" } });
  } catch (e) {
    error = e;
  }
  assert(error instanceof PjrtError, `expected PjrtError, got ${error}`);
  assertEquals(error.code, 3);
  assertEquals(error.codeName, "INVALID_ARGUMENT");
  assertEquals(error.call, "PJRT_Client_Create");
  assertEquals(error.pluginMessage, "fake plugin refused to create a client: no GPU");
  assertEquals(
    error.message,
    "PJRT_Client_Create failed (INVALID_ARGUMENT): fake plugin refused to create a client: no GPU",
  );
  assertEquals(fake!.live(), before, "the PJRT_Error was destroyed");
});

test("compile passes MLIR and the CompileOptionsProto bytes; errors carry the message", async () => {
  using client = await PjrtClient.open({ pluginPath: plugins!.full, log: quiet });
  using exe = await client.compile("module @add {}");
  assertEquals(exe.name, "fake:1a0420012801");
  assertEquals(exe.numOutputs, 1);
  using exe2 = await client.compile(new TextEncoder().encode("module @swap {}"), {
    numReplicas: 2,
    deviceAssignment: [[0], [1]],
  });
  assertEquals(
    exe2.name,
    "fake:1a1b08ffffffffffffffffff01200228014a0a080210011a040a020001",
  );
  assertEquals(exe2.numOutputs, 2);
  await assertRejects(
    () => client.compile("syntax error"),
    "PJRT_Client_Compile failed (INVALID_ARGUMENT): fake compile: syntax error at line 1",
  );
});

test("host -> device -> execute -> host on two devices", async () => {
  const before = fake!.live();
  {
    using client = await PjrtClient.open({ pluginPath: plugins!.full, log: quiet });
    using add = await client.compile("add", { numReplicas: 2, deviceAssignment: [[0], [1]] });
    using x0 = await client.bufferFromHost(f32([2, 2], [1, 2, 3, 4]), 0);
    using y0 = await client.bufferFromHost(f32([2, 2], [10, 20, 30, 40]), 0);
    using x1 = await client.bufferFromHost(f32([2, 2], [0.5, -1, 1e30, 0]), 1);
    using y1 = await client.bufferFromHost(f32([2, 2], [0.25, 1, 1e30, -0]), 1);
    assertEquals(x0.dims, [2, 2]);
    assertEquals(x0.elementType, BufferType.F32);
    const out = add.execute([[x0, y0], [x1, y1]]);
    assertEquals(out.length, 2);
    using z0 = out[0][0];
    using z1 = out[1][0];
    await z0.ready();
    const h0 = await z0.toHost();
    assertEquals(h0.dims, [2, 2]);
    assertEquals(h0.elementType, BufferType.F32);
    assertEquals([...floats(h0)], [11, 22, 33, 44]);
    assertEquals([...floats(await z1.toHost())], [0.75, 0, 2e30, 0].map(Math.fround));
  }
  assertEquals(fake!.live(), before, "every buffer, event, executable and client destroyed");
});

test("bytes of every element type survive the round trip, scalars and empty arrays too", async () => {
  using client = await PjrtClient.open({ pluginPath: plugins!.full, log: quiet });
  using swap = await client.compile("swap");
  const arrays: PjrtHostBuffer[] = [
    { elementType: BufferType.S32, dims: [3], data: new Int32Array([-1, 0, 2147483647]) },
    { elementType: BufferType.U32, dims: [2, 1], data: new Uint32Array([0, 4294967295]) },
    { elementType: BufferType.U8, dims: [4], data: new Uint8Array([0, 1, 128, 255]) },
    { elementType: BufferType.PRED, dims: [2], data: new Uint8Array([1, 0]) },
    { elementType: BufferType.BF16, dims: [2], data: new Uint16Array([0x3fc0, 0xc000]) },
    f32([], [3.25]),
    f32([0, 3], []),
  ];
  for (const h of arrays) {
    using a = await client.bufferFromHost(h);
    using b = await client.bufferFromHost({
      elementType: BufferType.U8,
      dims: [1],
      data: new Uint8Array([7]),
    });
    const [[first, second]] = swap.execute([[a, b]]);
    using _first = first;
    using out = second;
    const back = await out.toHost();
    assertEquals(back.elementType, h.elementType);
    assertEquals(back.dims, h.dims);
    assertEquals(back.data.byteOffset, 0);
    assertEquals([...back.data], [...new Uint8Array(h.data.buffer)]);
  }
});

test("donated inputs are consumed; the rest are sent as non_donatable_input_indices", async () => {
  using client = await PjrtClient.open({ pluginPath: plugins!.full, log: quiet });
  using add = await client.compile("add");
  using x = await client.bufferFromHost(f32([1], [1]));
  using y = await client.bufferFromHost(f32([1], [2]));
  using _kept = add.execute([[x, y]])[0][0];
  assertEquals(fake!.lastNonDonatable(), "launch 0: 0 1");
  using _z = add.execute([[x, y]], { donated: [true, false], launchId: 7 })[0][0];
  assertEquals(fake!.lastNonDonatable(), "launch 7: 1");
  assert(x.donated && !y.donated);
  assertThrows(() => x.handle, "donated");
  await assertRejects(() => x.toHost(), "donated");
  assertThrows(() => add.execute([[x, y]]), "donated");
});

test("blocking calls (Event_Await) run off the JS thread: timers keep firing", async () => {
  using client = await PjrtClient.open({
    pluginPath: plugins!.full,
    log: quiet,
    options: { await_delay_ms: 300 },
  });
  try {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      using b = await client.bufferFromHost(f32([2], [1, 2]));
      assert(ticks >= 5, `only ${ticks} timer ticks while the plugin waited 300 ms`);
      ticks = 0;
      assertEquals([...floats(await b.toHost())], [1, 2]);
      assert(ticks >= 5, `only ${ticks} timer ticks during toHost`);
    } finally {
      clearInterval(timer);
    }
  } finally {
    using _reset = await PjrtClient.open({
      pluginPath: plugins!.full,
      log: quiet,
      options: { await_delay_ms: 0 },
    });
  }
});

test("disposing the client destroys what is still alive; use after dispose throws", async () => {
  const before = fake!.live();
  const client = await PjrtClient.open({ pluginPath: plugins!.full, log: quiet });
  const exe = await client.compile("add");
  const x = await client.bufferFromHost(f32([1], [1]));
  const [[y]] = exe.execute([[x, x]]);
  assertEquals(fake!.live(), before + 4);
  x[Symbol.dispose]();
  x[Symbol.dispose]();
  assertEquals(fake!.live(), before + 3);
  assertEquals(client.live.size, 2);
  client[Symbol.dispose]();
  assertEquals(fake!.live(), before);
  assert(exe.disposed && y.disposed && client.disposed);
  assertThrows(() => x.handle, "disposed");
  assertThrows(() => exe.execute([[y, y]]), "after dispose");
  await assertRejects(() => client.bufferFromHost(f32([1], [1])), "disposed");
  client[Symbol.dispose]();
});

test("argument errors name what was wrong", async () => {
  using client = await PjrtClient.open({ pluginPath: plugins!.full, log: quiet });
  using add = await client.compile("add");
  using x = await client.bufferFromHost(f32([1], [1]));
  assertThrows(() => add.execute([]), "no devices");
  assertThrows(() => add.execute([[x, x], [x]]), "device 1 has 1 arguments, device 0 has 2");
  assertThrows(() => add.execute([[x, x]], { donated: [true] }), "donated has 1 entries");
  assertThrows(() => add.execute([[x]]), "fake execute: expects 2 arguments");
  await assertRejects(
    () => client.bufferFromHost(f32([1], [1]), 2),
    "device index 2 out of range (2 addressable devices)",
  );
  await assertRejects(
    () => client.bufferFromHost(f32([3], [1, 2])),
    "F32[3] needs 12 bytes, data has 8",
  );
});

test("a struct_size below the plugin's is refused with the plugin's message", () => {
  const plugin = PjrtPlugin.load(plugins!.full);
  const short = defineStruct("PJRT_Client_PlatformName_Args (short)", [
    ["struct_size", "size_t"],
    ["extension_start", "ptr"],
    ["client", "ptr"],
    ["platform_name", "ptr"],
  ]);
  // Sent without padding, so struct_size is 32 where the plugin's struct ends at 40.
  assertThrows(
    () => plugin.call("PJRT_Client_PlatformName", new StructBuffer(short)),
    "PJRT_Client_PlatformName failed (INVALID_ARGUMENT): Unexpected Client_String_Args size: " +
      "expected 40, got 32",
  );
});

test("a slot beyond the plugin's PJRT_Api.struct_size is never read", async () => {
  const q = openQueries(plugins!.slots13);
  let error: unknown;
  try {
    await PjrtClient.open({ pluginPath: plugins!.slots13, log: quiet });
  } catch (e) {
    error = e;
  }
  assert(error instanceof PjrtPluginError, `expected PjrtPluginError, got ${error}`);
  assertEquals(
    error.message,
    `PJRT plugin ${plugins!.slots13} (API 0.114) has 13 function slots (PJRT_Api.struct_size ` +
      "144); PJRT_Client_AddressableDevices is slot 16 and needs struct_size >= 176. Use a " +
      "newer plugin.",
  );
  assertEquals(q.live(), 0, "the half-opened client was destroyed");
  q.close();
});

test("a null slot is reported as not implemented", async () => {
  using client = await PjrtClient.open({ pluginPath: plugins!.nocompile, log: quiet });
  await assertRejects(
    () => client.compile("add"),
    `PJRT plugin ${plugins!.nocompile} (API 0.114) does not implement PJRT_Client_Compile`,
  );
});

test("a plugin older than the supported API is refused", () => {
  assertThrows(
    () => PjrtPlugin.load(plugins!.old),
    `PJRT plugin ${plugins!.old} implements PJRT C API 0.40; these bindings need 0.57 or newer`,
  );
});

function f32(dims: number[], values: number[]): PjrtHostBuffer {
  return { elementType: BufferType.F32, dims, data: new Float32Array(values) };
}

function floats(h: { data: Uint8Array<ArrayBuffer> }): Float32Array {
  return new Float32Array(h.data.buffer);
}
