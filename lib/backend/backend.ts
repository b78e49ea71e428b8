import type { DType } from "../ir/dtype.ts";
import type { Graph } from "../ir/graph.ts";
import type { HostTensor } from "../ir/host_tensor.ts";

/**
 * An array owned by a backend (host memory, a GPU buffer, a PJRT buffer). Disposing it (`using`,
 * or `[Symbol.dispose]()`) frees it as `Backend.free` does. Using an array after it was freed, or
 * after it was donated to an execute call, is an error on every backend.
 */
export interface DeviceArray {
  readonly shape: readonly number[];
  readonly dtype: DType;
  [Symbol.dispose](): void;
}

/** A compiled graph. `donate[i]` lets the backend reuse input i's memory for outputs. */
export interface Executable {
  execute(
    args: readonly DeviceArray[],
    opts?: { donate?: readonly boolean[] },
  ): Promise<DeviceArray[]>;
  dispose(): void;
}

export interface CompileOptions {
  donate?: readonly boolean[];
}

/**
 * A backend only runs graphs: autodiff and the optimizer are already part of the graph it is
 * given. `cpu` is the reference semantics; the others must match it within stated tolerances.
 */
export interface Backend {
  readonly name: string;
  /** Human-readable device description for logs. */
  readonly description: string;
  /** `donate[i]`: input i may be consumed (its memory reused for outputs) at every execute. */
  compile(graph: Graph, opts?: CompileOptions): Promise<Executable>;
  fromHost(t: HostTensor): Promise<DeviceArray>;
  toHost(a: DeviceArray): Promise<HostTensor>;
  /** Frees the array's memory; using it afterwards is an error. Freeing twice, or a donated
   * array, does nothing. */
  free(a: DeviceArray): void;
  dispose(): void;
}
