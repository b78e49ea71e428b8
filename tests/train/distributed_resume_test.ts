/**
 * Stop and resume a multi-host job, with 2 and 3 real processes on this machine
 * (tests/train/distributed_resume_worker.ts): process 0 saves every process's data position,
 * each process resumes from its own, and its next batch is the one an uninterrupted run takes.
 * A resume with another process count is refused, naming the saved keys.
 */
import { assert, assertEquals } from "../assert.ts";
import { buildShard, goodSamples, writeShards } from "../data/helpers.ts";

const WORKER = new URL("./distributed_resume_worker.ts", import.meta.url).pathname;

const shards = await writeShards(
  await Promise.all(
    Array.from({ length: 7 }, async (_, s) => buildShard(await goodSamples(`s${s}-`, 5))),
  ),
  "dist",
);
globalThis.addEventListener("unload", () => Deno.removeSync(shards.dir, { recursive: true }));

async function job(processes: number, phase: "run" | "resume", out: string, steps = 5) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  return await Promise.all(Array.from({ length: processes }, async (_, i) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        WORKER,
        ...["--num-processes", String(processes), "--process-id", String(i)],
        ...["--coordinator", `127.0.0.1:${port}`, "--shards", shards.paths.join(",")],
        ...["--out", out, "--phase", phase, "--steps", String(steps)],
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      throw new Error(`process ${i} (${phase}) failed: ${new TextDecoder().decode(r.stderr)}`);
    }
    return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!);
  }));
}

for (const P of [2, 3]) {
  Deno.test(`distributed resume: ${P} processes each continue from their own data position`, async () => {
    const out = await Deno.makeTempDir({ prefix: "deit3-dist-resume-" });
    try {
      const uninterrupted = await job(P, "run", out);
      const resumed = await job(P, "resume", out);
      for (let p = 0; p < P; p++) {
        assertEquals(resumed[p].step, 5, `process ${p}`);
        assertEquals(resumed[p].next, uninterrupted[p].next, `process ${p}'s next batch`);
      }
      // The hosts read disjoint data: a shared (process 0's) position would not do.
      assertEquals(new Set(uninterrupted.flatMap((r) => r.next)).size, 3 * P);
      const other = P === 2 ? 3 : 2;
      for (const r of await job(other, "resume", out)) {
        assert(
          r.error?.includes(`saved by a job of ${P} process(es) (data/process_count ${P}`) &&
            r.error.includes("data/positions keys 0, 1") && r.error.includes("num-processes"),
          r.error,
        );
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  });
}
