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
 *
 * Data parallel: every program runs once per local device, as one replica of a program whose
 * `all_reduce_sum`s add over all `replicas` (every device of every process). A backend refuses
 * a program whose all-reduces are for another replica count. Arrays hold one value per local
 * device: `fromHost` copies a value to every device, `fromHostPerDevice` gives each its own, and
 * `toHost` reads device 0 (replicated state is the same on all).
 */
export interface Backend {
  readonly name: string;
  /** Human-readable device description for logs. */
  readonly description: string;
  /** Local devices: each program runs once on each (1 unless data parallel). */
  readonly devices: number;
  /** Replicas of a program, all processes together (`devices` x processes). */
  readonly replicas: number;
  /** `donate[i]`: input i may be consumed (its memory reused for outputs) at every execute. */
  compile(graph: Graph, opts?: CompileOptions): Promise<Executable>;
  /** `t` on every local device. */
  fromHost(t: HostTensor): Promise<DeviceArray>;
  /** `ts[d]` on local device d (`ts.length === devices`, one shape and dtype). */
  fromHostPerDevice(ts: readonly HostTensor[]): Promise<DeviceArray>;
  /** Device 0's value. */
  toHost(a: DeviceArray): Promise<HostTensor>;
  /** Every local device's value, in device order. */
  toHostPerDevice(a: DeviceArray): Promise<HostTensor[]>;
  /** Frees the array's memory; using it afterwards is an error. Freeing twice, or a donated
   * array, does nothing. */
  free(a: DeviceArray): void;
  dispose(): void;
}
