import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import type { Backend, CompileOptions, DeviceArray, Executable } from "../backend.ts";
import { CpuArray, cpuArray, CpuExecutable, type HostExecutable } from "./array.ts";
import { ArenaTooLarge, FusedExecutable } from "./executable.ts";
import { InterpretedExecutable } from "./interpreter.ts";
import { threadCount } from "./threads.ts";
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
}

/** The CPU backend: runs graphs over TypedArrays on the host. */
export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly description: string;
  readonly mode: "fused" | "reference";
  readonly #exactMath: boolean;
  readonly #threads: boolean;

  constructor(opts: CpuBackendOptions = {}) {
    this.mode = opts.mode ?? (envMode() === "reference" ? "reference" : "fused");
    this.#exactMath = opts.exactMath ?? false;
    this.#threads = opts.threads ?? true;
    const threads = this.#threads ? threadCount() : 1;
    this.description = this.mode === "fused"
      ? `CPU (fused wasm SIMD loops, ${gemmDescription()}, ${threads} thread${
        threads > 1 ? "s" : ""
      })`
      : "CPU reference interpreter (TypedArrays)";
  }

  compile(graph: Graph, opts?: CompileOptions): Promise<Executable> {
    return Promise.resolve(new CpuExecutable(this.#hostExecutable(graph), opts?.donate));
  }

  fromHost(t: HostTensor): Promise<DeviceArray> {
    return Promise.resolve(new CpuArray(t.shape, t.dtype, t.data.slice()));
  }

  toHost(a: DeviceArray): Promise<HostTensor> {
    const t = cpuArray(a, "toHost").host("toHost");
    return Promise.resolve({ shape: [...t.shape], dtype: t.dtype, data: t.data.slice() });
  }

  free(a: DeviceArray): void {
    cpuArray(a, "free").free();
  }

  dispose(): void {}

  #hostExecutable(graph: Graph): HostExecutable {
    if (this.mode === "reference") return new InterpretedExecutable(graph);
    try {
      return new FusedExecutable(graph, { exactMath: this.#exactMath, threads: this.#threads });
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
