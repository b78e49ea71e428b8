/**
 * A compiled graph on WebGPU: the planned kernels with their pipelines, constants uploaded
 * once, and a static memory plan that gives intermediates reusable slots. `execute` records
 * every kernel of the step into one compute pass of one command encoder and submits once; it
 * returns as soon as the work is queued, so steps can queue while the GPU runs.
 */
import type { Graph } from "../../ir/graph.ts";
import { Primitive } from "../../ir/primitive.ts";
import { paramsOf, type Tensor } from "../../ir/tensor.ts";
import type { DeviceArray, Executable } from "../backend.ts";
import type { GeneratedKernel } from "./codegen.ts";
import type { GpuContext } from "./device.ts";
import {
  checkMemory,
  type CompiledPlan,
  compilePlan,
  type Loc,
  type MemoryReport,
} from "./memory.ts";
import type { BufferPool, PooledBuffer } from "./pool.ts";
import { toWords, WORD } from "./storage.ts";

/** What an executable needs from its backend. */
export interface ExecHost {
  ctx: GpuContext;
  pool: BufferPool;
  pipelines(kernels: GeneratedKernel[]): Promise<GPUComputePipeline[]>;
  storageOf(a: DeviceArray, what: string): PooledBuffer;
  wrap(shape: readonly number[], dtype: Tensor["dtype"], storage: PooledBuffer): DeviceArray;
  consume(a: DeviceArray): PooledBuffer;
}

/** One call's buffers resolved: records kernels and output copies. */
interface Run {
  record(pass: GPUComputePassEncoder, kernel: number): void;
  copies(encoder: GPUCommandEncoder): void;
  outputs(): DeviceArray[];
}

interface Step {
  kernel: GeneratedKernel;
  pipeline: GPUComputePipeline;
  bindGroups: Map<string, GPUBindGroup>;
}

export class GpuExecutable implements Executable {
  readonly #host: ExecHost;
  readonly #graph: Graph;
  readonly #steps: Step[];
  readonly #loc: Map<number, Loc>;
  readonly #slotSizes: number[];
  readonly #slots: (PooledBuffer | undefined)[];
  readonly #constants: Map<number, PooledBuffer>;
  /** Outputs filled by a copy after the pass: [output index, source node]. */
  readonly #copies: [number, Tensor][];
  readonly #memory: MemoryReport;
  #disposed = false;

  private constructor(
    host: ExecHost,
    graph: Graph,
    steps: Step[],
    plan: CompiledPlan,
    constants: Map<number, PooledBuffer>,
  ) {
    this.#host = host;
    this.#graph = graph;
    this.#steps = steps;
    this.#loc = plan.loc;
    this.#slotSizes = plan.slotSizes;
    this.#slots = plan.slotSizes.map(() => undefined);
    this.#constants = constants;
    this.#copies = plan.copies;
    this.#memory = plan.memory;
  }

  static async create(host: ExecHost, graph: Graph): Promise<GpuExecutable> {
    const { ctx } = host;
    const plan = compilePlan(graph, ctx);
    checkMemory(plan.memory, ctx.memoryBytes);
    const pipelines = await host.pipelines(plan.kernels);
    const steps = plan.kernels.map((kernel, i) => ({
      kernel,
      pipeline: pipelines[i],
      bindGroups: new Map<string, GPUBindGroup>(),
    }));
    const constants = new Map<number, PooledBuffer>();
    for (const l of plan.loc.values()) {
      if (l.kind !== "constant") continue;
      const n = paramsOf(l.node, Primitive.Constant);
      const buffer = host.pool.acquire(l.node.size * WORD);
      ctx.device.queue.writeBuffer(buffer.buffer, 0, toWords(n.value));
      constants.set(l.node.id, buffer);
    }
    return new GpuExecutable(host, plan.graph, steps, plan, constants);
  }

  /** The bytes this program holds on the device per run (see `MemoryReport`). */
  get memory(): MemoryReport {
    return this.#memory;
  }

  /** Kernels per step and the WGSL of each, for tests and profiling. */
  get kernels(): readonly GeneratedKernel[] {
    return this.#steps.map((s) => s.kernel);
  }

