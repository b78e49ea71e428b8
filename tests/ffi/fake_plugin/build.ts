/**
 * Builds tests/ffi/fake_plugin/fake_pjrt_plugin.c with `cc` (variants by -D flags) and opens its
 * test-only query functions. Shared by the ffi, backend and multi-process tests.
 */
const SOURCE = new URL("./fake_pjrt_plugin.c", import.meta.url).pathname;

/** Compiles each variant into a temp dir; null when `cc` is missing or fails. */
export async function buildFakePlugins<K extends string>(
  variants: Record<K, string[]>,
): Promise<Record<K, string> | null> {
  const dir = await Deno.makeTempDir({ prefix: "fake_pjrt_" });
  const out = {} as Record<K, string>;
  try {
    await Promise.all(
      Object.entries<string[]>(variants).map(async ([name, flags]) => {
        const path = `${dir}/fake_pjrt_${name}.so`;
        const result = await new Deno.Command("cc", {
          args: [
            "-shared",
            "-fPIC",
            "-O1",
            "-std=c11",
            "-D_DEFAULT_SOURCE",
            "-pthread",
            ...flags,
            "-o",
            path,
            SOURCE,
          ],
          stderr: "piped",
        }).output();
        if (!result.success) {
          throw new Error(`cc failed for ${name}: ${new TextDecoder().decode(result.stderr)}`);
        }
        out[name as K] = path;
      }),
    );
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      console.warn("fake plugin tests skipped: no C compiler (cc) on PATH");
      return null;
    }
    throw e;
  }
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return out;
}

/** The fake's test-only query functions. */
export function openQueries(path: string) {
  const lib = Deno.dlopen(
    path,
    {
      fake_live_objects: { parameters: [], result: "i32" },
      fake_last_options: { parameters: ["buffer", "usize"], result: "void" },
      fake_last_non_donatable: { parameters: ["buffer", "usize"], result: "void" },
      fake_last_donated: { parameters: ["buffer", "usize"], result: "void" },
      fake_last_rendezvous: { parameters: ["buffer", "usize"], result: "void" },
    } as const,
  );
  const read = (fn: (b: Uint8Array<ArrayBuffer>, n: bigint) => void) => {
    const buf = new Uint8Array(1024);
    fn(buf, 1024n);
    return new TextDecoder().decode(buf.subarray(0, buf.indexOf(0)));
  };
  return {
    live: () => lib.symbols.fake_live_objects(),
    lastOptions: () => read((b, n) => lib.symbols.fake_last_options(b, n)),
    lastNonDonatable: () => read((b, n) => lib.symbols.fake_last_non_donatable(b, n)),
    lastDonated: () => read((b, n) => lib.symbols.fake_last_donated(b, n)),
    lastRendezvous: () => read((b, n) => lib.symbols.fake_last_rendezvous(b, n)),
    close: () => lib.close(),
  };
}
