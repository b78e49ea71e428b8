/**
 * The PJRT backend without a real plugin: discovery errors, and the whole path (emit, compile,
 * upload, execute per replica, donation flags, download) against the fake plugin of
 * tests/ffi/fake_plugin (built with `cc`; those tests are skipped without a C compiler). The
 * fake's "program" adds its two f32 arguments when the text contains "add" and swaps them
 * otherwise, which is enough to check the plumbing; numbers from XLA need a real plugin.
 */
import { PjrtBackend } from "../../../lib/backend/pjrt/backend.ts";
import { PjrtArray } from "../../../lib/backend/pjrt/array.ts";
import { splitAxis0 } from "../../../lib/backend/replicas.ts";
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { Compiled } from "../../../lib/backend/jit.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { PjrtPluginNotFoundError } from "../../../ffi/discovery.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../../assert.ts";
import { buildFakePlugins, openQueries } from "../../ffi/fake_plugin/build.ts";

const nothingToFind = { env: () => undefined, pythonPrefixes: [], standardPaths: [] };

Deno.test("pjrt backend: no plugin anywhere gives the discovery error", async () => {
  let error: unknown;
  try {
    await PjrtBackend.create({ discovery: nothingToFind, log: () => {} });
  } catch (e) {
    error = e;
  }
  assert(error instanceof PjrtPluginNotFoundError, String(error));
  assert((error as Error).message.startsWith("No PJRT plugin found."));
  assert((error as Error).message.includes("--pjrt-plugin PATH or set PJRT_PLUGIN_PATH"));
});

Deno.test("pjrt backend: a missing --pjrt-plugin file is named", async () => {
  await assertRejects(
    () => PjrtBackend.create({ pluginPath: "/nonexistent/libtpu.so", log: () => {} }),
    "PJRT plugin /nonexistent/libtpu.so (from --pjrt-plugin) cannot be used: no such file",
  );
});

const LIBC = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"]
  .find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });

Deno.test({
  name: `pjrt backend: a library that is not a PJRT plugin is refused${
    LIBC ? "" : " (ignored: no libc.so.6 in /lib/{x86_64,aarch64}-linux-gnu)"
  }`,
  ignore: LIBC === undefined,
  fn: async () => {
    await assertRejects(
      () => PjrtBackend.create({ pluginPath: LIBC!, log: () => {} }),
      "is not a PJRT plugin: it does not export GetPjrtApi",
    );
  },
});

Deno.test("pjrt shard: axis 0 split into equal replica slices, or a clear error", () => {
  const t = hostTensor([4, 2], "i32", [0, 1, 2, 3, 4, 5, 6, 7]);
  const parts = splitAxis0(t, 2);
  assertEquals(parts.map((p) => [p.shape, Array.from(p.data)]), [
    [[2, 2], [0, 1, 2, 3]],
    [[2, 2], [4, 5, 6, 7]],
  ]);
  assertThrows(() => splitAxis0(t, 3), "axis 0 of i32[4,2] (4) is not divisible by 3 replicas");
  assertThrows(() => splitAxis0(hostTensor([], "f32", [1]), 2), "a scalar cannot be split");
});

const fake = (await buildFakePlugins({ plain: [] }))?.plain ?? null;
const quiet = () => {};

function fakeTest(name: string, fn: (path: string) => Promise<void>) {
  Deno.test({
    name: `pjrt backend (fake plugin): ${name}`,
    ignore: fake === null,
    fn: () => fn(fake!),
  });
}

const f32 = (...shape: number[]) => ({ shape, dtype: "f32" as const });
const addGraph = () => trace((x: Tensor, y: Tensor) => ops.add(x, y), f32(4), f32(4)).graph;

