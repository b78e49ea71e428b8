/**
 * The CPU backend's device arrays and the executable wrapper that enforces their lifetimes.
 * Host memory would let a program keep reading an array after it was freed or donated; here
 * such a use throws, naming the array and what happened to it, so that the CPU backend is the
 * strictest one and misuse shows on a laptop rather than on a TPU (where a donated buffer holds
 * an output after the call).
 *
 * With N virtual devices (replicas.ts) an array holds one copy per device, and an executable
 * runs one per-device program on each, in lockstep.
 */
import type { DType, TypedArray } from "../../ir/dtype.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import type { DeviceArray, Executable } from "../backend.ts";
import { ReplicaGroup, type ReplicaRun } from "./replicas.ts";
import type { ProcessSum } from "./cross_process.ts";

/**
 * What the CPU executables run on: host tensors in, host tensors out; `run` when the call is
 * one replica of several.
 */
export interface HostExecutable {
  /**
   * `release[i]`: argument i is donated and its memory belongs to no one else, so the
   * executable may free it (`releaseMemory`) once it has read it.
   */
  execute(
    args: readonly HostTensor[],
    run?: ReplicaRun,
    release?: readonly boolean[],
  ): Promise<HostTensor[]>;
  dispose(): void;
  /**
   * Output index -> input index: outputs returned as views of the executable's own memory,
   * written over that (donated) input's buffer; the next call overwrites them.
   */
  readonly resident?: ReadonlyMap<number, number>;
}

export type CpuArrayState = "live" | "freed" | "donated";

export class CpuArray implements DeviceArray {
  readonly shape: readonly number[];
  #parts: readonly TypedArray[];
  #state: CpuArrayState = "live";

  /**
   * Wraps `data`, or one array per device (not copied: the executables never write into an
   * array they return). `owned`: the memory is this array's alone (an upload's copy, or adopted),
   * so an executable it is donated to may free it once read.
   */
  constructor(
    shape: readonly number[],
    readonly dtype: DType,
    data: TypedArray | readonly TypedArray[],
    readonly owned = false,
  ) {
    this.shape = [...shape];
    this.#parts = Array.isArray(data) ? [...data] : [data as TypedArray];
  }

  /** Devices holding a copy. */
  get devices(): number {
    return this.#parts.length;
  }

  get state(): CpuArrayState {
    return this.#state;
  }

