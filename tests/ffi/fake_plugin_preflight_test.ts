/**
 * What a first run on a real CUDA plugin or libtpu would hit (issue 23), against the fake plugin
 * made to behave as XLA does: `node_id`/`num_nodes` with the key-value store for plugins that
 * join hosts through one (and neither for libtpu), option types as the CUDA plugin declares
 * them, `PJRT_NamedValue` arrays stepped by the plugin's own sizeof, an executable whose devices
 * come in another order than the client's, the compile options' process fields, and an event
 * whose await and destroy both fail.
 */
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { joinsThroughKeyValueStore, PjrtClient } from "../../ffi/client.ts";
import { PjrtError } from "../../ffi/errors.ts";
import { PjrtExecutable } from "../../ffi/executable.ts";
import type { KeyValueStore } from "../../ffi/kv_callbacks.ts";
import { encodeCompileOptions } from "../../ffi/proto.ts";
import { PjrtBackend } from "../../lib/backend/pjrt/backend.ts";
import { trace } from "../../lib/ir/graph.ts";
import { hostTensor } from "../../lib/ir/host_tensor.ts";
import * as ops from "../../lib/ir/ops.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { buildFakePlugins, openQueries } from "./fake_plugin/build.ts";

const plugins = await buildFakePlugins({ full: [], wideNamedValue: ["-DFAKE_NV_EXTRA=24"] });
const fake = plugins ? openQueries(plugins.full) : null;
const quiet = () => {};

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `pjrt pre-flight: ${name}`, ignore: plugins === null, fn });
}

/** A store that already holds node 0's key, as if process 0 had put it. */
function storeWithNode0() {
  const values = new Map<string, Uint8Array>([
    ["fake/node/0", new Uint8Array([...new TextEncoder().encode("node0"), 0, 255])],
  ]);
  const store: KeyValueStore = {
    get: (key) => {
      const v = values.get(key);
      if (!v) throw new DOMException(`${key} absent`, "TimeoutError");
      return v;
    },
    put: (key, value) => void values.set(key, value.slice()),
    tryGet: (key) => values.get(key),
  };
  return { store, values };
}

test("a job's process gets node_id and num_nodes with the store (CUDA); the plugin joins", async () => {
  const { store, values } = storeWithNode0();
  using client = await PjrtClient.open({
    pluginPath: plugins!.full,
    log: quiet,
    job: { processIndex: 1, processCount: 2, keyValueStore: store },
  });
  assertEquals(fake!.lastOptions(), "node_id=i:1;num_nodes=i:2;");
  assertEquals(fake!.lastRendezvous(), "put fake/node/1; try_get ok; got 0;");
  assert(values.has("fake/node/1"));
  assertEquals([client.processIndex, client.devices.length, client.allDevices.length], [1, 1, 2]);
  assert(client.hasKeyValueStore);
});

test("num_nodes > 1 without the callbacks is refused, as the CUDA plugin does", async () => {
  await assertRejects(
    () =>
      PjrtClient.open({
        pluginPath: plugins!.full,
        log: quiet,
        options: { node_id: 0, num_nodes: 2 },
      }),
    "num_nodes > 1 needs the kv callbacks",
  );
});

