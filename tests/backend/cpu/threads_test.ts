/**
 * The CPU worker pool's claim protocol (threads.ts): each chunk claimed once, only for the
 * current job, and never past the end of a job whose chunk count the next job has changed (the
 * stall of issue 11); a caller whose own chunk throws waits for the workers' chunks first.
 */
import {
  C,
  claim,
  exhaust,
  packClaim,
  TAG_MASK,
  WorkerPool,
} from "../../../lib/backend/cpu/threads.ts";
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { FusedExecutable } from "../../../lib/backend/cpu/executable.ts";
import { evaluate } from "../../../lib/backend/jit.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { type HostTensor, hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals, assertThrows } from "../../assert.ts";

const control = () => new Int32Array(new SharedArrayBuffer(4 * C.records));

Deno.test("worker pool claims: each chunk once, in order, only for the current job", () => {
  const t = control();
  const tag = TAG_MASK; // the sign bit of the word set
  t[C.claim] = packClaim(tag, 3, 0);
  assertEquals([0, 1, 2].map(() => claim(t, tag)), [0, 1, 2]);
  assertEquals(claim(t, tag), -1); // none left
  t[C.claim] = packClaim(2, 3, 0);
  assertEquals(claim(t, tag), -1); // a stale worker: another job is current
  assertEquals(claim(t, 2), 0);
  // tags wrap with the job seq
  assertEquals(claim(t, 2 + TAG_MASK + 1), 1);
});

Deno.test("worker pool claims: a late worker cannot claim past an exhausted job", () => {
  // Job 5 had 2 chunks, all claimed. The caller is writing the records of a 5-chunk job and
  // has not published its claim word yet: a worker that woke for job 5 finds nothing.
  const t = control();
  t[C.claim] = packClaim(5, 2, 2);
  t[C.memory] = 9;
  assertEquals(claim(t, 5), -1);
  assertEquals(claim(t, 6), -1);
  t[C.claim] = packClaim(6, 5, 0);
  assertEquals(claim(t, 5), -1);
  assertEquals(claim(t, 6), 0);
});

Deno.test("worker pool claims: exhaust stops the job and says how many were claimed", () => {
  const t = control();
  t[C.claim] = packClaim(7, 4, 0);
  claim(t, 7);
  assertEquals(exhaust(t, 7), 1);
  assertEquals(claim(t, 7), -1);
  assertEquals(exhaust(t, 7), 4); // already exhausted: all four slots are gone
});

Deno.test("worker pool: a chunk that throws on the caller is rethrown after the others finish", async () => {
  const pool = WorkerPool.shared();
  if (!pool) return console.log("one core (or DEIT3_CPU_THREADS=1): no pool");
  // a job whose chunks run on an unregistered memory: the workers' chunks fail (error flag),
  // the caller's throws; both are reported, and the next job starts clean
  const chunk = () => new Int32Array(32);
  assertThrows(
    () =>
      pool.run(12345, [chunk(), chunk(), chunk(), chunk()], () => {
        throw new Error("caller chunk failed");
      }),
    /caller chunk failed|worker thread failed/,
  );
  let ran = 0;
  pool.run(12345, [chunk()], () => ran++);
  assert(ran === 1);
  await new Promise((r) => setTimeout(r, 10));
});

Deno.test("cpu fused: row and column reductions run as wasm, cut across threads, bit for bit", async () => {
  const rows = 96, cols = 2048; // 196K elements: split when a pool exists
  let seed = 3;
  const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5;
  const values = Array.from({ length: rows * cols }, () => rand() * 50);
  values[5 * cols + 7] = NaN; // a NaN row for max and sum
  values[9 * cols + 1] = -Infinity;
  const x = hostTensor([rows, cols], "f32", values);
  const program = (t: Tensor) => [
    ops.sum(ops.mul(t, t), [1]),
    ops.max(ops.add(t, 1), [1]),
    ops.sum(t, [0]), // a column reduction: cut by columns
    ops.max(ops.mul(t, 2), [0]),
    ops.sum(ops.reshape(t, [rows / 2, 2, cols]), [0, 2]), // neither: a JS loop
  ];
  const graph = trace(program, { shape: x.shape, dtype: x.dtype }).graph;
  const exe = new FusedExecutable(graph, { threads: true, exactMath: true });
  const got = await exe.execute([x]);
  assertEquals(exe.stats.wasmReductions, 4);
  if (WorkerPool.shared()) assertEquals(exe.stats.threadedLoops, 4);
  exe.dispose();
  const want = await evaluate(new CpuBackend({ mode: "reference" }), program, x) as HostTensor[];
  got.forEach((g, i) => {
    const k = g.data.findIndex((v, q) => !Object.is(v, want[i].data[q]));
    assertEquals(k, -1, `output ${i} differs at ${k}: ${g.data[k]} vs ${want[i].data[k]}`);
  });
});