fakeTest("compile, upload, execute and download on one replica", async (path) => {
  const backend = await PjrtBackend.create({ pluginPath: path, devices: 1, log: quiet });
  try {
    // The fake's default topology has one device in process 1: 2 replicas, one local.
    assertEquals([backend.replicas, backend.devices], [2, 1]);
    assert(
      backend.description.startsWith(
        "fake FakeDevice x1 (of 2 replicas), compute f32, matmul precision default (PJRT ",
      ),
      backend.description,
    );
    const exe = await backend.compile(addGraph());
    const x = await backend.fromHost(hostTensor([4], "f32", [1, 2, 3, 4]));
    const y = await backend.fromHost(hostTensor([4], "f32", [10, 20, 30, 40]));
    const [z] = await exe.execute([x, y]);
    const host = await backend.toHost(z);
    assertEquals([host.shape, host.dtype, Array.from(host.data)], [[4], "f32", [11, 22, 33, 44]]);
    for (const a of [x, y, z]) backend.free(a);
    exe.dispose();
  } finally {
    backend.dispose();
  }
});

fakeTest("jit's Compiled runs through the backend interface", async (path) => {
  const backend = await PjrtBackend.create({ pluginPath: path, log: quiet });
  try {
    const compiled = await Compiled.create(
      backend,
      (a: Tensor, b: Tensor) => ops.add(a, b),
      f32(2),
      f32(2),
    );
    const out = await compiled.call([
      hostTensor([2], "f32", [1, 2]),
      hostTensor([2], "f32", [3, 4]),
    ]);
    assertEquals(Array.from((await backend.toHost(out)).data), [4, 6]);
    backend.free(out);
    compiled.dispose();
  } finally {
    backend.dispose();
  }
});

fakeTest(
  "data parallel: replicated and per-device arrays, one buffer per local device",
  async (path) => {
    const queries = openQueries(path);
    // 2 processes x 2 devices; this is process 0.
    const clientOptions = { fake_processes: 2, fake_devices: 2 };
    const backend = await PjrtBackend.create({ pluginPath: path, clientOptions, log: quiet });
    try {
      assertEquals([backend.replicas, backend.devices], [4, 2]);
      assertEquals(backend.localDevices.map((d) => d.id), [0, 1]);
      assertEquals(backend.replicaDevices.map((d) => d.id), [0, 1, 2, 3]);
      assert(backend.description.includes("x2 (of 4 replicas)"));
      const graph = addGraph();
      assert(backend.emit(graph).includes("mhlo.num_replicas = 4 : i32"));
      const exe = await backend.compile(graph);
      const x = await backend.fromHostPerDevice(
        splitAxis0(hostTensor([8], "f32", [1, 2, 3, 4, 5, 6, 7, 8]), 2),
      );
      assertEquals(x.shape, [4]);
      const y = await backend.fromHost(hostTensor([4], "f32", [100, 200, 300, 400]));
      const [z] = await exe.execute([x, y]);
      const perDevice = await backend.toHostPerDevice(z);
      assertEquals(perDevice.map((r) => Array.from(r.data)), [[101, 202, 303, 404], [
        105,
        206,
        307,
        408,
      ]]);
      assertEquals(Array.from((await backend.toHost(z)).data), [101, 202, 303, 404]);
      // Donation is per device: both devices' copies of x are consumed.
      const [w] = await exe.execute([x, y], { donate: [true, false] });
      assertEquals(queries.lastDonated(), "donated: d0/a0 d1/a0");
      await assertRejects(() => exe.execute([x, y]), "was donated to an execution");
      assertEquals(
        (await backend.toHostPerDevice(w)).map((r) => Array.from(r.data)),
        perDevice.map((r) => Array.from(r.data)),
      );
      await assertRejects(
        () => backend.fromHostPerDevice([hostTensor([1], "f32", [1])]),
        "1 values for 2 devices",
      );
      for (const a of [x, y, z, w]) backend.free(a);
      exe.dispose();
    } finally {
      backend.dispose();
      queries.close();
    }
  },
);

fakeTest("--devices picks that many devices of every process", async (path) => {
  const clientOptions = { fake_processes: 3, fake_devices: 4, fake_process_index: 1 };
  const backend = await PjrtBackend.create({
    pluginPath: path,
    clientOptions,
    devices: 2,
    log: quiet,
  });
  try {
    assertEquals(backend.replicaDevices.map((d) => d.id), [0, 1, 4, 5, 8, 9]);
    assertEquals(backend.localDevices.map((d) => d.id), [4, 5]);
    assertEquals([backend.replicas, backend.devices], [6, 2]);
  } finally {
    backend.dispose();
  }
});

