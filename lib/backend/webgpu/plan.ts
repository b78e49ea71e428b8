/**
 * Fusion planning: which nodes of a graph get their own storage buffer ("materialized") and
 * which are recomputed inline inside the kernels that read them. Each materialized node that
 * is not an input or a constant becomes one kernel. A kernel may also fuse one reduction or
 * dot_general (its "core") under an elementwise epilogue, e.g. `gelu(x @ w + b)` or
 * `sum(x) / n` are one kernel each.
 */
import type { Graph } from "../../ir/graph.ts";
import { BINARY_ELEMENTWISE, Primitive, UNARY_ELEMENTWISE } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";

export interface KernelPlan {
  /** The node this kernel writes. */
  root: Tensor;
  /** A reduction or dot_general computed in this kernel, read by `root`'s epilogue. */
  core?: Tensor;
  /** Materialized nodes this kernel reads, in binding order. */
  reads: Tensor[];
}

export interface Plan {
  kernels: KernelPlan[];
  /** Ids of nodes held in storage buffers (inputs, constants, kernel roots). */
  materialized: Set<number>;
}

export interface PlanOptions {
  /** Storage buffers one kernel may bind (the output included). */
  maxStorageBuffers: number;
}

/** Inlined cost (rough op count) above which a node shared by two kernels gets a buffer. */
const SHARED_COST = 6;
/** Inlined cost above which a node read through an expanding broadcast gets a buffer. */
const BROADCAST_COST = 16;

export function planGraph(graph: Graph, opts: PlanOptions): Plan {
  const users = userLists(graph);
  const mat = new Set<number>();
  const isOutput = new Set(graph.outputs.map((o) => o.id));
  for (const n of graph.nodes) {
    if (
      n.prim === Primitive.Input || isOutput.has(n.id) || isCore(n) ||
      (n.prim === Primitive.Constant && n.size !== 1)
    ) mat.add(n.id);
  }
  decideInlining(graph, users, mat);
  const forced = new Set<number>();
  for (;;) {
    const m = new Set(mat);
    const cores = fuseEpilogues(graph, users, m, isOutput, forced);
    const kernels = buildKernels(graph, m, cores);
    const split = kernels.find((k) => k.reads.length + 1 > opts.maxStorageBuffers);
    if (!split) return { kernels, materialized: m };
    // Too many bindings: give the inlined node that reads the most buffers its own kernel.
    const victim = heaviestInlined(split, m);
    if (!victim) {
      throw new Error(
        `webgpu: ${split.root} reads ${split.reads.length} buffers directly; the adapter binds ${opts.maxStorageBuffers}`,
      );
    }
    mat.add(victim.id);
    forced.add(victim.id);
  }
}

/** Reductions and contractions: computed by loops, never inlined into other expressions. */
export function isCore(n: Tensor): boolean {
  return n.prim === Primitive.ReduceSum || n.prim === Primitive.ReduceMax ||
    n.prim === Primitive.DotGeneral;
}

export function isElementwise(n: Tensor): boolean {
  return UNARY_ELEMENTWISE.has(n.prim) || BINARY_ELEMENTWISE.has(n.prim) ||
    n.prim === Primitive.Select || n.prim === Primitive.AllReduceSum;
}

const MOVEMENT = new Set<Primitive>([
  Primitive.Reshape,
  Primitive.BroadcastInDim,
  Primitive.Transpose,
  Primitive.Slice,
  Primitive.Pad,
  Primitive.Concatenate,
]);

function userLists(graph: Graph): Map<number, Tensor[]> {
  const users = new Map<number, Tensor[]>();
  for (const n of graph.nodes) users.set(n.id, []);
  for (const n of graph.nodes) {
    for (const x of new Set(n.inputs)) users.get(x.id)!.push(n);
  }
  return users;
}

/** A rough per-element cost of inlining `n` (transcendentals and division weigh more). */
function opCost(n: Tensor): number {
  switch (n.prim) {
    case Primitive.Exp:
    case Primitive.Log:
    case Primitive.Tanh:
    case Primitive.Erf:
      return 8;
    case Primitive.Sqrt:
    case Primitive.Rsqrt:
    case Primitive.Div:
      return 3;
    case Primitive.Reshape:
    case Primitive.BroadcastInDim:
    case Primitive.Transpose:
    case Primitive.StopGradient:
    case Primitive.Iota:
    case Primitive.Constant:
      return 0;
    default:
      return 1;
  }
}

/**
 * Reverse sweep deciding which inlinable nodes still deserve a buffer: those that several
 * kernels would recompute, those an expanding broadcast would recompute many times, and
 * non-trivial operands of dot_general (its tiles reread each operand many times).
 */
