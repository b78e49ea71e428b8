/**
 * The CPU backend's device arrays and the executable wrapper that enforces their lifetimes.
 * Host memory would let a program keep reading an array after it was freed or donated; here
 * such a use throws, naming the array and what happened to it, so that the CPU backend is the
 * strictest one and misuse shows on a laptop rather than on a TPU (where a donated buffer holds
 * an output after the call).
 */
import type { DType, TypedArray } from "../../ir/dtype.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import type { DeviceArray, Executable } from "../backend.ts";

/** What the CPU executables run on: host tensors in, host tensors out. */
export interface HostExecutable {
  execute(args: readonly HostTensor[]): Promise<HostTensor[]>;
  dispose(): void;
}

export type CpuArrayState = "live" | "freed" | "donated";

export class CpuArray implements DeviceArray {
  readonly shape: readonly number[];
  readonly #data: TypedArray;
  #state: CpuArrayState = "live";

  /** Wraps `data` (not copied: the executables never write into an array they return). */
  constructor(shape: readonly number[], readonly dtype: DType, data: TypedArray) {
    this.shape = [...shape];
    this.#data = data;
  }

  get state(): CpuArrayState {
    return this.#state;
  }

  /** The array as a host tensor; throws once it was freed or donated. */
  host(what: string): HostTensor {
    if (this.#state !== "live") {
      const why = this.#state === "donated"
        ? "was donated to an earlier execute (its memory belongs to that call's outputs)"
        : "was freed";
      throw new Error(`cpu ${what}: the array ${this.dtype}[${this.shape}] ${why}`);
    }
    return { shape: this.shape as number[], dtype: this.dtype, data: this.#data };
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
 * An executable over CPU arrays: checks that every argument is live, runs `inner`, wraps each
 * output in a fresh array, then marks the donated arguments (compile-time `donate`, or the
 * call's) as consumed, as a backend that reuses their memory would.
 */
export class CpuExecutable implements Executable {
  constructor(
    readonly inner: HostExecutable,
    readonly donate: readonly boolean[] = [],
  ) {}

  async execute(
    args: readonly DeviceArray[],
    opts?: { donate?: readonly boolean[] },
  ): Promise<DeviceArray[]> {
    const arrays = args.map((a, i) => cpuArray(a, `execute argument ${i}`));
    const host = arrays.map((a, i) => a.host(`execute argument ${i}`));
    const outs = await this.inner.execute(host);
    const donated = new Set<CpuArray>();
    arrays.forEach((a, i) => {
      if (this.donate[i] || opts?.donate?.[i]) donated.add(a);
    });
    for (const a of donated) a.donate();
    return outs.map((o) => new CpuArray(o.shape, o.dtype, o.data));
  }

  dispose(): void {
    this.inner.dispose();
  }
}
