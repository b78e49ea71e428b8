/**
 * mod.ts is importable from a script outside the repo (no deno.json, no import map): the
 * library's npm packages are full `npm:` specifiers, at the versions of deno.json's "imports".
 */
import { assert, assertEquals } from "./assert.ts";

const ROOT = new URL("../", import.meta.url);

/** Every `npm:` specifier in the library's code (lib/, ffi/, mod.ts). */
async function libraryNpmSpecifiers(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
      if (e.isDirectory) await walk(url);
      else if (e.name.endsWith(".ts")) {
        const src = await Deno.readTextFile(url);
        for (const m of src.matchAll(/["']npm:((?:@[^/"']+\/)?[^@"']+)@([^"'/]+)["']/g)) {
          found.set(m[1], m[2]);
        }
        // A bare package name would need deno.json's import map.
        for (const m of src.matchAll(/(?:from|import\()\s*["']([^."'/][^"':]*)["']/g)) {
          if (!m[1].startsWith("node:") && !m[1].includes("${")) {
            found.set(`bare:${m[1]}`, url.pathname);
          }
        }
      }
    }
  };
  await walk(new URL("lib/", ROOT));
  await walk(new URL("ffi/", ROOT));
  return found;
}

Deno.test("mod.ts: the library's npm specifiers are full, at deno.json's versions", async () => {
  const imports: Record<string, string> =
    JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).imports;
  const found = await libraryNpmSpecifiers();
  const bare = [...found].filter(([k]) => k.startsWith("bare:"));
  assertEquals(bare, [], "bare specifiers only resolve with this repo's deno.json");
  assert(found.size > 0);
  for (const [pkg, version] of found) {
    assertEquals(`npm:${pkg}@${version}`, imports[pkg], `${pkg}: deno.json says ${imports[pkg]}`);
  }
});

Deno.test("mod.ts: a script outside the repo imports it and uses config, data and sharp", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-outside-" });
  try {
    // A 1x1 red PNG: decoded by sharp, an npm package.
    const png =
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
    await Deno.writeTextFile(
      `${dir}/script.ts`,
      `import * as deit3 from "${new URL("mod.ts", ROOT).href}";
const config = deit3.config.loadConfig(undefined, ["--dim", "32"]);
const png = Uint8Array.from(atob("${png}"), (c) => c.charCodeAt(0));
const img = await deit3.data.decodeImage(png);
console.log(JSON.stringify({ dim: config.dim, pixel: [...img.data.slice(0, 3)], size: img.width }));
`,
    );
    // --cached-only: the packages came with this repo's install; nothing is fetched here.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--cached-only", "script.ts"],
      cwd: dir,
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, text);
    assertEquals(JSON.parse(text.trim().split("\n").at(-1)!), {
      dim: 32,
      pixel: [255, 0, 0],
      size: 1,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
