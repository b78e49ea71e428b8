/**
 * Fusion planning: which nodes of a graph get their own storage buffer ("materialized") and
 * which are recomputed inline inside the kernels that read them. Each materialized node that
 * is not an input or a constant becomes one kernel. A kernel may also fuse one reduction or
 * dot_general (its "core") under an elementwise epilogue, e.g. `gelu(x @ w + b)` or
 * `sum(x) / n` are one kernel each.
 */
import type { Graph } from "../../ir/graph.ts";
import * as ops from "../../ir/ops.ts";
import { Primitive, PRIMITIVE_KIND } from "../../ir/primitive.ts";
import { paramsOf, type Tensor } from "../../ir/tensor.ts";
import { mergeExtents, stridedView } from "./view.ts";

export interface KernelPlan {
  /**
   * The nodes this kernel writes, all of one size and at the same flat index per thread.
   * Kernels with a core write exactly one.
   */
  roots: Tensor[];
  /**
   * A reduction or dot_general computed in this kernel, read by the root's epilogue; or the
   * root itself when it is attention (no epilogue).
   */
  core?: Tensor;
  /** Materialized nodes this kernel reads, in binding order. */
  reads: Tensor[];
  /**
   * A dot_general core's operands copied to contiguous [batch, M, K] (lhs) and [batch, K, N]
   * (rhs) layouts by earlier kernels (see `relayoutOperands`); the core reads these instead.
   */
  lhsLayout?: Tensor;
  rhsLayout?: Tensor;
}

export interface Plan {
  kernels: KernelPlan[];
  /** Ids of nodes held in storage buffers (inputs, constants, kernel roots). */
  materialized: Set<number>;
}

export interface PlanOptions {
  /** Storage buffers one kernel may bind (the output included). */
  maxStorageBuffers: number;
  /** Copy dot_general operands not contiguous along K (lhs) or N (rhs), for register kernels. */
  contiguousOperands?: boolean;
  /** Bindings a node takes (large ones are split into windows); 1 when absent. */
  bindingCost?: (n: Tensor) => number;
  /**
   * Memory is the scarce resource (GPUs): a node kept for later kernels counts the bytes it
   * holds, not only its write, against recomputing it (see `decideInlining`).
   */
  storeCostly?: boolean;
}

/**
 * A kernel launch costs about as much as this many inlined op-elements (llvmpipe: ~0.1 ms).
 * Recomputing a node in several kernels (or per element of a broadcast) is cheaper than its
 * own kernel below that.
 */
const LAUNCH_WORK = 1 << 16;

/**
 * With `storeCostly` (GPUs), what keeping one element costs per unit of lifetime (a fraction of
 * the graph's nodes). A value stored in the forward pass for the backward one holds memory for
 * a third of the step or more, ~85 op-elements per element here, so chains of a few dozen
 * elementwise ops (GELU's tanh and its products) are recomputed from the stored pre-activation
 * instead. On a GPU that is also faster: a write and a reread of 4 bytes take as long as ~100
 * flops (an H100 does ~20 f32 flops per byte of memory bandwidth).
 */
const MEMORY_WORK = 256;

export function planGraph(graph: Graph, opts: PlanOptions): Plan {
  const users = userLists(graph);
  const mat = new Set<number>();
  const isOutput = new Set(graph.outputs.map((o) => o.id));
  for (const n of graph.nodes) {
    if (
      n.prim === Primitive.Input || isOutput.has(n.id) || isCore(n) || isAttention(n) ||
      (n.prim === Primitive.Constant && n.size !== 1)
    ) mat.add(n.id);
  }
  decideInlining(graph, users, mat, opts.storeCostly ?? false);
  const forced = new Set<number>();
  for (;;) {
    const m = new Set(mat);
    const cores = fuseEpilogues(graph, users, m, isOutput, forced);
    const kernels = buildKernels(graph, m, cores);
    const cost = (ns: Tensor[]) => ns.reduce((c, n) => c + (opts.bindingCost?.(n) ?? 1), 0);
    const split = kernels.find((k) => cost([...k.roots, ...k.reads]) > opts.maxStorageBuffers);
    if (!split) {
      const grouped = groupMaps(kernels, m, opts.maxStorageBuffers, cost);
      const out = opts.contiguousOperands ? relayoutOperands(grouped, m) : grouped;
      return { kernels: out, materialized: m };
    }
    // Too many bindings: give the inlined node that reads the most buffers its own kernel.
    const victim = heaviestInlined(split, m);
    if (!victim) {
      throw new Error(
        `webgpu: ${
          split.roots[0]
        } reads ${split.reads.length} buffers directly; the adapter binds ${opts.maxStorageBuffers}`,
      );
    }
    mat.add(victim.id);
    forced.add(victim.id);
  }
}

