/**
 * The WebGPU backend: runs traced graphs as fused WGSL kernels through `navigator.gpu`
 * (Vulkan, Metal or DX12 GPUs, and Mesa llvmpipe on CPU-only Linux). Arrays stay on the device
 * between steps; only `toHost` reads back, asynchronously.
 */
import type { DType } from "../../ir/dtype.ts";
import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import type { Backend, DeviceArray, Executable } from "../backend.ts";
import { checkPerDevice, replicasOf } from "../replicas.ts";
import { bindingSlots } from "./bindings.ts";
import type { GeneratedKernel } from "./codegen.ts";
import { type DeviceOptions, type GpuContext, requestContext } from "./device.ts";
import { GpuExecutable } from "./executable.ts";
import { BufferPool, type PooledBuffer } from "./pool.ts";
import { fromWords, toWords, WORD } from "./storage.ts";
import { ByteWidener } from "./widen.ts";

/** An array in a GPU storage buffer. `using` (or `backend.free`) returns its memory. */
export class GpuArray implements DeviceArray {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly backend: WebGpuBackend;
  #storage: PooledBuffer | undefined;

  constructor(
    backend: WebGpuBackend,
    shape: readonly number[],
    dtype: DType,
    storage: PooledBuffer,
  ) {
    this.backend = backend;
    this.shape = [...shape];
    this.dtype = dtype;
    this.#storage = storage;
  }

  get size(): number {
    return this.shape.reduce((p, d) => p * d, 1);
  }

  get freed(): boolean {
    return this.#storage === undefined;
  }

  /** The buffer; throws once the array was freed or donated. */
  storage(what = "array"): PooledBuffer {
    if (!this.#storage) {
      throw new Error(`webgpu: ${what} (${this.dtype}[${this.shape}]) was freed or donated`);
    }
    return this.#storage;
  }

  /** Detaches the buffer (the array becomes unusable) and returns it. */
  take(): PooledBuffer {
    const s = this.storage();
    this.#storage = undefined;
    return s;
  }

  [Symbol.dispose](): void {
    this.backend.free(this);
  }
}

