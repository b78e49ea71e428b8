import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import type { Backend, DeviceArray, Executable } from "../backend.ts";
import { ArenaTooLarge, FusedExecutable } from "./executable.ts";
import { InterpretedExecutable } from "./interpreter.ts";
import { threadCount } from "./threads.ts";
import { CpuReplicaArray, type ReplicaExecutable, ReplicatedExecutable } from "./replicas.ts";
import { checkPerDevice, replicasOf } from "../replicas.ts";
import { gemmDescription } from "./dot.ts";

export interface CpuBackendOptions {
  /**
   * `fused` (default): fused JS loops and wasm SIMD matmuls over a planned arena.
   * `reference`: the node-by-node interpreter over kernels.ts, the semantics the fused
   * executor is tested against. The environment variable DEIT3_CPU=reference selects it too.
   */
  mode?: "fused" | "reference";
  /**
   * Fused mode: compute exp and tanh with Math.exp / Math.tanh (bit-identical to the
   * reference) rather than the wasm SIMD versions, which may differ by one f32 ulp in rare
   * cases. Default false.
   */
  exactMath?: boolean;
  /**
   * Fused mode: split large matmuls and loops across worker threads (default true). The
   * thread count comes from DEIT3_CPU_THREADS, else the number of cores (at most 8).
   */
  threads?: boolean;
  /**
   * Virtual devices (default 1): every program runs as this many replicas, with a real
   * cross-replica sum at each all_reduce_sum (replicas.ts), like XLA's host platform device
   * count.
   */
  devices?: number;
}

/** The CPU backend: runs graphs over TypedArrays on the host. */
export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly description: string;
  readonly mode: "fused" | "reference";
  readonly #exactMath: boolean;
  readonly #threads: boolean;
  readonly devices: number;

  constructor(opts: CpuBackendOptions = {}) {
    const devices = opts.devices ?? 1;
    if (!Number.isInteger(devices) || devices < 1) {
      throw new Error(`cpu: devices must be a positive integer, got ${devices}`);
    }
    this.devices = devices;
    this.mode = opts.mode ?? (envMode() === "reference" ? "reference" : "fused");
    this.#exactMath = opts.exactMath ?? false;
    this.#threads = opts.threads ?? true;
    const threads = this.#threads ? threadCount() : 1;
    this.description = this.mode === "fused"
      ? `CPU (fused wasm SIMD loops, ${gemmDescription()}, ${threads} thread${
        threads > 1 ? "s" : ""
      })`
      : "CPU reference interpreter (TypedArrays)";
    if (devices > 1) this.description += `, ${devices} virtual devices`;
  }

  /** One process: the replicas of a program are this backend's devices. */
  get replicas(): number {
    return this.devices;
  }

  compile(graph: Graph): Promise<Executable> {
    const r = replicasOf(graph);
    if (r !== 1 && r !== this.devices) {
      return Promise.reject(
        new Error(
          `cpu: the program all-reduces over ${r} replicas but the backend has ${this.devices} ` +
            `device${this.devices > 1 ? "s" : ""} (CpuBackend devices / --devices ${r})`,
        ),
      );
    }
    if (this.devices === 1) return Promise.resolve(this.#compileOne(graph));
    const replicas = Array.from({ length: this.devices }, () => this.#compileOne(graph));
    return Promise.resolve(new ReplicatedExecutable(replicas));
  }

  #compileOne(graph: Graph): ReplicaExecutable {
    if (this.mode === "reference") return new InterpretedExecutable(graph);
    try {
      return new FusedExecutable(graph, { exactMath: this.#exactMath, threads: this.#threads });
    } catch (e) {
      // Too large for one wasm memory: the interpreter keeps buffers in the JS heap.
      if (e instanceof ArenaTooLarge) return new InterpretedExecutable(graph);
      throw e;
    }
  }

  /** One device: the array is a host copy; N devices: a copy per device. */
  fromHost(t: HostTensor): Promise<DeviceArray> {
    return this.fromHostPerDevice(Array.from({ length: this.devices }, () => t));
  }

  fromHostPerDevice(ts: readonly HostTensor[]): Promise<DeviceArray> {
    checkPerDevice(ts, this.devices);
    const copies = ts.map((t) => ({ shape: [...t.shape], dtype: t.dtype, data: t.data.slice() }));
    if (this.devices === 1) return Promise.resolve(copies[0]);
    return Promise.resolve(new CpuReplicaArray(copies[0].shape, copies[0].dtype, copies));
  }

  async toHost(a: DeviceArray): Promise<HostTensor> {
    return (await this.toHostPerDevice(a))[0];
  }

  toHostPerDevice(a: DeviceArray): Promise<HostTensor[]> {
    const parts = a instanceof CpuReplicaArray ? a.parts : [a as HostTensor];
    if (parts.length !== this.devices || !parts.every((t) => "data" in t)) {
      return Promise.reject(
        new Error(`cpu: ${a.dtype}[${a.shape}] is not an array of this backend's devices`),
      );
    }
    return Promise.resolve(
      parts.map((t) => ({ shape: [...t.shape], dtype: t.dtype, data: t.data.slice() })),
    );
  }

  free(_a: DeviceArray): void {}

  dispose(): void {}
}

function envMode(): string | undefined {
  try {
    return Deno.env.get("DEIT3_CPU");
  } catch {
    return undefined; // no --allow-env
  }
}
