/**
 * CUDA libraries outside Python: a plugin in `site-packages/jax_plugins/xla_cuda13/` that needs
 * NVIDIA's wheel libraries (`site-packages/nvidia/<package>/lib/*.so.N`, on no search path)
 * loads from Deno because they are preloaded first, dependencies before their users, as jax
 * does. Stand-ins: tiny libraries built with `cc` (libcublas.so.13 needs libcublasLt.so.13, no
 * rpath) and the fake plugin linked against libcublas.so.13.
 */
import { assert, assertEquals } from "../assert.ts";
import { nvidiaLibraries } from "../../ffi/discovery.ts";
import { PjrtClient } from "../../ffi/client.ts";

const FAKE = new URL("./fake_plugin/fake_pjrt_plugin.c", import.meta.url).pathname;

async function cc(args: string[], dir: string): Promise<boolean> {
  try {
    const r = await new Deno.Command("cc", { args, cwd: dir, stderr: "piped" }).output();
    if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** site-packages with the stand-ins; null without a C compiler. */
async function makeSite(): Promise<string | null> {
  const site = await Deno.makeTempDir({ prefix: "deit3-nvidia-" });
  const blas = `${site}/nvidia/cublas/lib`, rt = `${site}/nvidia/cu13/lib`;
  const plugin = `${site}/jax_plugins/xla_cuda13`;
  for (const d of [blas, rt, plugin]) await Deno.mkdir(d, { recursive: true });
  await Deno.writeTextFile(`${site}/lt.c`, "int lt_version(void) { return 13; }\n");
  await Deno.writeTextFile(
    `${site}/blas.c`,
    "int lt_version(void);\nint blas_version(void) { return lt_version(); }\n",
  );
  await Deno.writeTextFile(`${site}/rt.c`, "int rt_version(void) { return 13; }\n");
  const so = (name: string, src: string, dir: string, extra: string[] = []) =>
    cc(["-shared", "-fPIC", `-Wl,-soname,${name}`, "-o", `${dir}/${name}`, src, ...extra], site);
  if (!await so("libcublasLt.so.13", "lt.c", blas)) return null;
  await so("libcublas.so.13", "blas.c", blas, [`-L${blas}`, "-l:libcublasLt.so.13"]);
  await so("libcudart.so.13", "rt.c", rt);
  await Deno.writeTextFile(`${blas}/libcublas.so`, "not the soname: never loaded");
  await cc([
    ...["-shared", "-fPIC", "-std=c11", "-D_DEFAULT_SOURCE", "-pthread"],
    ...["-o", `${plugin}/xla_cuda_plugin.so`, FAKE, `-L${blas}`, "-Wl,--no-as-needed"],
    "-l:libcublas.so.13",
  ], site);
  return site;
}

const site = await makeSite();
if (site) globalThis.addEventListener("unload", () => Deno.removeSync(site, { recursive: true }));

Deno.test({
  name: "nvidia preload: the wheels' libraries load first, in dependency order; the plugin loads",
  ignore: site === null,
  fn: async () => {
    const plugin = `${site}/jax_plugins/xla_cuda13/xla_cuda_plugin.so`;
    assertEquals(nvidiaLibraries(plugin), [
      `${site}/nvidia/cu13/lib/libcudart.so.13`,
      `${site}/nvidia/cublas/lib/libcublasLt.so.13`,
      `${site}/nvidia/cublas/lib/libcublas.so.13`,
    ]);
    assertEquals(nvidiaLibraries("/usr/lib/libtpu.so"), []);
    const lines: string[] = [];
    using client = await PjrtClient.open({ pluginPath: plugin, log: (l) => lines.push(l) });
    assertEquals(client.platformName, "fake");
    assert(
      lines.includes(`  preloaded 3 NVIDIA libraries from ${site}/nvidia/*/lib`),
      lines.join("\n"),
    );
    const maps = await Deno.readTextFile("/proc/self/maps");
    assert(maps.includes(`${site}/nvidia/cublas/lib/libcublas.so.13`), "libcublas is mapped");
  },
});