  execute(
    args: readonly DeviceArray[],
    opts?: { donate?: readonly boolean[] },
  ): Promise<DeviceArray[]> {
    let run: Run;
    try {
      run = this.prepare(args);
    } catch (e) {
      return Promise.reject(e);
    }
    const { device } = this.#host.ctx;
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (let i = 0; i < this.#steps.length; i++) run.record(pass, i);
    pass.end();
    run.copies(encoder);
    device.queue.submit([encoder.finish()]);
    const donate = opts?.donate;
    if (donate) {
      const seen = new Set<DeviceArray>();
      args.forEach((a, i) => {
        if (!donate[i] || seen.has(a)) return;
        seen.add(a);
        this.#host.pool.release(this.#host.consume(a));
      });
    }
    return Promise.resolve(run.outputs());
  }

  /**
   * Per-kernel device times for profiling, from timestamp queries around one compute pass per
   * kernel (each dispatched `reps` times). Without the timestamp feature, wall time per
   * submission instead. Slow; the normal path is `execute`. Returns the outputs too.
   */
  async profile(
    args: readonly DeviceArray[],
    reps = 3,
  ): Promise<{ outputs: DeviceArray[]; kernels: { label: string; ms: number }[] }> {
    const run = this.prepare(args);
    const { device } = this.#host.ctx;
    const n = this.#steps.length;
    const kernels: { label: string; ms: number }[] = [];
    if (device.features.has("timestamp-query")) {
      const querySet = device.createQuerySet({ type: "timestamp", count: 2 * n });
      const resolve = device.createBuffer({
        size: 16 * n,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const staging = device.createBuffer({
        size: 16 * n,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const encoder = device.createCommandEncoder();
      for (let i = 0; i < n; i++) {
        const pass = encoder.beginComputePass({
          timestampWrites: {
            querySet,
            beginningOfPassWriteIndex: 2 * i,
            endOfPassWriteIndex: 2 * i + 1,
          },
        });
        for (let r = 0; r < reps; r++) run.record(pass, i);
        pass.end();
      }
      encoder.resolveQuerySet(querySet, 0, 2 * n, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, staging, 0, 16 * n);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(staging.getMappedRange());
      for (let i = 0; i < n; i++) {
        const ms = Number(t[2 * i + 1] - t[2 * i]) / 1e6 / reps;
        kernels.push({ label: this.#steps[i].kernel.label, ms });
      }
      staging.unmap();
      staging.destroy();
      resolve.destroy();
      querySet.destroy();
    } else {
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        for (let r = 0; r < reps; r++) run.record(pass, i);
        pass.end();
        device.queue.submit([encoder.finish()]);
        await device.queue.onSubmittedWorkDone();
        kernels.push({ label: this.#steps[i].kernel.label, ms: (performance.now() - t0) / reps });
      }
    }
    const encoder = device.createCommandEncoder();
    run.copies(encoder);
    device.queue.submit([encoder.finish()]);
    return { outputs: run.outputs(), kernels };
  }

  /** Resolves every buffer of one call: arguments, fresh outputs, slots and constants. */
  prepare(args: readonly DeviceArray[]): Run {
    if (this.#disposed) throw new Error("webgpu: executable used after dispose()");
    const { inputs, outputs } = this.#graph;
    const host = this.#host;
    if (args.length !== inputs.length) {
      throw new Error(`webgpu: executable takes ${inputs.length} arrays, got ${args.length}`);
    }
    const argBuffers = args.map((a, i) => {
      const spec = inputs.find((n) => paramsOf(n, Primitive.Input).index === i);
      if (
        spec && (a.dtype !== spec.dtype || a.shape.length !== spec.shape.length ||
          a.shape.some((d, k) => d !== spec.shape[k]))
      ) {
        throw new Error(
          `webgpu: argument ${i} is ${a.dtype}[${a.shape}], compiled for ${spec.dtype}[${spec.shape}]`,
        );
      }
      return host.storageOf(a, `argument ${i}`);
    });
    const outBuffers = outputs.map((o) => host.pool.acquire(Math.max(o.size, 1) * WORD));
    const bufferOf = (n: Tensor): PooledBuffer => {
      const l = this.#loc.get(n.id);
      if (!l) throw new Error(`webgpu: no storage planned for ${n}`);
      switch (l.kind) {
        case "input":
          return argBuffers[l.index];
        case "constant":
          return this.#constants.get(n.id)!;
        case "output":
          return outBuffers[l.index];
        case "slot":
          return this.#slots[l.slot] ??= host.pool.acquire(this.#slotSizes[l.slot], true);
      }
    };
    return {
      record: (pass, i) => {
        const step = this.#steps[i];
        pass.setPipeline(step.pipeline);
        pass.setBindGroup(0, this.#bindGroup(step, step.kernel.bindings.map(bufferOf)));
        pass.dispatchWorkgroups(...step.kernel.workgroups);
      },
      copies: (encoder) => {
        for (const [j, node] of this.#copies) {
          if (node.size === 0) continue;
          const src = bufferOf(node).buffer;
          encoder.copyBufferToBuffer(src, 0, outBuffers[j].buffer, 0, node.size * WORD);
        }
      },
      outputs: () => outputs.map((o, j) => host.wrap(o.shape, o.dtype, outBuffers[j])),
    };
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const c of this.#constants.values()) this.#host.pool.release(c);
    for (const s of this.#slots) if (s) this.#host.pool.release(s);
    this.#slots.fill(undefined);
  }

  #bindGroup(step: Step, bufs: PooledBuffer[]): GPUBindGroup {
    const key = bufs.map((b) => b.id).join(",");
    let bg = step.bindGroups.get(key);
    if (bg) return bg;
    if (step.bindGroups.size >= 8) step.bindGroups.clear();
    const { chunkBytes } = this.#host.ctx.tuning.chunks;
    const entries: GPUBindGroupEntry[] = [];
    bufs.forEach((b, i) => {
      const node = step.kernel.bindings[i];
      const bytes = Math.max(node.size, 1) * WORD;
      // Outputs bind their exact size (kernels bound-check with arrayLength); reads round up
      // to 16 bytes so they may be read as vec4 arrays. Large ones bind as windows.
      const total = i < step.kernel.outputs ? bytes : Math.min(b.size, Math.ceil(bytes / 16) * 16);
      for (let offset = 0; offset < total; offset += chunkBytes) {
        entries.push({
          binding: entries.length,
          resource: { buffer: b.buffer, offset, size: Math.min(chunkBytes, total - offset) },
        });
      }
    });
    bg = this.#host.ctx.device.createBindGroup({
      layout: step.pipeline.getBindGroupLayout(0),
      entries,
    });
    step.bindGroups.set(key, bg);
    return bg;
  }
}
