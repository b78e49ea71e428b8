/** Backend auto-selection prints nothing alarming: no `error:` lines, no cut-off list. */
import { assert, assertEquals } from "../assert.ts";
import { PjrtPluginNotFoundError } from "../../ffi/discovery.ts";
import { pjrtSkipReason } from "../../lib/backend/select.ts";

const SELECT = new URL("../../lib/backend/select.ts", import.meta.url).href;

Deno.test("backend auto: the no-PJRT line lists every place searched, on one line", () => {
  const e = new PjrtPluginNotFoundError(
    "No PJRT plugin found ... none of these exist:\n  /a\n  /b",
    [
      "/a",
      "/b/*.so",
    ],
  );
  const line = pjrtSkipReason(e);
  assertEquals(
    line,
    "no PJRT plugin found (searched 2 places: /a, /b/*.so; --pjrt-plugin PATH or " +
      "PJRT_PLUGIN_PATH names one)",
  );
  assertEquals(pjrtSkipReason(new Error("dlopen failed\nmore")), "no PJRT plugin (dlopen failed)");
});

Deno.test("backend auto without XDG_RUNTIME_DIR: no `error:` line from the WebGPU probe", async () => {
  // A child process: the probe opens a WebGPU adapter (when one exists), which is kept out of
  // this parallel test process (README, Known problems).
  const env = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete (env as Record<string, string>).XDG_RUNTIME_DIR;
  delete (env as Record<string, string>).PJRT_PLUGIN_PATH;
  const code = `
    import { createBackend } from "${SELECT}";
    const lines = [];
    const b = await createBackend("auto", { log: (l) => lines.push(l) });
    console.log(JSON.stringify({ name: b.name, lines, xdg: Deno.env.get("XDG_RUNTIME_DIR") }));
    b.dispose();
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env,
    clearEnv: true,
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const stdout = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, stderr);
  assert(!/^error/im.test(stderr + stdout), `an error line:\n${stderr}${stdout}`);
  const { lines, xdg } = JSON.parse(stdout.trim().split("\n").at(-1)!);
  for (const l of lines) assert(!l.endsWith(":)"), `a cut-off line: ${l}`);
  if (Deno.build.os === "linux" && xdg) {
    // The private folder is removed at exit.
    assert(!(await Deno.stat(xdg).then(() => true, () => false)), `${xdg} was left behind`);
  }
});
