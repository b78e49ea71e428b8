/** `PjrtBuffer`: one array in device memory, owned by JS until disposed (or donated). */
import { allocArray, byteSize, type DType } from "../lib/ir/dtype.ts";
import { type HostTensor, numel } from "../lib/ir/host_tensor.ts";
import { dtypeOfElementType } from "./element_type.ts";
import {
  PJRT_Buffer_Destroy_Args,
  PJRT_Buffer_Dimensions_Args,
  PJRT_Buffer_ElementType_Args,
  PJRT_Buffer_ReadyEvent_Args,
  PJRT_Buffer_ToHostBuffer_Args,
} from "./pjrt_api.ts";
import type { PjrtPlugin } from "./plugin.ts";

/** What a buffer needs from its client: the plugin, and the set of live objects to leave. */
export interface BufferOwner {
  readonly plugin: PjrtPlugin;
  readonly live: Set<Disposable>;
}

export class PjrtBuffer implements Disposable {
  #handle: Deno.PointerValue;
  #donated = false;
  #shape?: number[];
  #dtype?: DType;

  /** Wraps a `PJRT_Buffer*` that the caller now owns. */
  constructor(private readonly owner: BufferOwner, handle: Deno.PointerObject) {
    this.#handle = handle;
    owner.live.add(this);
  }

  /** The `PJRT_Buffer*`; throws if the buffer was disposed or donated to an execution. */
  get handle(): Deno.PointerObject {
    if (this.#handle === null) throw new Error("PjrtBuffer used after it was disposed");
    if (this.#donated) {
      throw new Error(
        "PjrtBuffer used after it was donated to an execution (its memory is reused)",
      );
    }
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === null;
  }

  get donated(): boolean {
    return this.#donated;
  }

  /** Dimensions, from `PJRT_Buffer_Dimensions`. */
  get shape(): number[] {
    if (!this.#shape) {
      const a = this.owner.plugin.args(PJRT_Buffer_Dimensions_Args).setPtr("buffer", this.handle);
      this.owner.plugin.call("PJRT_Buffer_Dimensions", a);
      const n = a.getSize("num_dims");
      const dims = a.getPtr("dims");
      const shape: number[] = [];
      if (n > 0 && dims !== null) {
        const view = new Deno.UnsafePointerView(dims);
        for (let i = 0; i < n; i++) shape.push(Number(view.getBigInt64(i * 8)));
      }
      this.#shape = shape;
    }
    return [...this.#shape];
  }

  /** Element type, from `PJRT_Buffer_ElementType`. */
  get dtype(): DType {
    if (!this.#dtype) {
      const a = this.owner.plugin.args(PJRT_Buffer_ElementType_Args).setPtr("buffer", this.handle);
      this.owner.plugin.call("PJRT_Buffer_ElementType", a);
      this.#dtype = dtypeOfElementType(a.getI32("type"), "PjrtBuffer.dtype");
    }
    return this.#dtype;
  }

  /** Resolves when the buffer's contents are computed (rejects with the execution's error). */
  async ready(): Promise<void> {
    const plugin = this.owner.plugin;
    const a = plugin.args(PJRT_Buffer_ReadyEvent_Args).setPtr("buffer", this.handle);
    plugin.call("PJRT_Buffer_ReadyEvent", a);
    await plugin.awaitEvent(a.getPtr("event"), "PJRT_Buffer_ReadyEvent (await)");
  }

  /** Copies the buffer to a new row-major host tensor (waits for the value off the JS thread). */
  async toHost(): Promise<HostTensor> {
    const plugin = this.owner.plugin;
    const shape = this.shape;
    const dtype = this.dtype;
    const data = allocArray(dtype, numel(shape));
    const expected = data.byteLength;

    const query = plugin.args(PJRT_Buffer_ToHostBuffer_Args).setPtr("src", this.handle);
    plugin.call("PJRT_Buffer_ToHostBuffer", query, "PJRT_Buffer_ToHostBuffer (size query)");
    const size = query.getSize("dst_size");
    if (size !== expected) {
      throw new Error(
        `PjrtBuffer.toHost: the plugin needs ${size} bytes for ${dtype}[${shape}], expected ` +
          `${expected} (${numel(shape)} x ${byteSize(dtype)}); non-dense layouts are not supported`,
      );
    }
    if (expected === 0) return { shape, dtype, data };
    const copy = plugin.args(PJRT_Buffer_ToHostBuffer_Args)
      .setPtr("src", this.handle)
      .setPtr("dst", data)
      .setU64("dst_size", expected);
    plugin.call("PJRT_Buffer_ToHostBuffer", copy);
    // `data` stays referenced by this frame until the copy's event has fired.
    await plugin.awaitEvent(copy.getPtr("event"), "PJRT_Buffer_ToHostBuffer (await)");
    return { shape, dtype, data };
  }

  /** Marks the buffer as consumed by an execution; only disposal is allowed afterwards. */
  markDonated(): void {
    this.#donated = true;
  }

  /** `PJRT_Buffer_Destroy`. Safe to call twice. */
  [Symbol.dispose](): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    this.owner.live.delete(this);
    this.owner.plugin.call(
      "PJRT_Buffer_Destroy",
      this.owner.plugin.args(PJRT_Buffer_Destroy_Args).setPtr("buffer", handle),
    );
  }
}