/** Reductions and contractions: computed by loops, never inlined into other expressions. */
export function isCore(n: Tensor): boolean {
  const kind = PRIMITIVE_KIND[n.prim];
  return kind === "reduce" || kind === "contract";
}

/**
 * Fused attention and its gradient (attention.ts): always a kernel of their own, reading their
 * operands through strided views as dot_general does, never fused with other ops.
 */
export function isAttention(n: Tensor): boolean {
  return PRIMITIVE_KIND[n.prim] === "attention";
}

/** Elementwise ops, and all_reduce_sum (an identity within one replica's kernels). */
export function isElementwise(n: Tensor): boolean {
  const kind = PRIMITIVE_KIND[n.prim];
  return kind === "elementwise" || kind === "collective";
}

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
 * Reverse sweep deciding which inlinable nodes still deserve a buffer. Inlined, a node is
 * evaluated once per element of every kernel iteration that reads it (several kernels, or
 * each element of a broadcast); it gets its own kernel when that recomputation costs more
 * than writing it once plus a launch (and, with `storeCostly`, holding its bytes until its last
 * reader: `MEMORY_WORK`). Non-trivial operands of dot_general and attention always get a
 * buffer: the tiles reread each operand many times.
 */
function decideInlining(
  graph: Graph,
  users: Map<number, Tensor[]>,
  mat: Set<number>,
  storeCostly: boolean,
): void {
  const position = new Map(graph.nodes.map((n, i) => [n.id, i]));
  const lastRead = new Map<number, number>();
  const cost = new Map<number, number>();
  for (const n of graph.nodes) {
    let c = opCost(n) + (mat.has(n.id) ? 1 : 0);
    if (!mat.has(n.id)) { for (const x of n.inputs) c += mat.has(x.id) ? 1 : cost.get(x.id)!; }
    cost.set(n.id, Math.min(c, 1e6));
  }
  // evals: how many times a node would be evaluated, summed over the kernels reading it.
  const evals = new Map<number, number>();
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i];
    if (mat.has(n.id)) continue;
    let e = 0, dotOperand = false;
    for (const u of users.get(n.id)!) {
      if (u.prim === Primitive.DotGeneral || isAttention(u)) dotOperand = true;
      if (!mat.has(u.id)) e += evals.get(u.id)!;
      else if (u.prim === Primitive.ReduceSum || u.prim === Primitive.ReduceMax) e += n.size;
      else if (
        u.prim === Primitive.Concatenate || u.prim === Primitive.DotGeneral || isAttention(u)
      ) e += n.size;
      else e += u.size;
    }
    const c = cost.get(n.id)!;
    const recompute = c * Math.max(0, e - n.size);
    // A free re-indexing is never worth a buffer itself: its input (smaller) may be.
    const free = opCost(n) === 0 && n.inputs.length > 0;
    let store = LAUNCH_WORK + 2 * n.size;
    // The last kernel reading n, through the inlined nodes that would recompute it.
    let last = i;
    for (const u of users.get(n.id)!) {
      last = Math.max(last, mat.has(u.id) ? position.get(u.id)! : lastRead.get(u.id)!);
    }
    if (storeCostly) store += MEMORY_WORK * n.size * (last - i) / graph.nodes.length;
    if ((!free && recompute > store) || (dotOperand && !isView(n, mat))) {
      mat.add(n.id);
      continue;
    }
    evals.set(n.id, e);
    lastRead.set(n.id, last);
  }
}

/** Movement ops (without pad/concatenate) over a buffer: loads with index arithmetic only. */
function isView(n: Tensor, mat: Set<number>): boolean {
  let x = n;
  while (!mat.has(x.id)) {
    if (
      x.prim === Primitive.Constant ||
      (PRIMITIVE_KIND[x.prim] === "movement" && x.prim !== Primitive.Pad &&
        x.prim !== Primitive.Concatenate)
    ) {
      if (x.inputs.length === 0) return true;
      x = x.inputs[0];
    } else return false;
  }
  return true;
}

