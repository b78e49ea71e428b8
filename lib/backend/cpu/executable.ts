/**
 * The compiled CPU executable: a schedule of fused loops (wasm SIMD where the group is plain
 * f32 arithmetic, JS source otherwise), wasm SIMD matmuls and reference kernels for the rest
 * (pad, concatenate, bf16). Every value lives in one wasm memory arena planned at compile
 * time: inputs are copied in at the start of a call, outputs copied out at the end.
 *
 * Results match the reference interpreter bit for bit, except matmuls, which accumulate in
 * f32 with fused multiply-add instead of f64.
 */
import type { TypedArray } from "../../ir/dtype.ts";
import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import { Primitive } from "../../ir/primitive.ts";
import { isPrim, paramsOf, type Tensor } from "../../ir/tensor.ts";
import { type HostExecutable, releaseMemory } from "./array.ts";
import type { ReplicaRun } from "./replicas.ts";
import { type ArenaRequest, bytesPer, planArena, viewOf } from "./arena.ts";
import { jsKernel } from "./codegen.ts";
import { DOT_SPLIT_MIN_FLOPS, dotLayout, dotStep, gemmModule, gemmOn, operandView } from "./dot.ts";
import { F, loopSlices, splittable } from "./task_records.ts";
import { SplitSite, WorkerPool } from "./threads.ts";
import { buildGroupIR, type GroupIR } from "./fused_ir.ts";
import { DEFAULT_GEMM, gemmScratchBytes } from "./gemm_wasm.ts";
import type { View } from "./index_map.ts";
import { kernelOf } from "./kernels.ts";
import { type GraphPlan, planGraph } from "./plan.ts";
import { buildWasmGroups, wasmEligible } from "./wasm_fused.ts";
import { EXP_TABLE, EXP_TABLE_BYTES } from "./wasm_math.ts";
import { attentionStaging, attentionStep } from "./attention_step.ts";
import { attentionModule } from "./attention.ts";

/** Counts of what a compiled graph runs per call, for tests and profiling. */
export interface ExecutableStats {
  nodes: number;
  /** Fused elementwise loops, and how many of them run as wasm SIMD. */
  fusedLoops: number;
  wasmLoops: number;
  reductions: number;
  wasmReductions: number;
  matmuls: number;
  /** Matmuls split across `threads` threads (the pool's, when used). */
  threadedMatmuls: number;
  /** Wasm loops split across threads. */
  threadedLoops: number;
  /** Fused attention kernels (forward and backward), and how many split across threads. */
  attention: number;
  threadedAttention: number;
  threads: number;
  /** Whether matmuls run on the native BLAS. */
  nativeGemm: boolean;
  fallbacks: number;
  arenaBytes: number;
}

export interface FusedOptions {
  /** Split large matmuls and fused loops across the WorkerPool's threads (default true). */
  threads?: boolean;
  /** Run eligible elementwise groups as wasm SIMD (default true); false keeps JS loops. */
  wasm?: boolean;
  /**
   * Keep exp and tanh on Math.exp / Math.tanh (bit-identical to the reference) instead of
   * the wasm SIMD versions, which may differ by one f32 ulp in rare cases. Default false.
   */
  exactMath?: boolean;
  /**
   * Run matmuls on the system's BLAS when one loads (gemm_native.ts; default true); false
   * keeps the wasm SIMD GEMM.
   */
  nativeGemm?: boolean;
  /**
   * Per graph input (by input index): donated at every call. A donated input's buffer is
   * reused in place for an output of the same dtype and size where its last read allows
   * (XLA's input-output aliasing): that output is returned as a view of the arena, and passing
   * it back as the same input next call copies nothing (see `resident`).
   */
  donate?: readonly boolean[];
}

type Step = () => void;

/** Wasm memories hold at most 4 GiB; stay clear of the end. */
const MAX_ARENA_BYTES = 4 * 2 ** 30 - 2 ** 26;

/** Thrown when a graph's buffers do not fit a wasm memory (the backend then interprets it). */
export class ArenaTooLarge extends Error {}

/** Workers drop the memory of executables that were garbage-collected without dispose(). */
const POOL_CLEANUP = new FinalizationRegistry<number>((id) => WorkerPool.shared()?.unregister(id));

function dotFlops(l: ReturnType<typeof dotLayout>): number {
  return 2 * l.m * l.n * l.k * l.batch.reduce((a, b) => a * b, 1);
}

