/**
 * One process of a multi-host PJRT job for kv_test.ts: meets the others at process 0's
 * key-value store (lib/train/distributed.ts), then creates a fake-plugin PJRT backend with that
 * store, whose client does the rendezvous. Prints JSON: the fake's rendezvous line and the
 * backend's replicas, or the error. Usage:
 *   deno run -A kv_child.ts PLUGIN PROCESSES INDEX PORT GET_TIMEOUT_MS
 */
import { KvStore, processTopology } from "../../../lib/train/distributed.ts";
import { PjrtBackend } from "../../../lib/backend/pjrt/backend.ts";
import { pjrtKeyValueStore } from "../../../lib/backend/pjrt/kv_bridge.ts";
import { openQueries } from "../../ffi/fake_plugin/build.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";

const [plugin, processes, index, port, timeoutMs] = Deno.args;
const P = Number(processes), i = Number(index);
const topology = processTopology({
  "num-processes": P,
  "process-id": i,
  coordinator: `127.0.0.1:${port}`,
});
const kv = await KvStore.connect(topology, 20_000);
try {
  const backend = await PjrtBackend.create({
    pluginPath: plugin,
    log: () => {},
    keyValueStore: pjrtKeyValueStore(kv),
    clientOptions: {
      fake_processes: P,
      fake_devices: 1,
      fake_process_index: i,
      fake_kv_rendezvous: Number(timeoutMs),
      fake_kv_on_execute: 1,
    },
  });
  // A step's launch: the fake exchanges a clique id through the store, as NCCL does.
  const spec = { shape: [2], dtype: "f32" as const };
  const graph = trace((a: Tensor, b: Tensor) => ops.add(a, b), spec, spec).graph;
  const exe = await backend.compile(graph);
  const x = await backend.fromHost(hostTensor([2], "f32", [1, 2]));
  const [sum] = await exe.execute([x, x]);
  const value = [...(await backend.toHost(sum)).data];
  const rendezvous = openQueries(plugin).lastRendezvous();
  console.log(JSON.stringify({ rendezvous, replicas: backend.replicas, value }));
  backend.dispose();
  await kv.close(20_000);
} catch (e) {
  console.log(JSON.stringify({ error: (e as Error).message }));
  Deno.exit(1); // process 0 would wait for the others to leave; there is nobody to wait for
}