export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  /** One adapter, one replica: data-parallel programs need the cpu or pjrt backend. */
  readonly devices = 1;
  readonly replicas = 1;
  readonly ctx: GpuContext;
  readonly pool: BufferPool;
  readonly #pipelines = new Map<string, GPUComputePipeline>();
  readonly #layouts = new Map<string, GPUBindGroupLayout>();
  readonly #widener: ByteWidener;
  #error: Error | undefined;
  #disposed = false;

  private constructor(ctx: GpuContext) {
    this.ctx = ctx;
    this.pool = new BufferPool(ctx.device);
    this.#widener = new ByteWidener(ctx);
    ctx.device.addEventListener("uncapturederror", (e) => {
      this.#error ??= new Error(`webgpu: ${(e as GPUUncapturedErrorEvent).error.message}`);
    });
    ctx.device.lost.then((info) => {
      if (!this.#disposed) {
        this.#error ??= new Error(`webgpu: device lost (${info.reason}): ${info.message}`);
      }
    });
  }

  /** Opens the default adapter; throws a clear error when there is none. */
  static async create(opts: DeviceOptions = {}): Promise<WebGpuBackend> {
    return new WebGpuBackend(await requestContext(opts));
  }

  get description(): string {
    const i = this.ctx.adapterInfo;
    const kind = this.ctx.cpuAdapter ? "CPU adapter" : "GPU";
    return `WebGPU ${kind}: ${
      i.description || i.vendor || "unknown adapter"
    } (matmul ${this.ctx.tuning.matmul})`;
  }

  async compile(graph: Graph): Promise<Executable> {
    this.#check();
    const r = replicasOf(graph);
    if (r !== 1) {
      throw new Error(
        `webgpu: the program all-reduces over ${r} replicas; the WebGPU backend runs one ` +
          "device (use --backend cpu or pjrt for --devices > 1)",
      );
    }
    return await GpuExecutable.create(this.#execHost(), graph);
  }

  fromHostPerDevice(ts: readonly HostTensor[]): Promise<DeviceArray> {
    checkPerDevice(ts, 1);
    return this.fromHost(ts[0]);
  }

  async toHostPerDevice(a: DeviceArray): Promise<HostTensor[]> {
    return [await this.toHost(a)];
  }

  fromHost(t: HostTensor): Promise<DeviceArray> {
    this.#check();
    if ((t.dtype === "u8" || t.dtype === "bool") && t.data.length > 0) {
      // Sent as bytes and widened to words on the device (4x less to upload, no host loop).
      const storage = this.pool.acquire(t.data.length * WORD);
      const bytes = t.data instanceof Uint8Array ? t.data : Uint8Array.from(t.data);
      this.#widener.upload(bytes, storage, this.pool);
      return Promise.resolve(new GpuArray(this, t.shape, t.dtype, storage));
    }
    const words = toWords(t);
    const storage = this.pool.acquire(Math.max(words.length, 1) * WORD);
    if (words.length) this.ctx.device.queue.writeBuffer(storage.buffer, 0, words);
    return Promise.resolve(new GpuArray(this, t.shape, t.dtype, storage));
  }

  async toHost(a: DeviceArray): Promise<HostTensor> {
    this.#check();
    const arr = this.#own(a, "toHost");
    const size = arr.size;
    const bytes = Math.max(size, 1) * WORD;
    const { device } = this.ctx;
    const staging = device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    try {
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(arr.storage("toHost").buffer, 0, staging, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      this.#check();
      const data = fromWords(staging.getMappedRange().slice(0), a.dtype, size);
      staging.unmap();
      return { shape: [...a.shape], dtype: a.dtype, data };
    } finally {
      staging.destroy();
    }
  }

  free(a: DeviceArray): void {
    const arr = this.#own(a, "free");
    if (!arr.freed) this.pool.release(arr.take());
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.pool.dispose();
    this.ctx.device.destroy();
  }

  /** Pipelines for generated kernels, compiled once per distinct WGSL source. */
  async pipelines(kernels: GeneratedKernel[]): Promise<GPUComputePipeline[]> {
    const { device } = this.ctx;
    const fresh: { code: string; module: GPUShaderModule; label: string }[] = [];
    device.pushErrorScope("validation");
    const out = kernels.map((k) => {
      let p = this.#pipelines.get(k.code);
      if (!p) {
        const module = device.createShaderModule({ code: k.code, label: k.label });
        p = device.createComputePipeline({
          label: k.label,
          layout: device.createPipelineLayout({
            bindGroupLayouts: [this.#layout(k.bindings, k.outputs)],
          }),
          compute: { module, entryPoint: "main" },
        });
        this.#pipelines.set(k.code, p);
        fresh.push({ code: k.code, module, label: k.label });
      }
      return p;
    });
    const err = await device.popErrorScope();
    if (err) {
      for (const f of fresh) this.#pipelines.delete(f.code);
      for (const f of fresh) {
        const info = await f.module.getCompilationInfo();
        const errors = info.messages.filter((m) => m.type === "error");
        if (errors.length) {
          throw new Error(
            `webgpu: WGSL for kernel ${f.label} failed to compile: ${errors[0].message}\n${
              numbered(f.code)
            }`,
          );
        }
      }
      throw new Error(`webgpu: pipeline creation failed: ${err.message}`);
    }
    return out;
  }

  /** Outputs read-write, reads read-only storage; one entry per window of a large binding. */
  #layout(bindings: GeneratedKernel["bindings"], outputs: number): GPUBindGroupLayout {
    const slots = bindingSlots(bindings, this.ctx.tuning.chunks);
    const types = slots.flatMap((n, i) =>
      Array(n).fill(i < outputs ? "storage" : "read-only-storage")
    );
    const key = types.join(",");
    let l = this.#layouts.get(key);
    if (!l) {
      l = this.ctx.device.createBindGroupLayout({
        entries: types.map((type, i) => ({
          binding: i,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type } as GPUBufferBindingLayout,
        })),
      });
      this.#layouts.set(key, l);
    }
    return l;
  }

  #execHost() {
    return {
      ctx: this.ctx,
      pool: this.pool,
      pipelines: (k: GeneratedKernel[]) => this.pipelines(k),
      storageOf: (a: DeviceArray, what: string) => this.#own(a, what).storage(what),
      wrap: (shape: readonly number[], dtype: DType, s: PooledBuffer) =>
        new GpuArray(this, shape, dtype, s),
      consume: (a: DeviceArray) => this.#own(a, "donate").take(),
    };
  }

  #own(a: DeviceArray, what: string): GpuArray {
    if (!(a instanceof GpuArray) || a.backend !== this) {
      throw new Error(
        `webgpu: ${what}: not an array of this WebGPU backend (${a?.dtype}[${a?.shape}])`,
      );
    }
    return a;
  }

  #check(): void {
    if (this.#disposed) throw new Error("webgpu: backend used after dispose()");
    if (this.#error) throw this.#error;
  }
}

function numbered(code: string): string {
  return code.split("\n").map((l, i) => `${String(i + 1).padStart(4)} ${l}`).join("\n");
}