/**
 * Moves each reduction / dot whose only reader is a chain of same-shape elementwise ops (and
 * reshapes) into the kernel at the end of that chain (so `sum(x) / n` or `x @ w + b` is one kernel).
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
    // Every inlined node above the core must keep the flat index (elementwise ops and
    // reshapes), so the core's value at the kernel's index is the accumulator, and all of
    // them must end in one materialized node: the kernel that will own the core.
    const roots = new Set<Tensor>();
    const seen = new Set<number>([c.id]);
    const stack = [c];
    let ok = true;
    while (stack.length && ok) {
      for (const u of users.get(stack.pop()!.id)!) {
        if (seen.has(u.id)) continue;
        seen.add(u.id);
        if (isCore(u) || !flatKeeping(u) || u.size !== c.size) ok = false;
        else if (mat.has(u.id)) roots.add(u);
        else stack.push(u);
      }
    }
    if (!ok || roots.size !== 1) continue;
    const [root] = roots;
    if (cores.has(root.id)) continue;
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
    const core = isCore(n) || isAttention(n) ? n : cores.get(n.id);
    kernels.push({ roots: [n], core, reads: readsOf(n, core, mat) });
  }
  return kernels;
}

/**
 * Materialized nodes reachable from `root` through inlined nodes (and through `core`, whose
 * inputs `coreInputs` may replace).
 */
function readsOf(
  root: Tensor,
  core: Tensor | undefined,
  mat: Set<number>,
  coreInputs?: readonly Tensor[],
): Tensor[] {
  const reads: Tensor[] = [];
  const seen = new Set<number>([root.id]);
  const stack: Tensor[] = root === core && coreInputs ? [...coreInputs] : [...root.inputs];
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x.id)) continue;
    seen.add(x.id);
    if (x === core) {
      stack.push(...(coreInputs ?? x.inputs));
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
  for (const x of k.roots[0].inputs) visit(x);
  return best;
}

/**
 * Horizontal fusion: a map kernel joins an earlier open map kernel of the same size that it is
 * related to (reads its output or shares a same-size input), when it reads that kernel's outputs only
 * at its own index (so the values are still in registers) and the bindings fit. The group
 * runs where its last member was; a group closes once another kernel reads its outputs.
 * AdamW's mu, nu and parameter updates become one kernel this way.
 */
function groupMaps(
  kernels: KernelPlan[],
  mat: Set<number>,
  maxBindings: number,
  cost: (ns: Tensor[]) => number,
): KernelPlan[] {
  const out: (KernelPlan | undefined)[] = [];
  const open = new Set<number>(); // indices in out of groups that may still grow
  const groupOf = new Map<number, number>(); // root id -> index in out
  for (const k of kernels) {
    const size = k.roots[0].size;
    let at = -1;
    let gi: number | undefined;
    if (!k.core) {
      // The most recent related open group of the same size.
      for (const i of [...open].reverse()) {
        const g = out[i]!;
        if (g.roots[0].size === size && canMerge(g, k, mat, maxBindings, cost)) {
          gi = i;
          break;
        }
      }
    }
    if (gi !== undefined) {
      const g = out[gi]!;
      out[gi] = undefined;
      open.delete(gi);
      const roots = [...g.roots, ...k.roots];
      const rootIds = new Set(roots.map((r) => r.id));
      const reads = [...new Map([...g.reads, ...k.reads].map((r) => [r.id, r])).values()]
        .filter((r) => !rootIds.has(r.id))
        .sort((a, b) => a.id - b.id);
      out.push({ roots, reads });
    } else out.push(k);
    at = out.length - 1;
    for (const r of out[at]!.roots) groupOf.set(r.id, at);
    if (!k.core) open.add(at);
    // Groups whose outputs this kernel reads cannot move past it any more.
    for (const r of k.reads) {
      const g = groupOf.get(r.id);
      if (g !== undefined && g !== at) open.delete(g);
    }
  }
  return out.filter((k): k is KernelPlan => k !== undefined);
}

function canMerge(
  g: KernelPlan,
  k: KernelPlan,
  mat: Set<number>,
  maxBindings: number,
  cost: (ns: Tensor[]) => number,
): boolean {
  if (g.core || k.core) return false;
  const gRoots = new Set(g.roots.map((r) => r.id));
  const gAll = new Set([...gRoots, ...g.reads.map((r) => r.id)]);
  // Related: k reads g's output or a same-size input of g (shared scalars do not count).
  const size = k.roots[0].size;
  if (!k.reads.some((r) => gAll.has(r.id) && r.size === size)) return false;
  const reads = new Map([...g.reads, ...k.reads].map((r) => [r.id, r]));
  for (const r of gRoots) reads.delete(r);
  if (cost([...g.roots, ...k.roots, ...reads.values()]) > maxBindings) return false;
  return k.reads.every((r) => !gRoots.has(r.id) || readOnlyInPlace(k.roots[0], r, mat));
}

