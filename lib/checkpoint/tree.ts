/**
 * Parameter trees: nested plain objects whose leaves are HostTensors (or, for state read from
 * Flax msgpack files, plain msgpack values such as numbers and strings). Names follow the Flax
 * tree exactly: `{model: {layer_0: {attn: {wq: {kernel}}}}}`.
 */
import { type HostTensor, isHostTensor } from "../ir/host_tensor.ts";

/** Non-tensor leaves that msgpack can hold (Python ints, floats, str, bytes, None, lists). */
export type PlainValue = string | number | bigint | boolean | null | Uint8Array | PlainValue[];
export type Leaf = HostTensor | PlainValue;
export interface Tree {
  [key: string]: TreeNode;
}
export type TreeNode = Tree | Leaf;

/** True for a subtree (a plain object that is not a HostTensor). */
export function isTree(x: unknown): x is Tree {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !ArrayBuffer.isView(x) &&
    !isHostTensor(x);
}

export interface PathOptions {
  /** Separator between path components; "/" (the default) or "." (timm style). */
  sep?: string;
}

/**
 * Flattens a tree into `path -> leaf`, depth first in key order. Empty subtrees vanish (as in
 * `jax.tree_util`), so `unflattenTree(flattenTree(t))` equals `t` only when `t` has none.
 */
export function flattenTree(tree: Tree, { sep = "/" }: PathOptions = {}): Map<string, Leaf> {
  const out = new Map<string, Leaf>();
  const walk = (node: Tree, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      const path = prefix ? `${prefix}${sep}${k}` : k;
      if (isTree(v)) walk(v, path);
      else out.set(path, v);
    }
  };
  walk(tree, "");
  return out;
}

/** Only the tensor leaves of `tree`, as `path -> HostTensor`. */
export function tensorLeaves(tree: Tree, options: PathOptions = {}): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [k, v] of flattenTree(tree, options)) if (isHostTensor(v)) out.set(k, v);
  return out;
}

/** Builds a tree from `path -> leaf` entries; a path that is both a leaf and a subtree is an error. */
export function unflattenTree(
  entries: Iterable<[string, Leaf]> | Record<string, Leaf>,
  { sep = "/" }: PathOptions = {},
): Tree {
  const root: Tree = {};
  const list = Symbol.iterator in entries
    ? entries as Iterable<[string, Leaf]>
    : Object.entries(entries);
  for (const [path, leaf] of list) {
    const parts = path.split(sep);
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const next = node[parts[i]];
      if (next === undefined) node = node[parts[i]] = {};
      else if (isTree(next)) node = next;
      else {throw new Error(
          `unflattenTree: "${parts.slice(0, i + 1).join(sep)}" is a leaf and a subtree`,
        );}
    }
    const last = parts[parts.length - 1];
    if (last in node) throw new Error(`unflattenTree: duplicate path "${path}"`);
    node[last] = leaf;
  }
  return root;
}

/** A new tree with `fn` applied to every leaf (structure and key order kept). */
export function mapTree(
  tree: Tree,
  fn: (leaf: Leaf, path: string) => Leaf,
  { sep = "/" }: PathOptions = {},
): Tree {
  const walk = (node: Tree, prefix: string): Tree => {
    const out: Tree = {};
    for (const [k, v] of Object.entries(node)) {
      const path = prefix ? `${prefix}${sep}${k}` : k;
      out[k] = isTree(v) ? walk(v, path) : fn(v, path);
    }
    return out;
  };
  return walk(tree, "");
}

/** The node at `path` ("a/b/c"), or undefined. */
export function getPath(
  tree: Tree,
  path: string,
  { sep = "/" }: PathOptions = {},
): TreeNode | undefined {
  let node: TreeNode = tree;
  for (const part of path.split(sep)) {
    if (!isTree(node) || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

/** Orders strings by Unicode code point, as Python's `sorted()` (and so JAX and Flax) does. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xd800-0xdfff) encode code points above 0xffff: they sort after every other char.
    const sx = x >= 0xd800 && x <= 0xdfff, sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