export class FusedExecutable implements HostExecutable {
  readonly stats: ExecutableStats;
  readonly #plan: GraphPlan;
  readonly #graph: Graph;
  readonly #steps: Step[] = [];
  readonly #names: string[] = [];
  readonly #details: string[] = [];
  /** Inputs copied in at each call; `returned`: also an output, as it is (not to be released). */
  readonly #inputs: { index: number; view: TypedArray; returned: boolean }[] = [];
  /** Steps that are cross-replica sums (all_reduce_sum): operand and result buffers. */
  readonly #collectives = new Map<
    number,
    { dtype: Tensor["dtype"]; x: TypedArray; out: TypedArray }
  >();
  readonly #tensor: (p: number) => HostTensor;
  /** Output index -> input index whose arena buffer it is written into (donated inputs). */
  readonly resident: ReadonlyMap<number, number>;
  /** Aliased output bases: the arena view they are returned as (the input's view). */
  readonly #residentViews = new Map<number, TypedArray>();
  #pool: WorkerPool | null = null;
  #poolReady: Promise<number | null> | null = null;
  #poolId: number | null = null;
  /** Profile per step (kind, op, shape, position) instead of per kind. */
  profileDetail = false;
  /** When set, execute() adds each step's time (ms, by `profileClock`) under its kind. */
  profile: Map<string, number> | null = null;
  profileClock: () => number = () => performance.now();

