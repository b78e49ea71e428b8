/**
 * A `pipe:` shard that stalls, then SIGTERM or SIGINT to `deno task train`: the run exits and no
 * process of the pipe (its `sh` and the children `sh` started) is left, whether the shard was
 * read in a loader worker or in the main thread.
 */
import { assert, assertEquals } from "../assert.ts";
import { makeDataset, tinyConfig, withDir } from "./e2e_helpers.ts";

const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;

/** Pids of the live (not zombie) processes whose process group is `pgid`. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z") out.push(Number(e.name));
  }
  return out;
}

function groupOf(pid: string): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

async function waitFor<T>(f: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  for (const workers of [1, 0]) {
    Deno.test(`train task: ${signal} with a stalled pipe: shard (${workers} loader workers) leaves no process of the pipe`, async () => {
      await withDir("deit3-pipe-int-", async (dir) => {
        const data = await makeDataset(dir);
        const cfg = tinyConfig(`${dir}/run`, data, 50);
        // A script (the config would expand `$$`) records its pid, starts a child that writes
        // nothing, and waits for it; its process group is the pipe's.
        await Deno.writeTextFile(`${dir}/stall.sh`, `echo $$ >> ${dir}/pids\nsleep 300\n`);
        cfg["train-dataset-shards"] = `pipe:sh ${dir}/stall.sh; cat ${dir}/train-0.tar`;
        cfg["train-loader-workers"] = workers;
        cfg["data-stall-timeout"] = 600;
        await Deno.mkdir(`${dir}/run`);
        await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(cfg));
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", TASK, `${dir}/c.json`],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const out = new Response(child.stdout).text();
        const err = new Response(child.stderr).text();
        const pgids = await waitFor(
          () => {
            try {
              const ids = Deno.readTextFileSync(`${dir}/pids`).trim().split("\n").map(groupOf);
              return ids.every((id) => groupMembers(id).length >= 3) ? ids : undefined;
            } catch {
              return undefined;
            }
          },
          60_000,
          "the pipe's sh and sleep",
        );
        child.kill(signal);
        const status = await child.status;
        const text = (await out) + (await err);
        assertEquals(status.code, 75, text);
        // Killing a group is immediate, but give the kernel a moment to reap.
        let left: number[] = [];
        for (let i = 0; i < 20; i++) {
          left = pgids.flatMap(groupMembers);
          if (left.length === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        for (const pid of left) Deno.kill(pid, "SIGKILL");
        assert(left.length === 0, `left running: ${left.join(", ")}\n${text}`);
      });
    });
  }
}
