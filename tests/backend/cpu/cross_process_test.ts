/**
 * The CPU all-reduce across processes (lib/backend/cpu/cross_process.ts), with the job's
 * "processes" as backends in this process talking over 127.0.0.1: P processes x N devices give
 * bit for bit what one process with N x P devices gives, and a process that leaves fails the
 * others' sums instead of hanging them.
 */
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { ProcessSum } from "../../../lib/backend/cpu/cross_process.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { assertEquals, assertRejects } from "../../assert.ts";
import { mlpInputs, mlpSpecs, mlpTrainStep } from "../stablehlo/mlp.ts";

/** P connected ProcessSum ends (process 0 serving). */
async function job(P: number): Promise<ProcessSum[]> {
  const server = ProcessSum.serve("127.0.0.1", P);
  const clients = await Promise.all(
    Array.from(
      { length: P - 1 },
      (_, i) => ProcessSum.connect(`127.0.0.1:${server.port}`, i + 1, P),
    ),
  );
  await server.ready;
  return [server, ...clients];
}

for (const [P, N] of [[2, 1], [3, 2]]) {
  Deno.test(`cpu cross-process: ${P} processes x ${N} devices = 1 process x ${P * N}, bit for bit`, async () => {
    const R = P * N;
    const inputs = Array.from({ length: R }, (_, r) => mlpInputs(r));
    const graph = trace(mlpTrainStep(R), ...mlpSpecs()).graph;
    // One process with every device.
    const all = new CpuBackend({ devices: R });
    const exe = await all.compile(graph);
    const args = await Promise.all(
      inputs[0].map((_, i) => all.fromHostPerDevice(inputs.map((row) => row[i]))),
    );
    const want = await Promise.all((await exe.execute(args)).map((o) => all.toHostPerDevice(o)));
    // P processes of N devices each: process p holds replicas p*N .. p*N+N-1.
    const ends = await job(P);
    try {
      const got = await Promise.all(ends.map(async (end, p) => {
        const cpu = new CpuBackend({ devices: N, processes: end });
        assertEquals(cpu.replicas, R);
        const mine = inputs.slice(p * N, (p + 1) * N);
        const e = await cpu.compile(graph);
        const a = await Promise.all(
          mine[0].map((_, i) => cpu.fromHostPerDevice(mine.map((row) => row[i]))),
        );
        // Two steps: meetings of successive calls stay in order.
        await e.execute(a.map((x) => x));
        return await Promise.all((await e.execute(a)).map((o) => cpu.toHostPerDevice(o)));
      }));
      // The second call on the same inputs gives the first call's result.
      for (let p = 0; p < P; p++) {
        got[p].forEach((outs, j) =>
          outs.forEach((t, d) =>
            assertEquals(
              Array.from(t.data),
              Array.from(want[j][p * N + d].data),
              `output ${j} of process ${p} device ${d}`,
            )
          )
        );
      }
    } finally {
      for (const e of ends) e.close();
    }
  });
}

Deno.test("cpu cross-process: a process that leaves fails the others' sums", async () => {
  const [server, client] = await job(2);
  client.close();
  await assertRejects(
    () => server.sum("f32", [new Float32Array([1, 2])]),
    "process 1 left the cpu all-reduce",
  );
  server.close();
});
