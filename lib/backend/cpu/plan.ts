/**
 * Fusion planning for the CPU backend: decides which nodes of a graph get their own buffer
 * (roots) and which are computed inside a consumer's loop (inlined), in the manner of XLA's
 * loop fusion. Elementwise chains, broadcasts, transposes, slices, most reshapes, iota and
 * scalar constants fuse into the loop of an elementwise root or into the input of a reduction;
 * matmuls read transposed/reshaped operands in place through strided views.
 */
import type { Graph } from "../../ir/graph.ts";
import {
  isKind,
  type MovementPrimitive,
  Primitive,
  PRIMITIVE_KIND,
  type PrimitiveKind,
} from "../../ir/primitive.ts";
import { isPrim, paramsOf, type Tensor } from "../../ir/tensor.ts";
import { scheduleForMemory } from "./schedule.ts";
import {
  contiguousView,
  identityMap,
  reshapeMap,
  reshapeView,
  transposeView,
  type View,
} from "./index_map.ts";

export type Role =
  /** Input or constant: available before the first step. */
  | "source"
  /** Owns a buffer, computed by one step. */
  | "root"
  /** Computed inside the loops of the groups that use it. */
  | "inline"
  /** Shares its operand's buffer (reshape, stop_gradient). */
  | "alias";

export type RootKind = "elementwise" | "reduce" | "dot" | "attention" | "fallback";

export interface GraphPlan {
  nodes: Tensor[];
  position: Map<number, number>;
  role: Role[];
  /** For roots: how the step computes them. */
  kind: (RootKind | undefined)[];
  /** Roots whose buffer reaches a graph output: fresh memory each call (never the arena). */
  escapes: boolean[];
}

/** What consumers need from a node besides fusion: a buffer, and whether strides may vary. */
const enum Need {
  None = 0,
  /** A strided view is enough (matmul operands). */
  Strided = 1,
  /** A contiguous buffer of exactly this node's shape. */
  Contiguous = 2,
}

export function planGraph(graph: Graph): GraphPlan {
  const nodes = scheduleForMemory(graph.nodes);
  const n = nodes.length;
  const position = new Map<number, number>();
  nodes.forEach((t, i) => position.set(t.id, i));
  const pos = (t: Tensor) => position.get(t.id)!;

  const role = new Array<Role>(n);
  const kind = new Array<RootKind | undefined>(n);
  const need = new Array<Need>(n).fill(Need.None);
  // The fused groups (named by their root's position) whose loops use this node.
  const groups: (Set<number> | undefined)[] = new Array(n);
  const domainSize = new Map<number, number>();
  for (const o of graph.outputs) need[pos(o)] = Need.Contiguous;

  const useIn = (t: Tensor, gs: Iterable<number>) => {
    const p = pos(t);
    const s = groups[p] ??= new Set();
    for (const g of gs) s.add(g);
  };
  const needs = (t: Tensor, k: Need) => {
    const p = pos(t);
    if (k > need[p]) need[p] = k;
  };
  const makeRoot = (p: number, k: RootKind) => {
    const t = nodes[p];
    role[p] = "root";
    kind[p] = k;
    if (k === "elementwise") {
      domainSize.set(p, t.size);
      for (const x of t.inputs) useIn(x, [p]);
    } else if (k === "reduce") {
      domainSize.set(p, t.inputs[0].size);
      useIn(t.inputs[0], [p]);
    } else if (k === "dot") {
      for (const x of t.inputs) needs(x, Need.Strided);
    } else {
      for (const x of t.inputs) needs(x, Need.Contiguous);
    }
  };

  for (let p = n - 1; p >= 0; p--) {
    const t = nodes[p];
    const gs = groups[p];
    const k = need[p];
    const access = accessOf(t.prim);
    if (access === "source") {
      role[p] = "source";
    } else if (access === "dot") {
      makeRoot(p, t.dtype === "f32" ? "dot" : "fallback");
    } else if (access === "reduce") {
      makeRoot(p, fusibleDtype(t) ? "reduce" : "fallback");
    } else if (access === "copy") {
      makeRoot(p, "fallback");
    } else if (access === "attention") {
      // its own kernel over contiguous operands (attention.ts)
      makeRoot(p, "attention");
    } else if (access === "alias") {
      // Shares the operand's buffer; inside loops it is an index map.
      role[p] = "alias";
      const x = t.inputs[0];
      // A matmul reads a reshape in place only when its strides can be expressed.
      const strided = k !== Need.Strided || t.prim !== Primitive.Reshape || chainView(t) !== null;
      if (k !== Need.None) needs(x, strided ? k : Need.Contiguous);
      if (gs) {
        useIn(x, gs);
        if (t.prim === Primitive.Reshape && !linearReshape(t)) needs(x, Need.Contiguous);
      }
    } else if (access === "view") {
      if (k === Need.Contiguous || !fusibleDtype(t)) {
        makeRoot(p, fusibleDtype(t) ? "elementwise" : "fallback");
        continue;
      }
      role[p] = "inline";
      if (k === Need.Strided) needs(t.inputs[0], Need.Strided);
      if (gs) useIn(t.inputs[0], gs);
    } else if (access === "index") {
      // Pure index maps: duplicated into every loop that reads them.
      if (k !== Need.None || !fusibleDtype(t)) {
        makeRoot(p, fusibleDtype(t) ? "elementwise" : "fallback");
        continue;
      }
      role[p] = "inline";
      if (gs) { for (const x of t.inputs) useIn(x, gs); }
    } else {
      // elementwise
      if (!fusibleDtype(t)) {
        makeRoot(p, "fallback");
        continue;
      }
      const single = gs && gs.size === 1 ? [...gs][0] : -1;
      if (k === Need.None && single >= 0 && domainSize.get(single) === t.size) {
        role[p] = "inline";
        for (const x of t.inputs) useIn(x, [single]);
      } else {
        makeRoot(p, "elementwise");
      }
    }
  }

  // Buffers that reach outputs (through aliases) must not live in the reusable arena.
  const escapes = new Array<boolean>(n).fill(false);
  for (const o of graph.outputs) {
    let t = o;
    while (role[pos(t)] === "alias") t = t.inputs[0];
    escapes[pos(t)] = true;
  }
  return { nodes, position, role, kind, escapes };
}

