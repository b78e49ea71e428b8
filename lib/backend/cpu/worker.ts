/**
 * A worker thread of the CPU backend's pool (threads.ts): instantiates the GEMM module and
 * the fused-loop module of each registered shared memory, then claims and runs chunks of the
 * jobs the main thread posts.
 */
import { parentPort } from "node:worker_threads";
import {
  F,
  type GemmFn,
  KIND_ATTENTION,
  KIND_FUSED,
  runFusedTask,
  runGemmTask,
  TASK_INTS,
} from "./task_records.ts";
import { type AttentionContext, attentionContext } from "./attention.ts";
import { runAttentionTask } from "./attention_step.ts";
import { C, claim, spinUntil, TAG_MASK } from "./threads.ts";
import { gemmOn } from "./dot.ts";

interface Register {
  type: "register";
  id: number;
  memory: WebAssembly.Memory;
  gemm: WebAssembly.Module;
  fused: WebAssembly.Module | null;
  native: boolean;
  attention: WebAssembly.Module | null;
}
type Message =
  | Register
  | { type: "unregister"; id: number }
  | { type: "start"; control: SharedArrayBuffer; thread: number };

interface Instances {
  gemm: GemmFn;
  fused: Record<string, unknown>;
  attention: AttentionContext | null;
}

const memories = new Map<number, Instances>();
const port = parentPort!;

port.on("message", (msg: Message) => {
  if (msg.type === "register") {
    const env = { env: { memory: msg.memory } };
    const { gemm, native } = gemmOn(msg.memory, msg.gemm, msg.native);
    // the same GEMM as the calling thread, or the results would depend on who ran a chunk
    if (native !== msg.native) throw new Error("cpu worker: the native BLAS did not load");
    const fused = msg.fused ? new WebAssembly.Instance(msg.fused, env).exports : {};
    const attention = msg.attention ? attentionContext(msg.memory, msg.attention, gemm) : null;
    memories.set(msg.id, { gemm, fused, attention });
    port.postMessage({ type: "registered", id: msg.id });
  } else if (msg.type === "unregister") {
    memories.delete(msg.id);
  } else {
    void serve(new Int32Array(msg.control), msg.thread);
  }
});

/**
 * While jobs keep coming, a worker blocks on the job word itself (a futex wait, woken within
 * microseconds by the caller's notify): waiting through the event loop (waitAsync) woke it
 * late, so the caller had done most chunks alone by then. After this long without a job it
 * waits through the event loop instead, so that register / unregister messages are handled
 * (a caller registering a new executable is itself idle meanwhile).
 */
const BLOCKING_IDLE_MS = 20;
/**
 * Poll the job word this long before blocking: a step's jobs often follow each other by less.
 * A blocked worker must be woken by the caller, and on a busy machine the kernel can schedule it
 * onto the caller's own core, preempting the caller (a notify then cost the caller 0.2-0.4 ms in
 * a loaded profile); polling longer makes that worse, as the poll itself then holds the core.
 */
const SPIN_MS = 0.25;

async function serve(t: Int32Array, thread: number): Promise<void> {
  let seen = Atomics.load(t, C.seq);
  for (;;) {
    const idleSince = performance.now();
    spinUntil(() => Atomics.load(t, C.seq) !== seen, SPIN_MS);
    while (Atomics.load(t, C.seq) === seen) {
      if (performance.now() - idleSince >= BLOCKING_IDLE_MS) {
        // deno-lint-ignore no-explicit-any
        const w = (Atomics as any).waitAsync(t, C.seq, seen);
        if (w.async) await w.value;
        break;
      }
      Atomics.wait(t, C.seq, seen, BLOCKING_IDLE_MS);
    }
    seen = Atomics.load(t, C.seq);
    // the chunk count comes with the claim (one word): never from a job not seen whole
    const tag = seen & TAG_MASK;
    for (;;) {
      const i = claim(t, tag);
      if (i < 0) break;
      try {
        const m = memories.get(t[C.memory]);
        if (!m) throw new Error(`no memory ${t[C.memory]}`);
        const o = C.records + i * TASK_INTS;
        if (t[o + F.kind] === KIND_FUSED) runFusedTask(m.fused, t, o);
        else if (t[o + F.kind] === KIND_ATTENTION) runAttentionTask(m.attention!, t, o, thread);
        else runGemmTask(m.gemm, t, o, thread);
      } catch {
        t[C.error] = 1;
      }
      Atomics.add(t, C.completed, 1);
      Atomics.notify(t, C.completed);
    }
  }
}
