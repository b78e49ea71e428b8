import { assertEquals } from "../assert.ts";
import { RunLog } from "../../lib/report/logging.ts";

Deno.test("run log: off a terminal, progress lines are throttled to one a minute", () => {
  const printed: string[] = [];
  const orig = console.log;
  console.log = (s: string) => printed.push(s);
  try {
    const log = new RunLog(null, "t", false);
    log.progress("step 1", 0);
    for (let i = 2; i <= 100; i++) log.progress(`step ${i}`);
    assertEquals(printed, ["step 1"], "the first step (asked for), then nothing within a minute");
    log.line("step 20: loss 1.0");
    assertEquals(printed.slice(1), ["step 20: loss 1.0"]);
    log.progress("eval 1 images", 0);
    log.progress("eval 2 images", 60_000);
    assertEquals(printed.slice(2), ["eval 1 images"], "at most one per interval");
  } finally {
    console.log = orig;
  }
});

Deno.test("run log: off a terminal, a progress line at least every minute", () => {
  const printed: string[] = [];
  const orig = console.log;
  console.log = (s: string) => printed.push(s);
  try {
    let t = 0;
    const log = new RunLog(null, "t", false, undefined, () => t);
    for (let step = 1; step <= 300; step++, t += 1000) {
      log.progress(`step ${step}`, step === 1 ? 0 : undefined);
    }
    // 300 steps of 1 s: the first, then one at 60 s, 120 s, 180 s, 240 s.
    assertEquals(printed, ["step 1", "step 61", "step 121", "step 181", "step 241"]);
  } finally {
    console.log = orig;
  }
});
