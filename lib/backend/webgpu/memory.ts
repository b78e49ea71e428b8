/**
 * The device-free half of compiling a graph for WebGPU: plan the kernels, generate their WGSL,
 * give every buffer a place (inputs, constants, outputs, intermediate slots) and add up the
 * bytes. `GpuExecutable.create` runs it before touching the device, and it runs without one for
 * an adapter described by an `AdapterProfile` (what a step needs on an 80 GB GPU, planned here).
 */
import type { Graph } from "../../ir/graph.ts";
import { Primitive } from "../../ir/primitive.ts";
import { isPrim, paramsOf, type Tensor } from "../../ir/tensor.ts";
import { chunkCount } from "./bindings.ts";
import { type GeneratedKernel, generateKernel, type Tuning } from "./codegen.ts";
import type { AdapterProfile } from "./device.ts";
import { isAttention, type KernelPlan, planGraph } from "./plan.ts";
import { attentionKernel, lowerAttention } from "./attention.ts";
import { WORD } from "./storage.ts";

export type Loc =
  | { kind: "input"; index: number }
  | { kind: "constant"; node: Tensor }
  | { kind: "slot"; slot: number }
  | { kind: "output"; index: number };

/** Bytes one run of a program holds on the device. */
export interface MemoryReport {
  /** Argument buffers (parameters, optimizer state, the batch). */
  inputs: number;
  /** Fresh output buffers (the next parameters and optimizer state, metrics). */
  outputs: number;
  /** Non-scalar constants, uploaded once. */
  constants: number;
  /** Intermediate slots, allocated once per executable. */
  allocated: number;
  /** Most intermediate bytes alive after any one kernel: a lower bound for `allocated`. */
  peakLive: number;
  /** inputs + outputs + constants + allocated: what the step needs at once. */
  total: number;
}

export interface CompiledPlan {
  /** The graph as planned: attention lowered for the fused kernels (`lowerAttention`). */
  graph: Graph;
  kernels: GeneratedKernel[];
  loc: Map<number, Loc>;
  /** Bytes of each intermediate slot. */
  slotSizes: number[];
  /** Outputs filled by a copy after the pass: [output index, source node]. */
  copies: [number, Tensor][];
  memory: MemoryReport;
}

/** Plans, generates and allocates `graph` for an adapter; touches no device. */
export function compilePlan(traced: Graph, adapter: AdapterProfile): CompiledPlan {
  const { limits, tuning } = adapter;
  const graph = lowerAttention(traced, tuning);
  for (const n of [...graph.inputs, ...graph.outputs]) checkBufferSize(n, limits.maxBufferSize);
  const plan = planGraph(graph, {
    maxStorageBuffers: limits.maxStorageBuffersPerShaderStage,
    contiguousOperands: tuning.matmul === "register",
    bindingCost: (n) => chunkCount(n.size, tuning.chunks),
    storeCostly: !adapter.cpuAdapter,
  });
  const planned = plan.kernels.filter((k) => k.roots[0].size > 0);
  for (const k of planned) {
    for (const n of [...k.roots, ...k.reads]) checkBufferSize(n, limits.maxBufferSize);
  }
  const kernels = scheduleKernels(planned.map((k) => kernelOf(k, tuning)));

  const loc = new Map<number, Loc>();
  for (const n of graph.inputs) {
    loc.set(n.id, { kind: "input", index: paramsOf(n, Primitive.Input).index });
  }
  let constants = 0;
  for (const n of graph.nodes) {
    if (!isPrim(n, Primitive.Constant) || !plan.materialized.has(n.id) || n.size === 1) continue;
    loc.set(n.id, { kind: "constant", node: n });
    constants += n.size * WORD;
  }
  // Each kernel root that is a graph output writes the output directly (first occurrence);
  // other outputs are copies.
  const produced = new Set(kernels.flatMap((k) => k.bindings.slice(0, k.outputs).map((n) => n.id)));
  const copies: [number, Tensor][] = [];
  graph.outputs.forEach((o, j) => {
    if (produced.has(o.id) && !loc.has(o.id)) loc.set(o.id, { kind: "output", index: j });
    else copies.push([j, o]);
  });
  const { sizes, peakLive } = planSlots(kernels, loc);
  const bytes = (ns: readonly Tensor[]) => ns.reduce((s, n) => s + Math.max(n.size, 1) * WORD, 0);
  const inputs = bytes(graph.inputs), outputs = bytes(graph.outputs);
  const allocated = sizes.reduce((s, b) => s + b, 0);
  return {
    graph,
    kernels,
    loc,
    slotSizes: sizes,
    copies,
    memory: {
      inputs,
      outputs,
      constants,
      allocated,
      peakLive,
      total: inputs + outputs + constants + allocated,
    },
  };
}

