import type { DType } from "../ir/dtype.ts";
import type { Graph } from "../ir/graph.ts";
import type { HostTensor } from "../ir/host_tensor.ts";

/** An array owned by a backend (host memory, a GPU buffer, a PJRT buffer). */
export interface DeviceArray {
  readonly shape: readonly number[];
  readonly dtype: DType;
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
  /** Frees the array's memory; using it afterwards is an error. */
  free(a: DeviceArray): void;
  dispose(): void;
}