test("libtpu gets neither node options nor the store; one process gets neither either", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/libtpu`);
    const tpu = `${dir}/libtpu/libtpu.so`;
    await Deno.copyFile(plugins!.full, tpu);
    assert(!joinsThroughKeyValueStore(tpu));
    assert(joinsThroughKeyValueStore("/x/jax_plugins/xla_cuda13/xla_cuda_plugin.so"));
    const { store } = storeWithNode0();
    const tpuFake = openQueries(tpu);
    {
      using client = await PjrtClient.open({
        pluginPath: tpu,
        log: quiet,
        job: { processIndex: 1, processCount: 2, keyValueStore: store },
      });
      assertEquals(tpuFake.lastOptions(), "");
      assert(!client.hasKeyValueStore);
    }
    tpuFake.close();
    using single = await PjrtClient.open({
      pluginPath: plugins!.full,
      log: quiet,
      job: { processIndex: 0, processCount: 1, keyValueStore: store },
    });
    assertEquals(fake!.lastOptions(), "");
    assert(!single.hasKeyValueStore);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("numbers go as the option's declared type: memory_fraction 1 is a float", async () => {
  {
    using _c = await PjrtClient.open({
      pluginPath: plugins!.full,
      log: quiet,
      options: { memory_fraction: 1, collective_memory_size: 4096, fake_devices: 2.5 },
    });
  }
  assertEquals(
    fake!.lastOptions(),
    "memory_fraction=f:1;collective_memory_size=i:4096;fake_devices=f:2.5;",
  );
  await assertRejects(
    () => PjrtClient.open({ pluginPath: plugins!.full, log: quiet, options: { node_id: 0.5 } }),
    "client option node_id takes a whole number (int64), got 0.5",
  );
  await assertRejects(
    () => PjrtClient.open({ pluginPath: plugins!.full, log: quiet, options: { preallocate: 1 } }),
    "client option preallocate takes a bool, got the number 1",
  );
  // What the plugin itself says when a type is wrong (a forced int64 memory_fraction).
  await assertRejects(
    () =>
      PjrtClient.open({
        pluginPath: plugins!.full,
        log: quiet,
        options: { memory_fraction: { int64: 1 } },
      }),
    "name memory_fraction has type index 1 but expected type index 3",
  );
});

test("PJRT_NamedValue arrays step by the plugin's sizeof, both ways", async () => {
  const wide = openQueries(plugins!.wideNamedValue);
  using client = await PjrtClient.open({
    pluginPath: plugins!.wideNamedValue,
    log: quiet,
    options: { allocator: "bfc", memory_fraction: 0.5, preallocate: false },
  });
  assertEquals(client.plugin.namedValueStride, 56 + 24);
  assertEquals(client.attributes.fake_name, "fake-pjrt");
  assertEquals(client.attributes.stablehlo_current_version, [1n, 9n, 3n]);
  assertEquals(wide.lastOptions(), "allocator=s:bfc;memory_fraction=f:0.5;preallocate=b:0;");
  wide.close();
});

test("compile options carry process_index and process_count", async () => {
  using backend = disposable(
    await PjrtBackend.create({
      pluginPath: plugins!.full,
      log: quiet,
      devices: 1,
      clientOptions: { fake_processes: 2, fake_devices: 1, fake_process_index: 1 },
      keyValueStore: storeWithNode0().store, // a store alone (no job) adds no node options
    }),
  );
  const spec = { shape: [2], dtype: "f32" as const };
  const graph = trace((a: Tensor, b: Tensor) => ops.add(a, b), spec, spec).graph;
  await backend.value.compile(graph);
  const want = encodeCompileOptions({
    numReplicas: 2,
    numPartitions: 1,
    deviceAssignment: [[0], [1]],
    processIndex: 1,
    processCount: 2,
  });
  const hex = [...want].map((b) => b.toString(16).padStart(2, "0")).join("");
  assert(hex.includes("b00101b80102"), `process_index 1 (field 22), process_count 2 (23): ${hex}`);
  const exe = [...backend.value.client.live].find((o) => o instanceof PjrtExecutable);
  assertEquals((exe as PjrtExecutable).name, `fake:${hex}`);
});

test("argument lists follow the executable's device order, outputs come back per replica", async () => {
  using backend = disposable(
    await PjrtBackend.create({
      pluginPath: plugins!.full,
      log: quiet,
      clientOptions: { fake_processes: 1, fake_devices: 3, fake_permute_devices: 1 },
    }),
  );
  const b = backend.value;
  assertEquals(b.devices, 3);
  const spec = { shape: [1], dtype: "f32" as const };
  const graph = trace((x: Tensor, y: Tensor) => ops.add(x, y), spec, spec).graph;
  const exe = await b.compile(graph);
  const x = await b.fromHostPerDevice([0, 1, 2].map((d) => hostTensor([1], "f32", [d])));
  const y = await b.fromHostPerDevice([0, 1, 2].map((d) => hostTensor([1], "f32", [10 * d])));
  const [sum] = await exe.execute([x, y]);
  const per = await b.toHostPerDevice(sum);
  assertEquals(per.map((t) => t.data[0]), [0, 11, 22]);
});

test("an event whose await and destroy both fail reports the event's own error", async () => {
  using client = await PjrtClient.open({
    pluginPath: plugins!.full,
    log: quiet,
    options: { fake_event_fail: 1 },
  });
  const error = await client.bufferFromHost({
    elementType: 11,
    dims: [1],
    data: new Float32Array([1]),
  }).then(() => null, (e) => e);
  assert(error instanceof PjrtError, String(error));
  assert(error.message.includes("fake event failed"), error.message);
  assert(!error.message.includes("destroy"), error.message);
});

test("with a store, only a program's first launch leaves the thread (it may fetch clique ids)", async () => {
  const { store, values } = storeWithNode0();
  values.set("fake/clique/0", new TextEncoder().encode("clique0"));
  using backend = disposable(
    await PjrtBackend.create({
      pluginPath: plugins!.full,
      log: quiet,
      clientOptions: { fake_kv_on_execute: 1 },
      job: { processIndex: 1, processCount: 2, keyValueStore: store },
    }),
  );
  const b = backend.value;
  const spec = { shape: [1], dtype: "f32" as const };
  const graph = trace((x: Tensor, y: Tensor) => ops.add(x, y), spec, spec).graph;
  const exe = await b.compile(graph);
  const x = await b.fromHost(hostTensor([1], "f32", [1]));
  // The first launch gets the clique id through the store: a blocking call would deadlock, and
  // so would a second launch made (as a plain call) before the first is done: it waits.
  const first = exe.execute([x, x]);
  const second = exe.execute([x, x]);
  const [s1] = await first;
  assertEquals(fake!.lastRendezvous(), "put fake/node/1; try_get ok; got 0; exec 0 got;");
  const [s2] = await exe.execute([s1, x]);
  assertEquals([...(await b.toHost(s2)).data], [3]);
  assertEquals([...(await b.toHost((await second)[0])).data], [2]);
});

/** A backend as a `using` resource. */
function disposable(b: PjrtBackend) {
  return { value: b, [Symbol.dispose]: () => b.dispose() };
}
