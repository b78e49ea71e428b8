/**
 * The compiled CPU executable: a schedule of fused JS loops (codegen.ts), wasm SIMD matmuls
 * (gemm_wasm.ts) and reference kernels for the rest (pad, concatenate, bf16), over buffers
 * planned once in a wasm memory arena (arena.ts). Results match the reference interpreter
 * bit for bit except matmuls, which accumulate in f32 with fused multiply-add.
 */
import { allocArray, type TypedArray } from "../../ir/dtype.ts";
import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import { Primitive, type PrimitiveParams } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import type { DeviceArray, Executable } from "../backend.ts";
import { type ArenaRequest, planArena } from "./arena.ts";
import { groupKernel } from "./codegen.ts";
import { dotLayout, gatherView, type OperandLayout } from "./dot.ts";
import { DEFAULT_GEMM, gemmModuleBytes, gemmScratchBytes } from "./gemm_wasm.ts";
import { applyView, type GraphPlan, planGraph } from "./plan.ts";
import { contiguousView, type View } from "./index_map.ts";
import { KERNELS } from "./kernels.ts";

/** Counts of what a compiled graph runs per call, for tests and profiling. */
export interface ExecutableStats {
  nodes: number;
  fusedLoops: number;
  reductions: number;
  matmuls: number;
  fallbacks: number;
  arenaBytes: number;
}

type Step = (vals: (HostTensor | undefined)[]) => void;

export class FusedExecutable implements Executable {
  readonly stats: ExecutableStats;
  readonly #plan: GraphPlan;
  readonly #graph: Graph;
  readonly #steps: Step[] = [];
  readonly #names: string[] = [];
  /** When set, execute() adds each step's time (ms, by `profileClock`) under its kind. */
  profile: Map<string, number> | null = null;
  profileClock: () => number = () => performance.now();

  constructor(graph: Graph) {
    this.#graph = graph;
    const plan = this.#plan = planGraph(graph);
    const { nodes, role, kind } = plan;
    const pos = (t: Tensor) => plan.position.get(t.id)!;
    const baseOf = (p: number): number => {
      while (role[p] === "alias") p = pos(nodes[p].inputs[0]);
      return p;
    };
    const inArena = (p: number) => role[p] === "root" && kind[p] !== "fallback" && !plan.escapes[p];

    // ---- schedule: one step per root, in graph order; record buffer reads per step
    interface Pending {
      p: number;
      reads: number[];
      staging: number[]; // bytes of staging buffers
      build: (ctx: BuildContext) => Step;
    }
    const pending: Pending[] = [];
    let scratchBytes = 0;
    for (let p = 0; p < nodes.length; p++) {
      if (role[p] !== "root") continue;
      const t = nodes[p];
      if (kind[p] === "elementwise" || kind[p] === "reduce") {
        const k = groupKernel(plan, p);
        pending.push({ p, reads: k.leaves, staging: [], build: (ctx) => fusedStep(ctx, p, k) });
      } else if (kind[p] === "dot") {
        const operands = t.inputs.map((x) => operandView(plan, pos(x)));
        const layout = dotLayout(
          t,
          [operands[0].view, operands[1].view],
          [inArena(operands[0].base), inArena(operands[1].base)],
        );
        scratchBytes = Math.max(scratchBytes, gemmScratchBytes(DEFAULT_GEMM, layout.n));
        const staging = [layout.lhs.stagedSize * 4, layout.rhs.stagedSize * 4];
        if (plan.escapes[p]) staging.push(t.size * 4);
        pending.push({
          p,
          reads: operands.map((o) => o.base),
          staging,
          build: (ctx) => dotStep(ctx, p, operands, layout),
        });
      } else {
        pending.push({
          p,
          reads: t.inputs.map((x) => baseOf(pos(x))),
          staging: [],
          build: (ctx) => fallbackStep(ctx, p),
        });
      }
    }

    // ---- arena: lifetimes of root buffers and staging
    const reqs: ArenaRequest[] = [];
    const slotOf = new Map<number, number>();
    pending.forEach((s, i) => {
      if (inArena(s.p)) {
        slotOf.set(s.p, reqs.length);
        reqs.push({ bytes: nodes[s.p].size * bytesPer(nodes[s.p]), first: i, last: i });
      }
    });
    pending.forEach((s, i) => {
      for (const r of s.reads) {
        const slot = slotOf.get(r);
        if (slot !== undefined) reqs[slot].last = Math.max(reqs[slot].last, i);
      }
    });
    const stagingSlots = pending.map((s, i) =>
      s.staging.map((bytes) => {
        reqs.push({ bytes, first: i, last: i });
        return reqs.length - 1;
      })
    );
    const { offsets, size } = planArena(reqs);
    const scratchBase = 0;
    const arenaBase = Math.ceil(scratchBytes / 64) * 64;
    const total = arenaBase + size;
    const pages = Math.max(1, Math.ceil(total / 65536));
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const gemm = gemmInstance(memory, pages);

    const arenaTensor = (p: number): HostTensor => {
      const t = nodes[p];
      const off = arenaBase + offsets[slotOf.get(p)!];
      return { shape: [...t.shape], dtype: t.dtype, data: viewOf(memory.buffer, t, off) };
    };
    const ctx: BuildContext = {
      plan,
      memory,
      gemm,
      scratch: scratchBase,
      arenaTensor: (p) => (inArena(p) ? arenaTensor(p) : null),
      addressOf: (p) => (inArena(p) ? arenaBase + offsets[slotOf.get(p)!] : -1),
      staging: [],
      value: (vals, p) => valueOf(plan, vals, p),
    };
    pending.forEach((s, i) => {
      ctx.staging = stagingSlots[i].map((slot) => arenaBase + offsets[slot]);
      this.#steps.push(s.build(ctx));
      this.#names.push(kind[s.p] === "dot" ? "dot_general" : `${kind[s.p]}:${nodes[s.p].prim}`);
    });

    const count = (k: string) => pending.filter((s) => kind[s.p] === k).length;
    this.stats = {
      nodes: nodes.length,
      fusedLoops: count("elementwise"),
      reductions: count("reduce"),
      matmuls: count("dot"),
      fallbacks: count("fallback"),
      arenaBytes: total,
    };
  }

