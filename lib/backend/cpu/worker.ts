/**
 * A GEMM worker thread (see threads.ts): instantiates the GEMM module on each registered
 * shared memory, then runs the task records the main thread posts in its control slot.
 */
import { parentPort } from "node:worker_threads";
import { F, type GemmFn, runGemmTask, TASK_INTS } from "./gemm_task.ts";

interface Register {
  type: "register";
  id: number;
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
}
type Message =
  | Register
  | { type: "unregister"; id: number }
  | { type: "start"; control: SharedArrayBuffer; slot: number };

const gemms = new Map<number, GemmFn>();
const port = parentPort!;

port.on("message", (msg: Message) => {
  if (msg.type === "register") {
    const inst = new WebAssembly.Instance(msg.module, { env: { memory: msg.memory } });
    gemms.set(msg.id, inst.exports.gemm as GemmFn);
    port.postMessage({ type: "registered", id: msg.id });
  } else if (msg.type === "unregister") {
    gemms.delete(msg.id);
  } else {
    void serve(new Int32Array(msg.control), msg.slot * TASK_INTS);
  }
});

async function serve(t: Int32Array, o: number): Promise<void> {
  let seen = Atomics.load(t, o + F.seq);
  for (;;) {
    // deno-lint-ignore no-explicit-any
    const w = (Atomics as any).waitAsync(t, o + F.seq, seen);
    if (w.async) await w.value;
    seen = Atomics.load(t, o + F.seq);
    try {
      const gemm = gemms.get(t[o + F.memory]);
      if (!gemm) throw new Error(`no memory ${t[o + F.memory]}`);
      runGemmTask(gemm, t, o);
      t[o + F.error] = 0;
    } catch {
      t[o + F.error] = 1;
    }
    Atomics.store(t, o + F.done, seen);
    Atomics.notify(t, o + F.done);
  }
}
