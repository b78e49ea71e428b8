/**
 * Import boundaries (issue 14): ffi/ is a standalone PJRT binding that imports nothing from
 * lib/, and backends (lib/backend/**) import no train, model or config code. A static scan of
 * every import/export specifier, resolved against the importing file.
 */
import { assertEquals } from "./assert.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("layering: ffi/ imports nothing from lib/", async () => {
  assertEquals(await offending("ffi", ["lib"]), []);
});

Deno.test("layering: lib/backend imports nothing from lib/train, lib/model, lib/config", async () => {
  assertEquals(await offending("lib/backend", ["lib/train", "lib/model", "lib/config"]), []);
});

Deno.test("layering: the scan sees a forbidden import (negative control)", () => {
  const src = 'import { x } from "../lib/ir/dtype.ts";\nexport * from "./ok.ts";\n' +
    'const m = await import("../lib/train/loop.ts");\nimport type { T } from "../../lib/ir/x.ts";';
  assertEquals(specifiers(src), [
    "../lib/ir/dtype.ts",
    "./ok.ts",
    "../lib/train/loop.ts",
    "../../lib/ir/x.ts",
  ]);
  assertEquals(
    forbidden("ffi/smoke.ts", specifiers(src), ["lib"]),
    ["ffi/smoke.ts -> lib/ir/dtype.ts", "ffi/smoke.ts -> lib/train/loop.ts"],
  );
});

/** "file -> target" for every import under `dir` that lands in one of `banned` (repo paths). */
async function offending(dir: string, banned: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const file of await tsFiles(dir)) {
    const src = await Deno.readTextFile(new URL(file, ROOT));
    out.push(...forbidden(file, specifiers(src), banned));
  }
  return out;
}

function forbidden(file: string, specs: string[], banned: string[]): string[] {
  const out: string[] = [];
  for (const spec of specs) {
    if (!spec.startsWith(".")) continue; // npm:, node:, jsr: and URLs are outside the repo
    const target = new URL(spec, new URL(file, ROOT)).pathname.slice(ROOT.pathname.length);
    if (banned.some((b) => target === b || target.startsWith(`${b}/`))) {
      out.push(`${file} -> ${target}`);
    }
  }
  return out;
}

/** Specifiers of static imports/exports (`from "..."`, `import "..."`) and `import("...")`. */
function specifiers(src: string): string[] {
  const re = /(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g;
  return [...src.matchAll(re)].map((m) => m[1]);
}

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(`${dir}/`, ROOT))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await tsFiles(path));
    else if (/\.(ts|js|mjs)$/.test(e.name)) out.push(path);
  }
  return out.sort();
}