  /** Device `device`'s copy as a host tensor; throws once it was freed or donated. */
  host(what: string, device = 0): HostTensor {
    if (this.#state !== "live") {
      const why = this.#state === "donated"
        ? "was donated to an earlier execute (its memory belongs to that call's outputs)"
        : "was freed";
      throw new Error(`cpu ${what}: the array ${this.dtype}[${this.shape}] ${why}`);
    }
    return { shape: this.shape as number[], dtype: this.dtype, data: this.#parts[device] };
  }

  /** Every device's copy. */
  hostParts(what: string): HostTensor[] {
    return this.#parts.map((_, d) => this.host(what, d));
  }

  /**
   * Moves the data into memory of its own (a copy), leaving the executable memory it was a
   * view of (an executable's resident output that the next call will overwrite).
   */
  detach(): void {
    if (this.#state === "live") this.#parts = this.#parts.map((p) => p.slice());
  }

  /** Ends the array's life; freeing twice, or after donation, does nothing. */
  free(): void {
    if (this.#state === "live") this.#state = "freed";
  }

  /** Marks the array consumed by an execute call. */
  donate(): void {
    this.host("donate");
    this.#state = "donated";
  }

  [Symbol.dispose](): void {
    this.free();
  }

  toString(): string {
    return `CpuArray(${this.dtype}[${this.shape}], ${this.#state})`;
  }
}

/** `a` as a CPU array; throws for arrays of another backend. */
export function cpuArray(a: DeviceArray, what: string): CpuArray {
  if (!(a instanceof CpuArray)) {
    throw new Error(`cpu ${what}: ${a.dtype}[${a.shape}] is not an array of the CPU backend`);
  }
  return a;
}

/**
 * An executable over CPU arrays: checks that every argument is live, runs `replicas` (one
 * per-device program per device, in lockstep with real cross-replica sums when there are
 * several), wraps each output in a fresh array, then marks the donated arguments (compile-time
 * `donate`, or the call's) as consumed, as a backend that reuses their memory would.
 */
export class CpuExecutable implements Executable {
  /**
   * Per resident output (HostExecutable.resident): the array last returned for it, a view of
   * the replicas' memory until the next call writes that output again.
   */
  readonly #lent = new Map<number, CpuArray>();

  constructor(
    readonly replicas: readonly HostExecutable[],
    readonly donate: readonly boolean[] = [],
    /** A multi-process job: each all-reduce also sums the other processes' replicas. */
    readonly processes?: ProcessSum,
  ) {}

  async execute(
    args: readonly DeviceArray[],
    opts?: { donate?: readonly boolean[] },
  ): Promise<DeviceArray[]> {
    const n = this.replicas.length;
    const arrays = args.map((a, i) => {
      const arr = cpuArray(a, `execute argument ${i}`);
      if (arr.devices !== n) {
        throw new Error(
          `cpu execute argument ${i}: ${arr.dtype}[${arr.shape}] has ${arr.devices} device ` +
            `cop${arr.devices === 1 ? "y" : "ies"}, the backend runs ${n} devices`,
        );
      }
      return arr;
    });
    const donates = (i: number) => !!(this.donate[i] || opts?.donate?.[i]);
    for (const [i, a] of arrays.entries()) a.host(`execute argument ${i}`); // all live
    // Arrays still viewing the memory this call writes keep their values in a copy, unless
    // they come back donated as the very input whose buffer they are (then nothing moves).
    const resident = this.replicas[0].resident;
    const consumed: CpuArray[] = [];
    for (const [j, i] of resident ?? []) {
      const a = this.#lent.get(j);
      if (!a) continue;
      this.#lent.delete(j);
      if (arrays[i] === a && donates(i)) consumed.push(a);
      else a.detach();
    }
    const host = arrays.map((a, i) => a.hostParts(`execute argument ${i}`));
    // Donated arrays whose memory is their own are freed once copied in: on a step's first
    // call the host copy of the training state would otherwise sit beside the executable's
    // until the garbage collector found it (the bench's ViT-S/16 step: 250 MB of peak RSS).
    const release = n === 1 && !this.processes
      ? arrays.map((a, i) =>
        a.owned && donates(i) && arrays.indexOf(a) === i && !arrays.includes(a, i + 1)
      )
      : undefined;
    let outs: HostTensor[][];
    try {
      outs = await this.#run(host, release);
    } catch (e) {
      // their memory may be half overwritten, or freed
      for (const a of consumed) a.donate();
      arrays.forEach((a, i) => {
        if (release?.[i] && a.state === "live") a.donate();
      });
      throw e;
    }
    const donated = new Set<CpuArray>();
    arrays.forEach((a, i) => {
      if (donates(i)) donated.add(a);
    });
    for (const a of donated) a.donate();
    const result = outs[0].map((o, k) =>
      new CpuArray(o.shape, o.dtype, outs.map((row) => row[k].data))
    );
    for (const j of resident?.keys() ?? []) this.#lent.set(j, result[j]);
    return result;
  }

  async #run(host: HostTensor[][], release?: readonly boolean[]): Promise<HostTensor[][]> {
    const n = this.replicas.length;
    let outs: HostTensor[][];
    if (n === 1 && !this.processes) {
      outs = [await this.replicas[0].execute(host.map((p) => p[0]), undefined, release)];
    } else {
      const group = new ReplicaGroup(n, this.processes);
      outs = await Promise.all(this.replicas.map(async (exe, r) => {
        try {
          return await exe.execute(host.map((p) => p[r]), { replica: r, group });
        } catch (e) {
          group.abort(e as Error);
          throw e;
        }
      }));
    }
    return outs;
  }

  dispose(): void {
    for (const a of this.#lent.values()) a.detach();
    this.#lent.clear();
    for (const r of this.replicas) r.dispose();
  }
}

/**
 * Frees `data`'s memory now (its buffer detached, as `transfer(0)` leaves it), where `data` is the
 * whole of an ordinary ArrayBuffer; the caller owns it and reads it no more.
 */
export function releaseMemory(data: TypedArray): void {
  const b = data.buffer;
  if (b instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === b.byteLength) {
    b.transfer(0);
  }
}
