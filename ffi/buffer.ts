/** `PjrtBuffer`: one array in device memory, owned by JS until disposed (or donated). */
import {
  elementByteSize,
  elementCount,
  elementTypeName,
  type PjrtHostBuffer,
} from "./element_type.ts";
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
  #dims?: number[];
  #elementType?: number;

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
  get dims(): number[] {
    if (!this.#dims) {
      const a = this.owner.plugin.args(PJRT_Buffer_Dimensions_Args).setPtr("buffer", this.handle);
      this.owner.plugin.call("PJRT_Buffer_Dimensions", a);
      const n = a.getSize("num_dims");
      const dims = a.getPtr("dims");
      const out: number[] = [];
      if (n > 0 && dims !== null) {
        const view = new Deno.UnsafePointerView(dims);
        for (let i = 0; i < n; i++) out.push(Number(view.getBigInt64(i * 8)));
      }
      this.#dims = out;
    }
    return [...this.#dims];
  }

  /** `PJRT_Buffer_Type` code (`BufferType`), from `PJRT_Buffer_ElementType`. */
  get elementType(): number {
    if (this.#elementType === undefined) {
      const a = this.owner.plugin.args(PJRT_Buffer_ElementType_Args).setPtr("buffer", this.handle);
      this.owner.plugin.call("PJRT_Buffer_ElementType", a);
      this.#elementType = a.getI32("type");
    }
    return this.#elementType;
  }

  /** Resolves when the buffer's contents are computed (rejects with the execution's error). */
  async ready(): Promise<void> {
    const plugin = this.owner.plugin;
    const a = plugin.args(PJRT_Buffer_ReadyEvent_Args).setPtr("buffer", this.handle);
    plugin.call("PJRT_Buffer_ReadyEvent", a);
    await plugin.awaitEvent(a.getPtr("event"), "PJRT_Buffer_ReadyEvent (await)");
  }

  /**
   * Copies the buffer into fresh host bytes, dense and row-major (waits for the value off the
   * JS thread).
   */
  async toHost(): Promise<PjrtHostBuffer & { data: Uint8Array<ArrayBuffer> }> {
    const plugin = this.owner.plugin;
    const dims = this.dims;
    const elementType = this.elementType;
    const query = plugin.args(PJRT_Buffer_ToHostBuffer_Args).setPtr("src", this.handle);
    plugin.call("PJRT_Buffer_ToHostBuffer", query, "PJRT_Buffer_ToHostBuffer (size query)");
    const size = query.getSize("dst_size");
    const width = elementByteSize(elementType);
    const expected = width === undefined ? size : elementCount(dims) * width;
    if (size !== expected) {
      throw new Error(
        `PjrtBuffer.toHost: the plugin needs ${size} bytes for ${elementTypeName(elementType)}` +
          `[${dims}], expected ${expected} (${elementCount(dims)} x ${width}); non-dense ` +
          "layouts are not supported",
      );
    }
    const data = new Uint8Array(expected);
    if (expected === 0) return { elementType, dims, data };
    const copy = plugin.args(PJRT_Buffer_ToHostBuffer_Args)
      .setPtr("src", this.handle)
      .setPtr("dst", data)
      .setU64("dst_size", expected);
    plugin.call("PJRT_Buffer_ToHostBuffer", copy);
    // `data` stays referenced by this frame until the copy's event has fired.
    await plugin.awaitEvent(copy.getPtr("event"), "PJRT_Buffer_ToHostBuffer (await)");
    return { elementType, dims, data };
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
