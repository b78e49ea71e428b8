/**
 * Pytrees: nested plain objects and arrays whose leaves are arrays (anything with `shape` and
 * `dtype`: Tensor, HostTensor, device arrays, shape specs). Object keys are visited in sorted
 * order, as JAX does, so flattening is deterministic. Other values (numbers, strings, null) are
 * kept in the tree definition as static data.
 */
export type TreeDef =
  | { kind: "leaf" }
  | { kind: "static"; value: unknown }
  | { kind: "array"; children: TreeDef[] }
  | { kind: "object"; keys: string[]; children: TreeDef[] };

export function isLeaf(x: unknown): boolean {
  return typeof x === "object" && x !== null && !Array.isArray(x) && "shape" in x && "dtype" in x;
}

export function flatten<L = unknown>(tree: unknown): { leaves: L[]; def: TreeDef } {
  const leaves: L[] = [];
  const def = walk(tree, leaves as unknown[]);
  return { leaves, def };
}

export function unflatten<L>(def: TreeDef, leaves: readonly L[]): unknown {
  let i = 0;
  const build = (d: TreeDef): unknown => {
    switch (d.kind) {
      case "leaf":
        if (i >= leaves.length) throw new Error("unflatten: too few leaves");
        return leaves[i++];
      case "static":
        return d.value;
      case "array":
        return d.children.map(build);
      case "object": {
        const out: Record<string, unknown> = {};
        d.keys.forEach((k, j) => (out[k] = build(d.children[j])));
        return out;
      }
    }
  };
  const out = build(def);
  if (i !== leaves.length) throw new Error(`unflatten: ${leaves.length} leaves for a tree of ${i}`);
  return out;
}

/** Applies `fn` to every leaf, keeping the structure. */
export function treeMap<T>(tree: T, fn: (leaf: any, path: string) => unknown): any {
  const go = (x: unknown, path: string): unknown => {
    if (isLeaf(x)) return fn(x, path);
    if (Array.isArray(x)) return x.map((v, i) => go(v, path ? `${path}.${i}` : `${i}`));
    if (isPlainObject(x)) {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(x).sort()) out[k] = go(x[k], path ? `${path}.${k}` : k);
      return out;
    }
    return x;
  };
  return go(tree, "");
}

/** Leaves with their dotted paths (`model.layer_0.attn.wq.kernel`), in flatten order. */
export function leavesWithPaths<L = unknown>(tree: unknown): [string, L][] {
  const out: [string, L][] = [];
  treeMap(tree, (leaf, path) => out.push([path, leaf as L]));
  return out;
}

/** Same structure check with a message naming the first difference. */
export function defsEqual(a: TreeDef, b: TreeDef): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function walk(x: unknown, leaves: unknown[]): TreeDef {
  if (isLeaf(x)) {
    leaves.push(x);
    return { kind: "leaf" };
  }
  if (Array.isArray(x)) return { kind: "array", children: x.map((v) => walk(v, leaves)) };
  if (isPlainObject(x)) {
    const keys = Object.keys(x).sort();
    return { kind: "object", keys, children: keys.map((k) => walk(x[k], leaves)) };
  }
  return { kind: "static", value: x };
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && Object.getPrototypeOf(x) === Object.prototype;
}