/** The WGSL of a planned kernel: attention's own kernels, or codegen.ts's for the rest. */
function kernelOf(k: KernelPlan, tuning: Tuning): GeneratedKernel {
  return k.core && isAttention(k.core) ? attentionKernel(k, tuning) : generateKernel(k, tuning);
}

/**
 * Reorders kernels to shorten lifetimes; any topological order gives the same results.
 * - Kernels that read at least as many intermediate bytes as they write run as early as their
 *   inputs allow (in order, each moves to just after the last kernel writing what it reads).
 *   The graph's order computes every weight gradient at the end of the backward pass, keeping
 *   every layer's activations alive until then; hoisted, each runs with its layer's backward.
 * - Kernels that write more than they read run as late as their readers allow (in reverse
 *   order, each moves to just before the first kernel reading it): recomputation under
 *   `--grad-ckpt` then happens next to the layer's backward, not for all layers at once.
 * - Kernels that recompute (their outputs name the forward node they recompute, `rematOf`) run as
 *   late as their readers allow, whatever their sizes, unless every reader shrinks (a weight
 *   gradient: its output at most half its largest input), which then runs hoisted right after
 *   them. Hoisted by size, a recomputed fused attention (three inputs, one output) ran in the
 *   forward pass and stayed live to the backward, every layer's at once; left late, a recomputed
 *   GELU waited with its layer's pre-activation for a weight gradient at the end (ViT-B/16 batch
 *   256, grad-ckpt: 19.2 -> 8.6 GiB allocated).
 */
export function scheduleKernels(kernels: readonly GeneratedKernel[]): GeneratedKernel[] {
  const order = [...kernels];
  const outsOf = (k: GeneratedKernel) => k.bindings.slice(0, k.outputs);
  const readsOf = (k: GeneratedKernel) => k.bindings.slice(k.outputs);
  const writer = new Map<number, GeneratedKernel>();
  for (const k of kernels) for (const n of outsOf(k)) writer.set(n.id, k);
  const size = (ns: Tensor[]) => ns.reduce((s, n) => s + n.size, 0);
  const reads = (k: GeneratedKernel) => [...new Set(readsOf(k))].filter((n) => writer.has(n.id));
  const readers = new Map<number, GeneratedKernel[]>();
  for (const k of kernels) {
    for (const n of readsOf(k)) (readers.get(n.id) ?? readers.set(n.id, []).get(n.id)!).push(k);
  }
  const shrinks = (k: GeneratedKernel) =>
    2 * Math.max(...outsOf(k).map((n) => n.size)) <= Math.max(0, ...reads(k).map((n) => n.size));
  const recomputes = (k: GeneratedKernel) =>
    outsOf(k).some((n) => n.rematOf !== undefined) &&
    !outsOf(k).every((n) => (readers.get(n.id) ?? []).every(shrinks));
  for (const k of kernels) {
    if (size(reads(k)) < size(outsOf(k)) || recomputes(k)) continue;
    const producers = new Set(reads(k).map((n) => writer.get(n.id)!));
    const at = order.indexOf(k);
    let last = at - 1;
    while (last >= 0 && !producers.has(order[last])) last--;
    if (last + 1 === at) continue;
    order.splice(at, 1);
    order.splice(last + 1, 0, k);
  }
  for (let i = kernels.length - 1; i >= 0; i--) {
    const k = kernels[i];
    if (size(outsOf(k)) <= size(reads(k)) && !recomputes(k)) continue;
    const ids = new Set(outsOf(k).map((n) => n.id));
    const at = order.indexOf(k);
    let first = at + 1;
    while (first < order.length && !readsOf(order[first]).some((n) => ids.has(n.id))) first++;
    // No reader: a graph output (or a value nothing reads); it stays where it is.
    if (first === order.length || first === at + 1) continue;
    order.splice(at, 1);
    order.splice(first - 1, 0, k);
  }
  return order;
}