fakeTest(
  "donation: aliases from `donate`, flags reach the plugin, donated arrays are consumed",
  async (path) => {
    const queries = openQueries(path);
    const backend = await PjrtBackend.create({ pluginPath: path, log: quiet });
    try {
      // (p, m) -> (m, p): the fake swaps its arguments when the text has no "add".
      const graph =
        trace((p: Tensor, m: Tensor) => [ops.neg(ops.neg(m)), ops.neg(ops.neg(p))], f32(2), f32(2))
          .graph;
      assert(
        backend.emit(graph, { donate: [true, false] }).includes(
          "%arg0: tensor<2xf32> {tf.aliasing_output = 0 : i32}, %arg1: tensor<2xf32>)",
        ),
      );
      assert(!backend.emit(graph).includes("tf.aliasing_output"));
      const exe = await backend.compile(graph, { donate: [true, false] });
      const p = await backend.fromHost(hostTensor([2], "f32", [1, 2]));
      const m = await backend.fromHost(hostTensor([2], "f32", [3, 4]));
      const [a, b] = await exe.execute([p, m], { donate: [true, false] });
      assertEquals(queries.lastNonDonatable(), "launch 0: 1");
      assertEquals(Array.from((await backend.toHost(a)).data), [3, 4]);
      assertEquals(Array.from((await backend.toHost(b)).data), [1, 2]);
      await assertRejects(() => backend.toHost(p), "was donated to an execution");
      backend.free(p); // freeing a donated array is allowed
      assertThrows(() => (p as PjrtArray).buffers, "used after it was freed");
      await exe.execute([m, m], { donate: [false, false] }).then((outs) =>
        outs.forEach((o) => backend.free(o))
      );
      assertEquals(queries.lastNonDonatable(), "launch 0: 0 1");
      await assertRejects(
        () => exe.execute([m, m], { donate: [true, false] }),
        "argument 0 is donated but also passed",
      );
      for (const x of [m, a, b]) backend.free(x);
      exe.dispose();
    } finally {
      backend.dispose();
      queries.close();
    }
  },
);

fakeTest("bad arguments are refused naming the argument", async (path) => {
  const backend = await PjrtBackend.create({ pluginPath: path, log: quiet });
  try {
    const exe = await backend.compile(addGraph());
    const x = await backend.fromHost(hostTensor([4], "f32", [1, 2, 3, 4]));
    const small = await backend.fromHost(hostTensor([2], "f32", [1, 2]));
    const cpu = await new CpuBackend().fromHost(hostTensor([4], "f32", [1, 2, 3, 4]));
    await assertRejects(
      () => exe.execute([x, small]),
      "argument 1 is f32[2], the program takes f32[4]",
    );
    await assertRejects(
      () => exe.execute([x, cpu]),
      "execute argument 1: f32[4] is not an array of this backend",
    );
    await assertRejects(() => exe.execute([x]), "the program takes 2 arrays, got 1");
    exe.dispose();
    await assertRejects(() => exe.execute([x, x]), "execute after dispose");
    backend.free(x);
    backend.free(small);
  } finally {
    backend.dispose();
  }
});

fakeTest("device counts beyond a process's devices are refused", async (path) => {
  await assertRejects(
    () =>
      PjrtBackend.create({
        pluginPath: path,
        clientOptions: { fake_processes: 2, fake_devices: 2 },
        devices: 3,
        log: quiet,
      }),
    '--devices must be "all" or 1..2 (devices per process), got 3',
  );
});

fakeTest("dumpDir receives each compiled program's text", async (path) => {
  const dir = await Deno.makeTempDir({ prefix: "pjrt_dump_" });
  const backend = await PjrtBackend.create({
    pluginPath: path,
    dumpDir: dir,
    precision: "bf16",
    log: quiet,
  });
  try {
    const exe = await backend.compile(addGraph(), { name: "add" });
    const text = await Deno.readTextFile(`${dir}/add-0.mlir`);
    assertEquals(text, backend.emit(addGraph(), { name: "add" }));
    assert(text.startsWith("module @add attributes"));
    exe.dispose();
  } finally {
    backend.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
