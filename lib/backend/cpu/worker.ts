/**
 * A worker thread of the CPU backend's pool (threads.ts): instantiates the GEMM module and
 * the fused-loop module of each registered shared memory, then runs the task records the
 * main thread posts in its control slot.
 */
import { parentPort } from "node:worker_threads";
import { F, type GemmFn, KIND_FUSED, runFusedTask, runGemmTask, TASK_INTS } from "./tasks.ts";

interface Register {
  type: "register";
  id: number;
  memory: WebAssembly.Memory;
  gemm: WebAssembly.Module;
  fused: WebAssembly.Module | null;
}
type Message =
  | Register
  | { type: "unregister"; id: number }
  | { type: "start"; control: SharedArrayBuffer; slot: number };

interface Instances {
  gemm: GemmFn;
  fused: Record<string, unknown>;
}

const memories = new Map<number, Instances>();
const port = parentPort!;

port.on("message", (msg: Message) => {
  if (msg.type === "register") {
    const env = { env: { memory: msg.memory } };
    const gemm = new WebAssembly.Instance(msg.gemm, env).exports.gemm as GemmFn;
    const fused = msg.fused ? new WebAssembly.Instance(msg.fused, env).exports : {};
    memories.set(msg.id, { gemm, fused });
    port.postMessage({ type: "registered", id: msg.id });
  } else if (msg.type === "unregister") {
    memories.delete(msg.id);
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
      const m = memories.get(t[o + F.memory]);
      if (!m) throw new Error(`no memory ${t[o + F.memory]}`);
      if (t[o + F.kind] === KIND_FUSED) runFusedTask(m.fused, t, o);
      else runGemmTask(m.gemm, t, o);
      t[o + F.error] = 0;
    } catch {
      t[o + F.error] = 1;
    }
    Atomics.store(t, o + F.done, seen);
    Atomics.notify(t, o + F.done);
  }
}