/**
 * Assigns every intermediate (a kernel output that is not a graph output) a slot: a buffer it
 * holds from the kernel writing it to the last kernel reading it. The lifetimes are known
 * ahead, so the assignment is offline "greedy by size" (as TFLite's arena planner): the largest
 * tensors first, each into the smallest slot whose tenants' lifetimes it does not overlap and
 * that is already big enough, else a new slot of exactly its size. Slots never grow, so no
 * slot is larger than its largest tenant.
 */
export function planSlots(
  kernels: readonly GeneratedKernel[],
  loc: Map<number, Loc>,
): { sizes: number[]; peakLive: number } {
  const lastUse = new Map<number, number>();
  kernels.forEach((k, i) => k.bindings.slice(k.outputs).forEach((n) => lastUse.set(n.id, i)));
  const tensors: { node: Tensor; bytes: number; from: number; to: number }[] = [];
  const seen = new Set<number>();
  kernels.forEach((k, i) => {
    for (const root of k.bindings.slice(0, k.outputs)) {
      if (loc.has(root.id) || seen.has(root.id)) continue;
      seen.add(root.id);
      const bytes = Math.ceil((Math.max(root.size, 1) * WORD) / 16) * 16;
      tensors.push({ node: root, bytes, from: i, to: Math.max(i, lastUse.get(root.id) ?? i) });
    }
  });
  // Live bytes after each kernel: a difference array over the lifetimes.
  const delta = new Array<number>(kernels.length + 1).fill(0);
  for (const t of tensors) {
    delta[t.from] += t.bytes;
    delta[t.to + 1] -= t.bytes;
  }
  let live = 0, peakLive = 0;
  for (let i = 0; i < kernels.length; i++) peakLive = Math.max(peakLive, live += delta[i]);

  const order = [...tensors].sort((a, b) => b.bytes - a.bytes || a.from - b.from);
  const sizes: number[] = [];
  const tenants: { from: number; to: number }[][] = [];
  for (const t of order) {
    let best = -1;
    for (let s = 0; s < sizes.length; s++) {
      if (sizes[s] < t.bytes || (best >= 0 && sizes[s] >= sizes[best])) continue;
      if (tenants[s].every((u) => u.to < t.from || t.to < u.from)) best = s;
    }
    if (best < 0) {
      best = sizes.length;
      sizes.push(t.bytes);
      tenants.push([]);
    }
    tenants[best].push(t);
    loc.set(t.node.id, { kind: "slot", slot: best });
  }
  return { sizes, peakLive };
}

function checkBufferSize(n: Tensor, max: number): void {
  const bytes = n.size * WORD;
  if (bytes > max) {
    throw new Error(
      `webgpu: ${n} needs ${bytes} bytes, above this adapter's maxBufferSize (${max}); ` +
        `use a smaller batch (or gradient accumulation) or another backend`,
    );
  }
}

/** Thrown when a program's buffers add up to more than the adapter's memory. */
export class DeviceMemoryError extends Error {
  override name = "DeviceMemoryError";
  constructor(readonly report: MemoryReport, readonly available: number) {
    super(
      `webgpu: the program needs ${gib(report.total)} on the device, the adapter has ` +
        `${gib(available)} (${describeMemory(report)})`,
    );
  }
}

/** Throws `DeviceMemoryError` when `report` does not fit `available` bytes. */
export function checkMemory(report: MemoryReport, available: number | undefined): void {
  if (available !== undefined && report.total > available) {
    throw new DeviceMemoryError(report, available);
  }
}

export function describeMemory(r: MemoryReport): string {
  return `arguments ${gib(r.inputs)}, outputs ${gib(r.outputs)}, constants ${
    gib(r.constants)
  }, intermediates ${gib(r.allocated)} allocated / ${gib(r.peakLive)} peak live`;
}

export function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}
