/**
 * `PjrtArray`: the PJRT backend's device array. It holds one `PjrtBuffer` per local replica
 * (one device per replica), all with the per-replica shape the program sees.
 */
import type { DType } from "../../ir/dtype.ts";
import type { PjrtBuffer } from "../../../ffi/buffer.ts";
import type { DeviceArray } from "../backend.ts";

export class PjrtArray implements DeviceArray {
  #buffers: PjrtBuffer[] | null;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    buffers: PjrtBuffer[],
  ) {
    this.#buffers = buffers;
  }

  /** One buffer per local replica; throws once the array is freed or donated. */
  get buffers(): PjrtBuffer[] {
    if (this.#buffers === null) throw new Error(`PjrtArray ${this} used after it was freed`);
    const donated = this.#buffers.some((b) => b.donated);
    if (donated) {
      throw new Error(
        `PjrtArray ${this} was donated to an execution (its memory now holds an output)`,
      );
    }
    return this.#buffers;
  }

  get freed(): boolean {
    return this.#buffers === null;
  }

  /** Destroys every replica's buffer. Safe to call twice and after donation. */
  free(): void {
    const buffers = this.#buffers;
    this.#buffers = null;
    for (const b of buffers ?? []) b[Symbol.dispose]();
  }

  [Symbol.dispose](): void {
    this.free();
  }

  toString(): string {
    return `${this.dtype}[${this.shape}]`;
  }
}
