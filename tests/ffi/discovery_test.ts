import { assert, assertEquals, assertThrows } from "../assert.ts";
import { findPjrtPlugin, PjrtPluginNotFoundError } from "../../ffi/discovery.ts";
import { PjrtClient } from "../../ffi/client.ts";

const noEnv = () => undefined;

Deno.test("discovery: --pjrt-plugin pointing at a missing file is an error naming it", () => {
  assertThrows(
    () => findPjrtPlugin({ pluginPath: "/nonexistent/libtpu.so", env: noEnv }),
    "PJRT plugin /nonexistent/libtpu.so (from --pjrt-plugin) cannot be used: no such file",
  );
});

Deno.test("discovery: PJRT_PLUGIN_PATH pointing at a missing file is an error naming it", () => {
  const env = (name: string) =>
    name === "PJRT_PLUGIN_PATH" ? "/missing/xla_cuda_plugin.so" : undefined;
  assertThrows(
    () => findPjrtPlugin({ env, pythonPrefixes: [], standardPaths: [] }),
    "PJRT plugin /missing/xla_cuda_plugin.so (from PJRT_PLUGIN_PATH) cannot be used: no such file",
  );
});

Deno.test("discovery: a directory is refused with a hint", () => {
  const dir = Deno.makeTempDirSync();
  try {
    assertThrows(() => findPjrtPlugin({ pluginPath: dir, env: noEnv }), "is not a file");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("discovery: nothing found lists every place searched", () => {
  const root = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${root}/venv/lib/python3.11/site-packages`, { recursive: true });
    let error: unknown;
    try {
      findPjrtPlugin({
        env: noEnv,
        pythonPrefixes: [`${root}/venv`, `${root}/nopython`],
        standardPaths: [`${root}/usr/lib/libtpu.so`],
      });
    } catch (e) {
      error = e;
    }
    assert(error instanceof PjrtPluginNotFoundError, "expected PjrtPluginNotFoundError");
    const site = `${root}/venv/lib/python3.11/site-packages`;
    assertEquals(error.searched, [
      `${site}/libtpu/libtpu.so`,
      `${site}/jax_plugins/*/xla_*_plugin.so (none)`,
      `${root}/nopython/lib/python3*/{site,dist}-packages (no such directory)`,
      `${root}/usr/lib/libtpu.so`,
    ]);
    for (const s of error.searched) assert(error.message.includes(s), `message lists ${s}`);
    assert(error.message.includes("--pjrt-plugin was not given"));
    assert(error.message.includes("PJRT_PLUGIN_PATH"));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("discovery: order is flag, PJRT_PLUGIN_PATH, TPU_LIBRARY_PATH, libtpu, jax plugins", () => {
  const root = Deno.makeTempDirSync();
  try {
    const site = `${root}/venv/lib/python3.12/site-packages`;
    const cuda = `${site}/jax_plugins/xla_cuda13/xla_cuda_plugin.so`;
    const libtpu = `${site}/libtpu/libtpu.so`;
    const explicit = `${root}/explicit.so`;
    Deno.mkdirSync(`${site}/jax_plugins/xla_cuda13`, { recursive: true });
    Deno.writeTextFileSync(cuda, "");
    Deno.writeTextFileSync(explicit, "");
    const base = { pythonPrefixes: [`${root}/venv`], standardPaths: [] };

    assertEquals(findPjrtPlugin({ ...base, env: noEnv }), { path: cuda, source: "search" });
    Deno.mkdirSync(`${site}/libtpu`);
    Deno.writeTextFileSync(libtpu, "");
    assertEquals(findPjrtPlugin({ ...base, env: noEnv }), { path: libtpu, source: "search" });
    const tpuEnv = (n: string) => n === "TPU_LIBRARY_PATH" ? explicit : undefined;
    assertEquals(findPjrtPlugin({ ...base, env: tpuEnv }).source, "TPU_LIBRARY_PATH");
    const env = (n: string) => n === "PJRT_PLUGIN_PATH" ? cuda : tpuEnv(n);
    assertEquals(findPjrtPlugin({ ...base, env }), { path: cuda, source: "PJRT_PLUGIN_PATH" });
    assertEquals(findPjrtPlugin({ ...base, env, pluginPath: explicit }), {
      path: explicit,
      source: "--pjrt-plugin",
    });
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("PjrtClient.open: the discovery error reaches the caller unchanged", async () => {
  let error: unknown;
  try {
    await PjrtClient.open({
      log: () => {},
      discovery: { env: noEnv, pythonPrefixes: [], standardPaths: ["/nowhere/libtpu.so"] },
    });
  } catch (e) {
    error = e;
  }
  assert(error instanceof PjrtPluginNotFoundError);
  assertEquals(error.searched, ["/nowhere/libtpu.so"]);
});

Deno.test("discovery: `pip install --user libtpu` (~/.local, as on a TPU VM) is found by default", () => {
  const home = Deno.makeTempDirSync();
  try {
    const dir = `${home}/.local/lib/python3.10/site-packages/libtpu`;
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(`${dir}/libtpu.so`, "");
    const env = (name: string) => (name === "HOME" ? home : undefined);
    assertEquals(findPjrtPlugin({ env }), { path: `${dir}/libtpu.so`, source: "search" });
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});
