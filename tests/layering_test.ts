/**
 * Import boundaries: the folders stand in layers, and a file imports only from its own folder
 * or from a lower layer (ffi/ is a standalone PJRT binding that imports nothing from lib/;
 * backends import no train, model or config code); and no two files import each other, directly
 * or round a loop, unless they are one job split in two (ALLOWED_CIRCLES). A static scan of every
 * import/export specifier, resolved against the importing file.
 */
import { assertEquals } from "./assert.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("layering: ffi/ imports nothing from lib/", async () => {
  assertEquals(await offending("ffi", ["lib"]), []);
});

Deno.test("layering: lib/backend imports nothing from lib/train, lib/model, lib/config", async () => {
  assertEquals(await offending("lib/backend", ["lib/train", "lib/model", "lib/config"]), []);
});

/** Bottom first. The folder of a file is the longest entry that contains it. */
const LAYERS = [
  ["lib/ir", "lib/config", "lib/gcs", "ffi"],
  ["lib/autodiff", "lib/optim", "lib/augment", "lib/checkpoint", "lib/backend"],
  ["lib/model", "lib/data"],
  ["lib/report"],
  ["lib/train"],
  ["bench", "mod.ts"],
  ["tasks", "scripts"],
];

/**
 * Circles of files that are one job: a Tensor's methods are the ops (tensor.ts calls ops.ts,
 * which builds Tensors).
 */
const ALLOWED_CIRCLES = [["lib/ir/ops.ts", "lib/ir/tensor.ts"]];

Deno.test("layering: each folder imports only itself and lower layers", async () => {
  const folders = LAYERS.flat().sort((a, b) => b.length - a.length);
  const folderOf = (f: string) => folders.find((d) => f === d || f.startsWith(`${d}/`));
  const layerOf = (d: string) => LAYERS.findIndex((l) => l.includes(d));
  const out: string[] = [];
  for (const [file, targets] of await importGraph(["lib", "ffi", "bench", "tasks", "scripts"])) {
    const from = folderOf(file)!;
    for (const t of targets) {
      const to = folderOf(t);
      if (to === from) continue;
      if (to === undefined || layerOf(to) >= layerOf(from)) out.push(`${file} -> ${t}`);
    }
  }
  assertEquals(out, []);
});

Deno.test("layering: no import circles but the allowed ones", async () => {
  const graph = await importGraph(["lib", "ffi", "bench", "tasks", "scripts"]);
  const allowed = new Set(ALLOWED_CIRCLES.map((c) => [...c].sort().join(" <-> ")));
  const circles = stronglyConnected(graph).map((c) => c.sort().join(" <-> "));
  assertEquals(circles.filter((c) => !allowed.has(c)), []);
});

Deno.test("layering: the circle finder finds a loop of three and ignores a chain", () => {
  const g = new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", ["a"]]]);
  assertEquals(stronglyConnected(g).map((c) => c.sort()), [["a", "b", "c"]]);
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

/** Every source file under `dirs` (and mod.ts) with the repo files it imports. */
async function importGraph(dirs: string[]): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const files = ["mod.ts", ...(await Promise.all(dirs.map(tsFiles))).flat()];
  for (const file of files) {
    const src = await Deno.readTextFile(new URL(file, ROOT));
    const targets = specifiers(src).filter((s) => s.startsWith("."))
      .map((s) => new URL(s, new URL(file, ROOT)).pathname.slice(ROOT.pathname.length))
      .filter((t) => /\.(ts|js|mjs)$/.test(t));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Tarjan's strongly connected components of more than one node. */
function stronglyConnected(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), out: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) out.push(c);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

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