  constructor(graph: Graph, opts: FusedOptions = {}) {
    this.#graph = graph;
    const plan = this.#plan = planGraph(graph);
    const { nodes, role, kind } = plan;
    const pos = (t: Tensor) => plan.position.get(t.id)!;
    const baseOf = (p: number): number => {
      while (role[p] === "alias") p = pos(nodes[p].inputs[0]);
      return p;
    };

    // ---- schedule: one step per root, in graph order, with the buffers it reads
    interface Pending {
      p: number;
      reads: number[];
      ir?: GroupIR;
      wasm?: boolean;
      dot?: { operands: { base: number; view: View }[]; layout: ReturnType<typeof dotLayout> };
      staging: number[]; // bytes
    }
    const pending: Pending[] = [];
    let scratchBytes = 0;
    const useWasm = opts.wasm ?? true;
    const fastMath = !opts.exactMath;
    for (let p = 0; p < nodes.length; p++) {
      if (role[p] !== "root") continue;
      const t = nodes[p];
      if (kind[p] === "elementwise" || kind[p] === "reduce") {
        const ir = buildGroupIR(plan, p);
        const wasm = useWasm && wasmEligible(ir, fastMath);
        // wasm reductions accumulate in an f64 staging buffer
        const staging = wasm && ir.reduce ? [t.size * 8] : [];
        pending.push({ p, reads: ir.leaves, ir, wasm, staging });
      } else if (kind[p] === "dot") {
        const operands = t.inputs.map((x) => operandView(plan, pos(x)));
        const layout = dotLayout(t, [operands[0].view, operands[1].view], [true, true]);
        scratchBytes = Math.max(scratchBytes, gemmScratchBytes(DEFAULT_GEMM, layout.n));
        pending.push({
          p,
          reads: operands.map((o) => o.base),
          dot: { operands, layout },
          staging: [layout.lhs.stagedSize * 4, layout.rhs.stagedSize * 4],
        });
      } else if (kind[p] === "attention") {
        const a = attentionStaging(t);
        scratchBytes = Math.max(scratchBytes, a.gemmScratch);
        pending.push({ p, reads: t.inputs.map((x) => baseOf(pos(x))), staging: [a.bytes] });
      } else {
        pending.push({ p, reads: t.inputs.map((x) => baseOf(pos(x))), staging: [] });
      }
    }

    // ---- arena: a slot per source and root, live from definition to last read
    const end = pending.length;
    const reqs: ArenaRequest[] = [];
    const slotOf = new Map<number, number>();
    const request = (p: number, first: number, last: number) => {
      slotOf.set(p, reqs.length);
      reqs.push({ bytes: nodes[p].size * bytesPer(nodes[p]), first, last });
    };
    for (let p = 0; p < nodes.length; p++) {
      if (role[p] === "source") request(p, 0, nodes[p].prim === Primitive.Constant ? end : -1);
    }
    pending.forEach((s, i) => request(s.p, i, plan.escapes[s.p] ? end : i));
    pending.forEach((s, i) => {
      for (const r of s.reads) reqs[slotOf.get(r)!].last = Math.max(reqs[slotOf.get(r)!].last, i);
    });
    for (const o of graph.outputs) {
      const b = baseOf(pos(o));
      if (role[b] === "root") reqs[slotOf.get(b)!].last = end;
    }
    // donated inputs: an output of the same dtype and size written into the input's buffer
    const resident = new Map<number, number>();
    const residentBase = new Map<number, number>(); // output base -> input position
    if (opts.donate?.some((d) => d)) {
      const outBases = graph.outputs.map((o) => baseOf(pos(o)));
      const stepOf = new Map(pending.map((s, i) => [s.p, i] as const));
      const taken = new Set<number>();
      for (let p = 0; p < nodes.length; p++) {
        const t = nodes[p];
        if (role[p] !== "source" || !isPrim(t, Primitive.Input)) continue;
        const index = t.params.index;
        const last = reqs[slotOf.get(p)!].last;
        if (!opts.donate[index] || last < 0 || outBases.includes(p)) continue;
        const fits = (b: number, j: number) => {
          if (
            taken.has(j) || role[b] !== "root" || outBases.indexOf(b) !== outBases.lastIndexOf(b)
          ) {
            return false;
          }
          if (nodes[b].dtype !== t.dtype || nodes[b].size !== t.size) return false;
          const s = stepOf.get(b)!;
          return last < s || (last === s && readsInPlace(pending[s].ir, p));
        };
        // First the output whose own loop reads this input (its update, x' = f(x, ...)): the
        // caller hands that output back at this input's position, where it then already lives;
        // any other output of the same size would be copied out and in again at every call.
        let j = outBases.findIndex((b, j) =>
          fits(b, j) && pending[stepOf.get(b)!].reads.includes(p)
        );
        if (j < 0) j = outBases.findIndex(fits);
        if (j < 0) continue;
        taken.add(j);
        resident.set(j, index);
        const b = outBases[j];
        residentBase.set(b, p);
        reqs[slotOf.get(b)!].bytes = 0;
        slotOf.set(b, slotOf.get(p)!);
        reqs[slotOf.get(p)!].last = end;
      }
    }
    this.resident = resident;
    const stagingSlots = pending.map((s, i) =>
      s.staging.map((bytes) => {
        reqs.push({ bytes, first: i, last: i });
        return reqs.length - 1;
      })
    );
    const { offsets, size } = planArena(reqs);
    // Threads only pay off for large matmuls: use the pool when one is worth splitting.
    const worthSplitting = (s: Pending) =>
      s.dot
        ? dotFlops(s.dot.layout) >= DOT_SPLIT_MIN_FLOPS
        : kind[s.p] === "attention" || (!!s.wasm && splittable(s.ir!));
    const pool = (opts.threads ?? true) && pending.some(worthSplitting)
      ? WorkerPool.shared()
      : null;
    const threads = pool?.threads ?? 1;
    // memory: [exp table][gemm scratch per thread][arena]
    const scratchStride = Math.ceil(scratchBytes / 64) * 64;
    const scratchBase = Math.ceil(EXP_TABLE_BYTES / 64) * 64;
    const arenaBase = scratchBase + threads * scratchStride;
    const total = arenaBase + size;
    if (total > MAX_ARENA_BYTES) {
      throw new ArenaTooLarge(
        `cpu: the compiled step needs ${(total / 2 ** 30).toFixed(2)} GiB of buffers, more ` +
          `than a wasm memory holds (${MAX_ARENA_BYTES / 2 ** 30} GiB); use a smaller batch`,
      );
    }
    const pages = Math.max(1, Math.ceil(total / 65536));
    const shared = pool !== null;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared });
    const buffer = memory.buffer;
    new Float64Array(buffer, 0, EXP_TABLE.length).set(EXP_TABLE);
    const addressOf = (p: number) => arenaBase + offsets[slotOf.get(baseOf(p))!];
    const views = new Map<number, TypedArray>();
    const viewOfBase = (b: number) => {
      let v = views.get(b);
      if (!v) views.set(b, v = viewOf(buffer, nodes[b], arenaBase + offsets[slotOf.get(b)!]));
      return v;
    };
    const tensor = this.#tensor = (p: number): HostTensor => {
      const t = nodes[p];
      return { shape: [...t.shape], dtype: t.dtype, data: viewOfBase(baseOf(p)) };
    };

    for (const [b, p] of residentBase) this.#residentViews.set(b, viewOfBase(p));

    // sources: constants are copied once; inputs at the start of each call
    for (let p = 0; p < nodes.length; p++) {
      if (role[p] !== "source" || reqs[slotOf.get(p)!].last < 0) continue;
      const t = nodes[p];
      if (isPrim(t, Primitive.Constant)) {
        viewOfBase(p).set(t.params.value.data);
      } else {
        const { index } = paramsOf(t, Primitive.Input);
        const returned = graph.outputs.some((o) => baseOf(pos(o)) === p);
        this.#inputs.push({ index, view: viewOfBase(p), returned });
      }
    }

    // ---- wasm SIMD for eligible elementwise groups, JS loops for the rest
    const wasmIrs = pending.filter((s) => s.wasm).map((s) => s.ir!);
    const wasm = buildWasmGroups(wasmIrs, memory, 0, shared);
    const module = gemmModule(shared);
    const { gemm, native } = gemmOn(memory, module, opts.nativeGemm ?? true);
    if (pool) {
      this.#pool = pool;
      const attention = pending.some((s) => kind[s.p] === "attention")
        ? attentionModule(shared)
        : null;
      this.#poolReady = pool.register(memory, module, wasm.module, native, attention);
    }
    let threadedLoops = 0;
    let threadedMatmuls = 0;
    let threadedAttention = 0;
    const threading = {
      pool,
      id: () => this.#poolId,
      scratchStride,
    };

    pending.forEach((s, i) => {
      const t = nodes[s.p];
      const staging = stagingSlots[i].map((slot) => arenaBase + offsets[slot]);
      let step: Step;
      let name: string;
      let split = false;
      if (s.ir && wasm.fns.has(s.ir)) {
        const { fn, name: exportName, extent } = wasm.fns.get(s.ir)!;
        const args = [addressOf(s.p), ...s.ir.leaves.map(addressOf), ...staging];
        const slices = pool && splittable(s.ir)
          ? loopSlices(Number(exportName.slice(1)), args, extent, pool.threads)
          : null;
        const whole = [...args, 0, extent];
        if (slices) {
          threadedLoops++;
          split = true;
          const local = (r: Int32Array) => fn(...args, r[F.q0], r[F.q1]);
          const site = new SplitSite();
          const unsplit = () => fn(...whole);
          step = () => {
            const id = this.#poolId;
            if (id !== null) pool!.job(id, site, slices, local, unsplit);
            else fn(...whole);
          };
        } else step = () => fn(...whole);
        name = `wasm:${t.prim}`;
      } else if (s.ir) {
        const k = jsKernel(s.ir);
        const args: unknown[] = [viewOfBase(s.p), ...k.leaves.map(viewOfBase)];
        if (k.scratch) args.push(new Float64Array(k.scratch));
        const fn = k.fn;
        step = () => fn.apply(null, args);
        name = `${kind[s.p]}:${t.prim}`;
      } else if (s.dot) {
        const d = dotStep(t, s.dot.operands, s.dot.layout, {
          memory,
          gemm,
          native,
          scratch: scratchBase,
          threading,
          out: addressOf(s.p),
          address: addressOf,
          staging,
          source: (p) => viewOfBase(p),
        });
        step = d.run;
        if (d.slices > 1) threadedMatmuls++;
        split = d.slices > 1;
        name = "dot_general";
      } else if (kind[s.p] === "attention") {
        const a = attentionStep(t, {
          memory,
          gemm,
          ins: t.inputs.map((x) => addressOf(pos(x))),
          out: addressOf(s.p),
          scratch: staging[0],
          gemmScratch: scratchBase,
          threading,
        });
        step = a.run;
        split = a.split;
        if (split) threadedAttention++;
        name = t.prim;
      } else if (t.prim === Primitive.AllReduceSum) {
        // Run by execute() with the other replicas (replicas.ts).
        const x = tensor(pos(t.inputs[0]));
        this.#collectives.set(i, { dtype: t.dtype, x: x.data, out: viewOfBase(s.p) });
        step = () => {
          throw new Error(
            `cpu: all_reduce_sum #${s.p} needs the other replicas (CpuBackend devices)`,
          );
        };
        name = "all_reduce_sum";
      } else {
        const kernel = kernelOf(t);
        const ins = t.inputs.map((x) => pos(x));
        const out = viewOfBase(s.p);
        step = () => out.set(kernel(t, ins.map(tensor)).data);
        name = `fallback:${t.prim}`;
      }
      this.#steps.push(step);
      this.#names.push(name);
      this.#details.push(`${name} ${t.dtype}[${t.shape}] #${s.p}${split ? " (split)" : ""}`);
    });

    const count = (k: string) => pending.filter((s) => kind[s.p] === k).length;
    this.stats = {
      nodes: nodes.length,
      fusedLoops: count("elementwise"),
      wasmLoops: pending.filter((s) => s.wasm && !s.ir!.reduce).length,
      reductions: count("reduce"),
      wasmReductions: pending.filter((s) => s.wasm && s.ir!.reduce).length,
      matmuls: count("dot"),
      threadedMatmuls,
      threadedLoops,
      attention: count("attention"),
      threadedAttention,
      threads,
      nativeGemm: native,
      fallbacks: count("fallback"),
      arenaBytes: total,
    };
  }

  /** `run`: this call is one replica of a replicated program (see replicas.ts). */
  async execute(
    args: readonly HostTensor[],
    run?: ReplicaRun,
    release?: readonly boolean[],
  ): Promise<HostTensor[]> {
    if (this.#poolReady) {
      // workers load this memory once; without them everything runs on this thread
      this.#poolId = await this.#poolReady;
      this.#poolReady = null;
      if (this.#poolId !== null) POOL_CLEANUP.register(this, this.#poolId, this);
    }
    for (const { index, view, returned } of this.#inputs) {
      // an output of the last call handed back as the input it was written over: in place
      if (args[index].data === view) continue;
      view.set(args[index].data);
      if (release?.[index] && !returned) releaseMemory(args[index].data);
    }
    const prof = this.profile, clock = this.profileClock;
    for (let i = 0; i < this.#steps.length; i++) {
      const c = run && this.#collectives.get(i);
      if (c) {
        c.out.set(await run.group.sum(run.replica, c.dtype, c.x));
        continue;
      }
      if (prof) {
        const t0 = clock();
        this.#steps[i]();
        const name = this.profileDetail ? this.#details[i] : this.#names[i];
        prof.set(name, (prof.get(name) ?? 0) + clock() - t0);
      } else this.#steps[i]();
    }
    return this.#outputs(args);
  }

  dispose(): void {
    if (this.#poolId !== null) {
      this.#pool!.unregister(this.#poolId);
      POOL_CLEANUP.unregister(this);
      this.#poolId = null;
    }
  }

  /** Outputs: inputs and constants are returned as they are, computed values copied out. */
  #outputs(args: readonly HostTensor[]): HostTensor[] {
    const { nodes, role, position } = this.#plan;
    const copies = new Map<number, TypedArray>();
    return this.#graph.outputs.map((o) => {
      let b = position.get(o.id)!;
      while (role[b] === "alias") b = position.get(nodes[b].inputs[0].id)!;
      const t = nodes[b];
      let src: HostTensor;
      if (isPrim(t, Primitive.Input)) {
        src = args[t.params.index];
      } else if (isPrim(t, Primitive.Constant)) {
        src = t.params.value;
      } else if (this.#residentViews.has(b)) {
        // the arena buffer itself, until the next call (CpuExecutable guards its owner)
        src = { shape: t.shape as number[], dtype: t.dtype, data: this.#residentViews.get(b)! };
      } else {
        let data = copies.get(b);
        if (!data) copies.set(b, data = this.#tensor(b).data.slice());
        src = { shape: t.shape as number[], dtype: t.dtype, data };
      }
      if (src.shape.length === o.shape.length && src.shape.every((d, i) => d === o.shape[i])) {
        return src;
      }
      return { shape: [...o.shape], dtype: o.dtype, data: src.data };
    });
  }
}

/**
 * Whether the elementwise loop `ir` reads buffer `p` only at the element it writes, so that
 * its output may overwrite `p` as it goes.
 */
function readsInPlace(ir: GroupIR | undefined, p: number): boolean {
  if (!ir || ir.reduce) return false;
  const leaf = ir.leaves.indexOf(p);
  if (leaf < 0) return true;
  return ir.stmts.every((s) => s.kind !== "load" || s.leaf !== leaf || s.lin === ir.outLin);
}
