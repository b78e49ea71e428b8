/**
 * The fake-plugin tests again under V8's `--stress-compaction` (every GC compacts, moving what
 * can move). The fake writes each device-to-host copy from a thread of its own after
 * `PJRT_Buffer_ToHostBuffer` returns, as a real plugin's DMA does, so a JS buffer that moved (or
 * was collected) before the copy's event fired would show as wrong values or a crash here.
 */
import { assertEquals } from "../assert.ts";

const FILES = [
  "./fake_plugin_test.ts",
  "./fake_plugin_preflight_test.ts",
  "../backend/pjrt/backend_test.ts",
].map((f) => new URL(f, import.meta.url).pathname);

Deno.test("stress compaction: the fake-plugin tests pass with every GC compacting", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    // Type checking is the outer run's job.
    args: ["test", "-A", "--no-check", "--v8-flags=--stress-compaction", ...FILES],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, text.slice(-4000));
});
