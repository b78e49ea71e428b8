/**
 * For wandb_test.ts: a W&B run (on its Worker, as training starts it) whose main thread then
 * blocks for MS milliseconds, as a compile or a long step does. Prints "blocked START END" (ms).
 * Usage: wandb_busy_child.ts URL KEY MS
 */
import { WandbRun } from "../../lib/report/wandb.ts";

const [url, key, ms] = Deno.args;
const run = await WandbRun.start({ mode: "online", baseUrl: url, apiKey: key }, {
  project: "p",
  name: "busy",
  config: {},
  log: (l) => console.log(l),
  timing: { tickMs: 50, flushMs: 100, heartbeatMs: 500, statsMs: 0 },
});
run.log({ x: 1 }, 1);
await new Promise((r) => setTimeout(r, 400));
const start = Date.now();
while (Date.now() - start < Number(ms)) {
  // busy: no timer of this thread runs
}
console.log(`blocked ${start} ${Date.now()}`);
run.log({ x: 2 }, 2);
const r = await run.finish(0, 5000);
Deno.exit(r.ok ? 0 : 1);
