import { assertEquals } from "../assert.ts";
import { RunLog } from "../../lib/train/logging.ts";

Deno.test("run log: off a terminal, per-step progress is not printed; throttled progress is", () => {
  const printed: string[] = [];
  const orig = console.log;
  console.log = (s: string) => printed.push(s);
  try {
    const log = new RunLog(null, "t", false);
    for (let i = 0; i < 100; i++) log.progress(`step ${i}`);
    assertEquals(printed, [], "no line per step in a pipe");
    log.line("step 20: loss 1.0");
    assertEquals(printed, ["step 20: loss 1.0"]);
    log.progress("eval 1 images", 0);
    log.progress("eval 2 images", 60_000);
    assertEquals(printed.slice(1), ["eval 1 images"], "at most one per interval");
  } finally {
    console.log = orig;
  }
});
