import { assert, assertThrows } from "../assert.ts";
import { PjrtPlugin } from "../../ffi/plugin.ts";
import { PjrtPluginError } from "../../ffi/errors.ts";

const LIBC = [
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
  "/lib64/libc.so.6",
  "/usr/lib64/libc.so.6",
  "/usr/lib/libc.so.6",
].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

Deno.test({
  name: "plugin: a shared library without GetPjrtApi (libc) is not a PJRT plugin",
  ignore: LIBC === undefined,
  fn() {
    let error: unknown;
    try {
      PjrtPlugin.load(LIBC!);
    } catch (e) {
      error = e;
    }
    assert(error instanceof PjrtPluginError, `expected PjrtPluginError, got ${error}`);
    assert(
      error.message.startsWith(`${LIBC} is not a PJRT plugin: it does not export GetPjrtApi`),
      error.message,
    );
  },
});

Deno.test("plugin: a missing file and a non-library file are named in the error", () => {
  assertThrows(
    () => PjrtPlugin.load("/nonexistent/plugin.so"),
    "PJRT plugin /nonexistent/plugin.so cannot be read",
  );
  const file = Deno.makeTempFileSync({ suffix: ".so" });
  try {
    Deno.writeTextFileSync(file, "not an ELF file");
    assertThrows(() => PjrtPlugin.load(file), `PJRT plugin ${file} could not be loaded`);
  } finally {
    Deno.removeSync(file);
  }
});