  execute(args: readonly DeviceArray[]): Promise<DeviceArray[]> {
    const { nodes, role } = this.#plan;
    const vals = new Array<HostTensor | undefined>(nodes.length);
    for (let p = 0; p < nodes.length; p++) {
      if (role[p] !== "source") continue;
      const t = nodes[p];
      vals[p] = t.prim === Primitive.Input
        ? args[(t.params as PrimitiveParams[Primitive.Input]).index] as HostTensor
        : (t.params as PrimitiveParams[Primitive.Constant]).value;
    }
    const prof = this.profile, clock = this.profileClock;
    for (let i = 0; i < this.#steps.length; i++) {
      if (prof) {
        const t0 = clock();
        this.#steps[i](vals);
        const name = this.#names[i];
        prof.set(name, (prof.get(name) ?? 0) + clock() - t0);
      } else this.#steps[i](vals);
    }
    const plan = this.#plan;
    return Promise.resolve(
      this.#graph.outputs.map((o) => valueOf(plan, vals, plan.position.get(o.id)!)),
    );
  }

  dispose(): void {}
}

interface BuildContext {
  plan: GraphPlan;
  memory: WebAssembly.Memory;
  gemm: GemmFn;
  scratch: number;
  /** The persistent arena tensor of root p, or null when p gets fresh memory per call. */
  arenaTensor: (p: number) => HostTensor | null;
  /** Byte address of root p's arena buffer, or -1. */
  addressOf: (p: number) => number;
  /** Byte addresses of this step's staging buffers. */
  staging: number[];
  value: (vals: (HostTensor | undefined)[], p: number) => HostTensor;
}

type GemmFn = (
  a: number,
  sam: number,
  sak: number,
  b: number,
  sbk: number,
  sbn: number,
  c: number,
  ldc: number,
  m: number,
  n: number,
  k: number,
  scratch: number,
  accumulate: number,
) => void;

function fusedStep(ctx: BuildContext, p: number, k: ReturnType<typeof groupKernel>): Step {
  const t = ctx.plan.nodes[p];
  const fixed = ctx.arenaTensor(p);
  const args = new Array<unknown>(k.leaves.length + 1 + (k.scratch ? 1 : 0));
  if (k.scratch) args[args.length - 1] = new Float64Array(k.scratch);
  const leaves = k.leaves;
  const fn = k.fn;
  return (vals) => {
    const out = fixed ?? { shape: [...t.shape], dtype: t.dtype, data: allocArray(t.dtype, t.size) };
    args[0] = out.data;
    for (let i = 0; i < leaves.length; i++) args[i + 1] = vals[leaves[i]]!.data;
    fn.apply(null, args);
    vals[p] = out;
  };
}

function fallbackStep(ctx: BuildContext, p: number): Step {
  const t = ctx.plan.nodes[p];
  const ins = t.inputs.map((x) => ctx.plan.position.get(x.id)!);
  const kernel = KERNELS[t.prim];
  return (vals) => {
    vals[p] = kernel(t, ins.map((q) => ctx.value(vals, q)));
  };
}