/**
 * How the plan treats a node, by its primitive's kind:
 * - `source`: inputs and constants, available before the first step;
 * - `alias`: shares its operand's buffer (reshape, stop_gradient);
 * - `view`: a strided view (transpose): inlined, or read in place by matmuls;
 * - `index`: a pure index map duplicated into each loop that reads it (broadcast, slice, iota);
 * - `copy`: pad and concatenate, run by their reference kernel, and all_reduce_sum, a step that
 *   meets the other replicas (replicas.ts);
 * - `elementwise`, `reduce`, `dot`: loops and matmuls;
 * - `attention`: the fused attention kernels (attention.ts).
 */
export type Access =
  | "source"
  | "alias"
  | "view"
  | "index"
  | "copy"
  | "elementwise"
  | "reduce"
  | "dot"
  | "attention";

const MOVEMENT_ACCESS: { [P in MovementPrimitive]: Access } = {
  [Primitive.Reshape]: "alias",
  [Primitive.Transpose]: "view",
  [Primitive.BroadcastInDim]: "index",
  [Primitive.Slice]: "index",
  [Primitive.Pad]: "copy",
  [Primitive.Concatenate]: "copy",
};

const KIND_ACCESS: { [K in Exclude<PrimitiveKind, "movement">]: Access } = {
  source: "source",
  elementwise: "elementwise",
  reduce: "reduce",
  contract: "dot",
  collective: "copy",
  attention: "attention",
};

export function accessOf(prim: Primitive): Access {
  // iota has no operand buffer to read: its value is its index; stop_gradient is an identity
  if (prim === Primitive.Iota) return "index";
  if (prim === Primitive.StopGradient) return "alias";
  if (isKind(prim, "movement")) return MOVEMENT_ACCESS[prim];
  return KIND_ACCESS[PRIMITIVE_KIND[prim]];
}

/** Whether the fused code generator handles this node's dtypes (not bf16 arithmetic). */
export function fusibleDtype(t: Tensor): boolean {
  return t.dtype !== "bf16" && t.inputs.every((x) => x.dtype !== "bf16");
}

/** A reshape whose operand index is linear in its output index (see reshapeMap). */
export function linearReshape(t: Tensor): boolean {
  const rank = t.shape.length;
  const { shape } = paramsOf(t, Primitive.Reshape);
  return reshapeMap(identityMap(shape), shape, t.inputs[0].shape, rank) !== null;
}

/**
 * `t` as a strided view of the first node below it that is not a reshape, transpose or
 * identity; null when some reshape on the way would need a copy.
 */
export function chainView(t: Tensor): View | null {
  const chain: Tensor[] = [];
  let base = t;
  while (isView(base.prim)) {
    chain.push(base);
    base = base.inputs[0];
  }
  let v: View | null = contiguousView(base.shape);
  for (let i = chain.length - 1; i >= 0 && v; i--) v = applyView(v, chain[i]);
  return v;
}

/** The view of `t` given the view of its operand (t is a reshape, transpose or identity). */
export function applyView(v: View, t: Tensor): View | null {
  if (isPrim(t, Primitive.Transpose)) return transposeView(v, t.params.perm);
  if (t.prim === Primitive.Reshape) return reshapeView(v, t.shape);
  return v;
}

/** Nodes that read their operand's buffer in place: aliases and transposes. */
function isView(prim: Primitive): boolean {
  const a = accessOf(prim);
  return a === "alias" || a === "view";
}
