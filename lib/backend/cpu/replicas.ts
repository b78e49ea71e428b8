/**
 * Virtual devices on the CPU backend: `new CpuBackend({ devices: N })` runs every program as N
 * replicas in this process, like XLA's `--xla_force_host_platform_device_count`. Each replica
 * has its own compiled executable (its own arena); they run in lockstep, and each
 * `all_reduce_sum` is a real cross-replica sum: every replica waits at its k-th all-reduce
 * until all N have reached theirs, then all receive the same sum (added in f32, in replica
 * order, as XLA's CPU all-reduce does). With a ProcessSum (cross_process.ts) the sum also runs
 * over the replicas of the other processes of a multi-process job.
 */
import type { DType, TypedArray } from "../../ir/dtype.ts";
import { addInOrder } from "./add_in_order.ts";
import type { ProcessSum } from "./cross_process.ts";

/** What a replica's executable needs to take part in the cross-replica sums of one call. */
export interface ReplicaRun {
  replica: number;
  group: ReplicaGroup;
}

/** The all-reduces of one replicated execute call. */
export class ReplicaGroup {
  readonly #calls: number[];
  readonly #pending = new Map<number, Meeting>();
  #error: Error | undefined;

  /** `size` local replicas; `processes`: the other processes' replicas join each sum. */
  constructor(readonly size: number, readonly processes?: ProcessSum) {
    this.#calls = new Array(size).fill(0);
  }

  /**
   * Replica `replica`'s contribution to its next all-reduce; resolves with the sum over all
   * replicas (one array shared by every replica: do not modify it).
   */
  sum(replica: number, dtype: DType, data: TypedArray): Promise<TypedArray> {
    if (this.#error) return Promise.reject(this.#error);
    if (dtype !== "f32" && dtype !== "i32" && dtype !== "u32") {
      return Promise.reject(new Error(`cpu all_reduce_sum: ${dtype} is not supported`));
    }
    const k = this.#calls[replica]++;
    let m = this.#pending.get(k);
    if (!m) {
      const { promise, resolve, reject } = Promise.withResolvers<TypedArray>();
      m = { parts: new Array(this.size), arrived: 0, promise, resolve, reject };
      this.#pending.set(k, m);
    }
    if (m.parts[replica] !== undefined) {
      throw new Error("cpu all_reduce_sum: replica arrived twice");
    }
    m.parts[replica] = data;
    if (++m.arrived === this.size) {
      this.#pending.delete(k);
      const n = data.length;
      if (m.parts.some((p) => p.length !== n)) {
        m.reject(new Error(`cpu all_reduce_sum #${k}: the replicas disagree on the size`));
      } else if (this.processes) {
        const meeting = m;
        this.processes.sum(dtype, meeting.parts).then(meeting.resolve, (e) => {
          meeting.reject(e);
          this.abort(e);
        });
      } else m.resolve(addInOrder(dtype, m.parts));
    }
    return m.promise;
  }

  /** Fails every replica waiting at an all-reduce (one replica failed; the rest cannot meet it). */
  abort(e: Error): void {
    this.#error ??= e;
    for (const m of this.#pending.values()) m.reject(this.#error);
    this.#pending.clear();
  }
}

interface Meeting {
  parts: TypedArray[];
  arrived: number;
  promise: Promise<TypedArray>;
  resolve: (v: TypedArray) => void;
  reject: (e: Error) => void;
}