function dotStep(
  ctx: BuildContext,
  p: number,
  operands: { base: number; view: View }[],
  layout: ReturnType<typeof dotLayout>,
): Step {
  const t = ctx.plan.nodes[p];
  const { batch, m, k, n } = layout;
  const [stageL, stageR, stageOut] = ctx.staging;
  const fixed = ctx.arenaTensor(p);
  const outAddr = fixed ? ctx.addressOf(p) : stageOut;
  const memory = ctx.memory, gemm = ctx.gemm, scratch = ctx.scratch;
  const batchCount = batch.reduce((a, b) => a * b, 1);
  const outBatch = batch.map((_, i) => batch.slice(i + 1).reduce((a, b) => a * b, m * n));
  const prep = (o: OperandLayout, operand: { base: number; view: View }, stage: number) => {
    if (!o.gather) return () => ctx.addressOf(operand.base) + 4 * o.offset;
    return (vals: (HostTensor | undefined)[]) => {
      const src = vals[operand.base]!.data;
      gatherView(src, operand.view, o.gather!, new Float32Array(memory.buffer), stage / 4);
      return stage;
    };
  };
  const lhsAddr = prep(layout.lhs, operands[0], stageL);
  const rhsAddr = prep(layout.rhs, operands[1], stageR);
  const L = layout.lhs, R = layout.rhs;
  return (vals) => {
    const a0 = lhsAddr(vals), b0 = rhsAddr(vals);
    if (k === 0) new Float32Array(memory.buffer, outAddr, t.size).fill(0);
    else if (m > 0 && n > 0) {
      for (let q = 0; q < batchCount; q++) {
        // batch index -> operand offsets
        let rem = q, ao = a0, bo = b0, co = outAddr;
        for (let d = batch.length - 1; d >= 0; d--) {
          const i = rem % batch[d];
          rem = (rem - i) / batch[d];
          ao += 4 * i * L.batchStrides[d];
          bo += 4 * i * R.batchStrides[d];
          co += 4 * i * outBatch[d];
        }
        gemm(
          ao,
          4 * L.rowStride,
          4 * L.colStride,
          bo,
          4 * R.rowStride,
          4 * R.colStride,
          co,
          4 * n,
          m,
          n,
          k,
          scratch,
          0,
        );
      }
    }
    if (fixed) vals[p] = fixed;
    else {
      const data = new Float32Array(t.size);
      data.set(new Float32Array(memory.buffer, outAddr, t.size));
      vals[p] = { shape: [...t.shape], dtype: "f32", data };
    }
  };
}

/** The strided view through which a matmul reads node p, and the buffer it views. */
function operandView(plan: GraphPlan, p: number): { base: number; view: View } {
  const { nodes, role } = plan;
  const chain: Tensor[] = [];
  let q = p;
  // Walk down through aliases and inlined transposes to a buffer.
  while (
    role[q] === "alias" || (role[q] === "inline" && nodes[q].prim === Primitive.Transpose)
  ) {
    chain.push(nodes[q]);
    q = plan.position.get(nodes[q].inputs[0].id)!;
  }
  let view: View | null = contiguousView(nodes[q].shape);
  for (let i = chain.length - 1; i >= 0 && view; i--) view = applyView(view, chain[i]);
  if (!view) {
    throw new Error(`cpu: no strided view for matmul operand ${nodes[p]} (planner bug)`);
  }
  return { base: q, view };
}

/** A node's value: its own buffer, or (for an alias) its base buffer under its shape. */
function valueOf(plan: GraphPlan, vals: (HostTensor | undefined)[], p: number): HostTensor {
  const { nodes, role } = plan;
  let q = p;
  while (role[q] === "alias") q = plan.position.get(nodes[q].inputs[0].id)!;
  const v = vals[q];
  if (!v) throw new Error(`cpu: ${nodes[q]} has no value (scheduling bug)`);
  if (q === p) return v;
  return { shape: [...nodes[p].shape], dtype: nodes[p].dtype, data: v.data };
}

function bytesPer(t: Tensor): number {
  return t.dtype === "f32" || t.dtype === "i32" || t.dtype === "u32"
    ? 4
    : t.dtype === "bf16"
    ? 2
    : 1;
}

function viewOf(buf: ArrayBufferLike, t: Tensor, off: number): TypedArray {
  switch (t.dtype) {
    case "f32":
      return new Float32Array(buf, off, t.size);
    case "i32":
      return new Int32Array(buf, off, t.size);
    case "u32":
      return new Uint32Array(buf, off, t.size);
    case "bf16":
      return new Uint16Array(buf, off, t.size);
    default:
      return new Uint8Array(buf, off, t.size);
  }
}

let gemmModule: WebAssembly.Module | null = null;

function gemmInstance(memory: WebAssembly.Memory, _pages: number): GemmFn {
  gemmModule ??= new WebAssembly.Module(
    gemmModuleBytes(DEFAULT_GEMM, { minPages: 1, maxPages: 65536, shared: false }),
  );
  const inst = new WebAssembly.Instance(gemmModule, { env: { memory } });
  return inst.exports.gemm as GemmFn;
}