function decideInlining(graph: Graph, users: Map<number, Tensor[]>, mat: Set<number>): void {
  const cost = new Map<number, number>();
  for (const n of graph.nodes) {
    let c = opCost(n) + (mat.has(n.id) ? 1 : 0);
    if (!mat.has(n.id)) { for (const x of n.inputs) c += mat.has(x.id) ? 1 : cost.get(x.id)!; }
    cost.set(n.id, Math.min(c, 1e6));
  }
  const roots = new Map<number, Set<number>>();
  const expanded = new Map<number, boolean>();
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i];
    if (mat.has(n.id)) continue;
    const r = new Set<number>();
    let exp = false, dotOperand = false;
    for (const u of users.get(n.id)!) {
      if (mat.has(u.id)) r.add(u.id);
      else for (const x of roots.get(u.id)!) r.add(x);
      if (u.prim === Primitive.BroadcastInDim && u.size > n.size) exp = true;
      if (!mat.has(u.id) && expanded.get(u.id)) exp = true;
      if (u.prim === Primitive.DotGeneral) dotOperand = true;
    }
    const c = cost.get(n.id)!;
    if (
      (r.size > 1 && c > SHARED_COST) || (exp && c > BROADCAST_COST) ||
      (dotOperand && !isView(n, mat))
    ) {
      mat.add(n.id);
      continue;
    }
    roots.set(n.id, r);
    expanded.set(n.id, exp);
  }
}

/** Movement ops (without pad/concatenate) over a buffer: loads with index arithmetic only. */
function isView(n: Tensor, mat: Set<number>): boolean {
  let x = n;
  while (!mat.has(x.id)) {
    if (
      x.prim === Primitive.Constant ||
      (MOVEMENT.has(x.prim) && x.prim !== Primitive.Pad && x.prim !== Primitive.Concatenate)
    ) {
      if (x.inputs.length === 0) return true;
      x = x.inputs[0];
    } else return false;
  }
  return true;
}

/**
 * Moves each reduction / dot whose only reader is a chain of same-shape elementwise ops into
 * the kernel at the end of that chain (so `sum(x) / n` or `x @ w + b` is one kernel).
 * Returns root id -> core.
 */
function fuseEpilogues(
  graph: Graph,
  users: Map<number, Tensor[]>,
  mat: Set<number>,
  isOutput: Set<number>,
  forced: Set<number>,
): Map<number, Tensor> {
  const cores = new Map<number, Tensor>();
  for (const c of graph.nodes) {
    if (!isCore(c) || isOutput.has(c.id) || forced.has(c.id)) continue;
    let cur = c;
    let root: Tensor | undefined;
    for (;;) {
      const us = users.get(cur.id)!;
      if (us.length !== 1) break;
      const u = us[0];
      if (!isElementwise(u) || !sameShape(u.shape, c.shape) || isCore(u)) break;
      if (mat.has(u.id)) {
        root = u;
        break;
      }
      cur = u;
    }
    if (!root || cores.has(root.id)) continue;
    // The root's other inlined operands must not reach another core (they cannot: cores are
    // materialized unless fused, and each root fuses at most one).
    cores.set(root.id, c);
    mat.delete(c.id);
  }
  return cores;
}

function buildKernels(graph: Graph, mat: Set<number>, cores: Map<number, Tensor>): KernelPlan[] {
  const kernels: KernelPlan[] = [];
  for (const n of graph.nodes) {
    if (!mat.has(n.id) || n.prim === Primitive.Input) continue;
    if (n.prim === Primitive.Constant && n.size !== 1) continue;
    const core = isCore(n) ? n : cores.get(n.id);
    kernels.push({ root: n, core, reads: readsOf(n, core, mat) });
  }
  return kernels;
}

/** Materialized nodes reachable from `root` through inlined nodes (and through `core`). */
function readsOf(root: Tensor, core: Tensor | undefined, mat: Set<number>): Tensor[] {
  const reads: Tensor[] = [];
  const seen = new Set<number>([root.id]);
  const stack: Tensor[] = [...root.inputs];
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x.id)) continue;
    seen.add(x.id);
    if (x === core) {
      stack.push(...x.inputs);
      continue;
    }
    if (mat.has(x.id)) reads.push(x);
    else stack.push(...x.inputs);
  }
  return reads.sort((a, b) => a.id - b.id);
}

/** The inlined node of a kernel reading the most buffers (but not all of them). */
function heaviestInlined(k: KernelPlan, mat: Set<number>): Tensor | undefined {
  let best: Tensor | undefined, bestCount = 0;
  const seen = new Set<number>();
  const visit = (x: Tensor) => {
    if (seen.has(x.id) || mat.has(x.id)) return;
    seen.add(x.id);
    const count = readsOf(x, isCore(x) ? x : undefined, mat).length;
    if (count > bestCount && count < k.reads.length && x.size > 0) {
      best = x;
      bestCount = count;
    }
    for (const y of x.inputs) visit(y);
  };
  for (const x of k.root.inputs) visit(x);
  return best;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