/** True when every path from `from` to `target` keeps the flat index (elementwise, reshape). */
function readOnlyInPlace(from: Tensor, target: Tensor, mat: Set<number>): boolean {
  const seen = new Set<string>();
  const stack: [Tensor, boolean][] = from.inputs.map((x) => [x, flatKeeping(from)]);
  while (stack.length) {
    const [x, same] = stack.pop()!;
    if (x === target) {
      if (!same) return false;
      continue;
    }
    const key = `${x.id}:${same}`;
    if (seen.has(key) || mat.has(x.id)) continue;
    seen.add(key);
    const next = same && flatKeeping(x);
    for (const y of x.inputs) stack.push([y, next]);
  }
  return true;
}

function flatKeeping(n: Tensor): boolean {
  return isElementwise(n) || n.prim === Primitive.Reshape;
}

/**
 * For register-blocked dot kernels (CPU adapters): lanes read neighbouring N columns of the
 * rhs and each thread reads four K values of an lhs row at once. When an operand is not
 * contiguous along that dim (a transposed weight, keys in attention, activations in weight
 * gradients), a map kernel first copies it to [batch, M, K] / [batch, K, N]. The copy is small
 * next to the product and turns strided gathers into vector loads.
 */
function relayoutOperands(kernels: KernelPlan[], mat: Set<number>): KernelPlan[] {
  const out: KernelPlan[] = [];
  for (const k of kernels) {
    const d = k.core;
    if (d?.prim !== Primitive.DotGeneral) {
      out.push(k);
      continue;
    }
    const p = paramsOf(d, Primitive.DotGeneral);
    const [lhs, rhs] = d.inputs;
    const lhsFree = freeOf(lhs, p.lhsBatch, p.lhsContract);
    const rhsFree = freeOf(rhs, p.rhsBatch, p.rhsContract);
    // lhs rows may run along K or along M; only neither needs a copy.
    const lhsLayout = contiguousAlong(lhs, lhsFree, mat)
      ? undefined
      : contiguousCopy(lhs, p.lhsBatch, lhsFree, p.lhsContract, mat);
    const rhsLayout = contiguousCopy(rhs, p.rhsBatch, p.rhsContract, rhsFree, mat);
    for (const t of [lhsLayout, rhsLayout]) {
      if (t) out.push({ roots: [t], reads: readsOf(t, undefined, mat) });
    }
    if (!lhsLayout && !rhsLayout) {
      out.push(k);
      continue;
    }
    const inputs = [lhsLayout ?? lhs, rhsLayout ?? rhs];
    out.push({ ...k, lhsLayout, rhsLayout, reads: readsOf(k.roots[0], d, mat, inputs) });
  }
  return out;
}

/**
 * A materialized [size(a), size(b), size(c)] copy of `x` when the `c` dims of its strided view
 * are not one contiguous run; undefined when no copy is needed.
 */
function contiguousCopy(
  x: Tensor,
  a: number[],
  b: number[],
  c: number[],
  mat: Set<number>,
): Tensor | undefined {
  const view = stridedView(x, (t) => mat.has(t.id));
  if (view) {
    const run = mergeExtents(c.map((i) => ({ size: x.shape[i], stride: view.strides[i] })));
    if (run.length === 0 || (run.length === 1 && run[0].stride === 1)) return undefined;
  }
  const size = (dims: number[]) => dims.reduce((q, i) => q * x.shape[i], 1);
  const t = ops.reshape(ops.transpose(x, [...a, ...b, ...c]), [size(a), size(b), size(c)]);
  if (mat.has(t.id)) return undefined;
  mat.add(t.id);
  return t;
}

/** True when `dims` of `x` form one unit-stride run in its strided view. */
function contiguousAlong(x: Tensor, dims: number[], mat: Set<number>): boolean {
  const view = stridedView(x, (t) => mat.has(t.id));
  if (!view) return false;
  const run = mergeExtents(dims.map((i) => ({ size: x.shape[i], stride: view.strides[i] })));
  return run.length === 1 && run[0].stride === 1;
}

function freeOf(x: Tensor, batch: number[], contract: number[]): number[] {
  return x.shape.map((_, i) => i).filter((i) => !batch.includes(i) && !contract.includes(i));
}
