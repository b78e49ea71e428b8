import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import type { Backend, CompileOptions, DeviceArray, Executable } from "../backend.ts";
import { CpuArray, cpuArray, CpuExecutable, type HostExecutable } from "./array.ts";
import { ArenaTooLarge, FusedExecutable } from "./executable.ts";
import { InterpretedExecutable } from "./interpreter.ts";
import { threadCount } from "./threads.ts";
import { gemmDescription } from "./dot.ts";
import { checkPerDevice, replicasOf } from "../replicas.ts";
import type { ProcessSum } from "./cross_process.ts";

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
  /**
   * A multi-process job (cross_process.ts): programs run as devices x processes replicas, this
   * process's `devices` of them here, summed with the others' over TCP at each all-reduce.
   */
  processes?: ProcessSum;
}

/** The CPU backend: runs graphs over TypedArrays on the host. */
export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly description: string;
  readonly mode: "fused" | "reference";
  readonly #exactMath: boolean;
  readonly #threads: boolean;
  readonly devices: number;
  readonly #processes: ProcessSum | undefined;

  constructor(opts: CpuBackendOptions = {}) {
    const devices = opts.devices ?? 1;
    if (!Number.isInteger(devices) || devices < 1) {
      throw new Error(`cpu: devices must be a positive integer, got ${devices}`);
    }
    this.devices = devices;
    this.#processes = opts.processes;
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
    const P = opts.processes?.processCount ?? 1;
    if (P > 1) this.description += ` (x ${P} processes, all-reduce over TCP)`;
  }

  /** The replicas of a program: this backend's devices, in each process of the job. */
  get replicas(): number {
    return this.devices * (this.#processes?.processCount ?? 1);
  }

  compile(graph: Graph, opts?: CompileOptions): Promise<Executable> {
    const r = replicasOf(graph);
    if (r !== 1 && r !== this.replicas) {
      return Promise.reject(
        new Error(
          `cpu: the program all-reduces over ${r} replicas but the backend has ${this.replicas} ` +
            `device${this.replicas > 1 ? "s" : ""} (CpuBackend devices / --devices ${r})`,
        ),
      );
    }
    const replicas = Array.from(
      { length: this.devices },
      () => this.#hostExecutable(graph, opts?.donate),
    );
    // A program without all-reduces runs on its own in each process.
    const processes = r > 1 ? this.#processes : undefined;
    return Promise.resolve(new CpuExecutable(replicas, opts?.donate, processes));
  }

  /**
   * `t` as an array without a copy, on a one-device backend: the array takes over `t`'s memory,
   * which the caller must neither change nor use again (for state handed over once, such as
   * freshly initialized parameters, whose host copy would otherwise sit beside the arena's).
   */
  adopt(t: HostTensor): DeviceArray {
    if (this.devices !== 1) return new CpuArray(t.shape, t.dtype, t.data.slice(), true);
    return new CpuArray(t.shape, t.dtype, t.data, true);
  }

  /** `t` copied to every device. */
  fromHost(t: HostTensor): Promise<DeviceArray> {
    return this.fromHostPerDevice(Array.from({ length: this.devices }, () => t));
  }

  fromHostPerDevice(ts: readonly HostTensor[]): Promise<DeviceArray> {
    checkPerDevice(ts, this.devices);
    return Promise.resolve(
      new CpuArray(ts[0].shape, ts[0].dtype, ts.map((t) => t.data.slice()), true),
    );
  }

  async toHost(a: DeviceArray): Promise<HostTensor> {
    return (await this.toHostPerDevice(a))[0];
  }

  toHostPerDevice(a: DeviceArray): Promise<HostTensor[]> {
    const arr = cpuArray(a, "toHost");
    if (arr.devices !== this.devices) {
      return Promise.reject(
        new Error(
          `cpu toHost: ${a.dtype}[${a.shape}] has ${arr.devices} device copies, the backend ` +
            `runs ${this.devices} devices`,
        ),
      );
    }
    return Promise.resolve(
      arr.hostParts("toHost").map((t) => ({
        shape: [...t.shape],
        dtype: t.dtype,
        data: t.data.slice(),
      })),
    );
  }

  free(a: DeviceArray): void {
    cpuArray(a, "free").free();
  }

  dispose(): void {}

  #hostExecutable(graph: Graph, donate?: readonly boolean[]): HostExecutable {
    if (this.mode === "reference") return new InterpretedExecutable(graph);
    try {
      return new FusedExecutable(graph, {
        exactMath: this.#exactMath,
        threads: this.#threads,
        donate,
      });
    } catch (e) {
      // Too large for one wasm memory: the interpreter keeps buffers in the JS heap.
      if (e instanceof ArenaTooLarge) return new InterpretedExecutable(graph);
      throw e;
    }
  }
}

function envMode(): string | undefined {
  try {
    return Deno.env.get("DEIT3_CPU");
  } catch {
    return undefined; // no --allow-env
  }
}
