/**
 * A loaded PJRT plugin: `dlopen`, `GetPjrtApi`, version and slot checks, `PJRT_Error` ->
 * `PjrtError`, event awaiting. One instance per plugin file per process (plugins are initialized
 * once and never unloaded: their threads outlive any handle).
 */
import { nvidiaLibraries } from "./discovery.ts";
import { PjrtError, PjrtPluginError } from "./errors.ts";
import { alignUp, type StructLayout } from "./layout.ts";
import {
  API_FIRST_SLOT_OFFSET,
  apiSizeNeededFor,
  ARGS_PADDING,
  ErrorCode,
  NamedValueType,
  PJRT_Api_Head,
  PJRT_Error_Destroy_Args,
  PJRT_Error_GetCode_Args,
  PJRT_Error_Message_Args,
  PJRT_Event_Await_Args,
  PJRT_Event_Destroy_Args,
  PJRT_HEADER_VERSION,
  PJRT_NamedValue,
  PJRT_Plugin_Attributes_Args,
  PJRT_Plugin_Initialize_Args,
  type SlotName,
  slotOffset,
  SLOTS,
} from "./pjrt_api.ts";
import { readString, StructBuffer } from "./struct_buffer.ts";

/** Oldest minor version whose `PJRT_Api` slot order matches ours (0.57 reordered the slots). */
export const MIN_SUPPORTED_MINOR = 57;

export type AttributeValue = string | number | bigint | bigint[] | boolean;

const ERROR_FN = { parameters: ["buffer"], result: "pointer" } as const;
const ERROR_FN_NONBLOCKING = {
  parameters: ["buffer"],
  result: "pointer",
  nonblocking: true,
} as const;
const VOID_FN = { parameters: ["buffer"], result: "void" } as const;

type ErrorFn = Deno.UnsafeFnPointer<typeof ERROR_FN>;
type ErrorFnNonblocking = Deno.UnsafeFnPointer<typeof ERROR_FN_NONBLOCKING>;
type VoidFn = Deno.UnsafeFnPointer<typeof VOID_FN>;

export class PjrtPlugin {
  /** `PJRT_Api.struct_size` as the plugin reports it. */
  readonly apiStructSize: number;
  /** The plugin's `PJRT_Api_Version`. */
  readonly apiVersion: { major: number; minor: number };
  /** Number of function pointers the plugin's `PJRT_Api` holds. */
  readonly numSlots: number;
  /**
   * NVIDIA libraries loaded before the plugin (`nvidiaLibraries`), and those that failed with
   * why; the plugin's own dlopen of a soname then finds the loaded copy.
   */
  readonly preloaded: { loaded: string[]; failed: string[] } = { loaded: [], failed: [] };
  /** `PJRT_Plugin_Attributes` (e.g. `xla_version`, `stablehlo_current_version`). */
  readonly attributes: Record<string, AttributeValue>;
  /**
   * The plugin's `sizeof(PJRT_NamedValue)`: C steps through arrays of them by its own sizeof, so
   * the client options we send use this stride. Learnt from its attributes' `struct_size` (a
   * newer header may have grown the struct); ours when it has none.
   */
  namedValueStride: number = PJRT_NamedValue.size;

  private readonly api: Deno.UnsafePointerView;
  private readonly syncFns = new Map<SlotName, ErrorFn>();
  private readonly asyncFns = new Map<SlotName, ErrorFnNonblocking>();
  private readonly voidFns = new Map<SlotName, VoidFn>();

  /** Loads (once per process) and initializes the plugin at `path`. */
  static load(path: string): PjrtPlugin {
    let real: string;
    try {
      real = Deno.realPathSync(path);
    } catch (e) {
      throw new PjrtPluginError(`PJRT plugin ${path} cannot be read: ${(e as Error).message}`);
    }
    let plugin = LOADED.get(real);
    if (!plugin) {
      const preloaded = preloadNvidiaLibraries(real);
      plugin = new PjrtPlugin(path, openLibrary(path));
      Object.assign(plugin.preloaded, preloaded);
      LOADED.set(real, plugin);
    }
    return plugin;
  }

  private constructor(readonly path: string, apiPtr: Deno.PointerObject) {
    this.api = new Deno.UnsafePointerView(apiPtr);
    this.apiStructSize = Number(this.api.getBigUint64(0));
    const versionOffset = PJRT_Api_Head.offsetOf("pjrt_api_version");
    this.apiVersion = {
      major: this.api.getInt32(versionOffset + 16),
      minor: this.api.getInt32(versionOffset + 20),
    };
    this.numSlots = Math.max(0, Math.floor((this.apiStructSize - API_FIRST_SLOT_OFFSET) / 8));
    const { major, minor } = this.apiVersion;
    if (major !== PJRT_HEADER_VERSION.major || minor < MIN_SUPPORTED_MINOR) {
      throw new PjrtPluginError(
        `PJRT plugin ${path} implements PJRT C API ${major}.${minor}; these bindings need ` +
          `${PJRT_HEADER_VERSION.major}.${MIN_SUPPORTED_MINOR} or newer (written from header ` +
          `${PJRT_HEADER_VERSION.major}.${PJRT_HEADER_VERSION.minor}). Install a newer plugin.`,
      );
    }
    this.call("PJRT_Plugin_Initialize", this.args(PJRT_Plugin_Initialize_Args));
    this.attributes = this.readAttributes();
  }

  /** A fresh args struct for a call: zero-filled, `struct_size` set, padded for newer plugins. */
  args(layout: StructLayout): StructBuffer {
    return new StructBuffer(layout, ARGS_PADDING);
  }

  /** Calls `slot` with `args`; a returned `PJRT_Error` becomes a thrown `PjrtError`. */
  call(slot: SlotName, args: StructBuffer, what?: string): void {
    this.throwIfError(this.errorFn(slot).call(args.bytes), what ?? slot);
  }

  /**
   * Calls a blocking `slot` on a Deno worker thread (`nonblocking`), so timers, I/O and data
   * loading keep running while the plugin works. `args` stays referenced until it returns.
   */
  async callNonblocking(slot: SlotName, args: StructBuffer, what?: string): Promise<void> {
    let fn = this.asyncFns.get(slot);
    if (!fn) {
      fn = this.bind(slot, ERROR_FN_NONBLOCKING);
      this.asyncFns.set(slot, fn);
    }
    const error = await fn.call(args.bytes);
    this.throwIfError(error, what ?? slot);
  }

  /** Awaits `event` off the JS thread, destroys it, and throws the error it carried, if any. */
  async awaitEvent(event: Deno.PointerValue, what: string): Promise<void> {
    if (event === null) return;
    let failure: { error: unknown } | null = null;
    try {
      await this.callNonblocking(
        "PJRT_Event_Await",
        this.args(PJRT_Event_Await_Args).setPtr("event", event),
        what,
      );
    } catch (error) {
      failure = { error };
    }
    try {
      this.destroyEvent(event);
    } catch (e) {
      // The event's own error says what went wrong; a failed destroy must not hide it.
      if (!failure) throw e;
    }
    if (failure) throw failure.error;
  }

  destroyEvent(event: Deno.PointerValue): void {
    if (event === null) return;
    this.call("PJRT_Event_Destroy", this.args(PJRT_Event_Destroy_Args).setPtr("event", event));
  }

  /** Throws `PjrtError` for a non-null `PJRT_Error*`, after reading and destroying it. */
  throwIfError(error: Deno.PointerValue, what: string): void {
    if (error === null) return;
    const messageArgs = this.args(PJRT_Error_Message_Args).setPtr("error", error);
    this.voidFn("PJRT_Error_Message").call(messageArgs.bytes);
    const message = readString(messageArgs.getPtr("message"), messageArgs.getSize("message_size"));
    const codeArgs = this.args(PJRT_Error_GetCode_Args).setPtr("error", error);
    const codeError = this.errorFn("PJRT_Error_GetCode").call(codeArgs.bytes);
    const code = codeError === null ? codeArgs.getI32("code") : ErrorCode.UNKNOWN;
    if (codeError !== null) this.destroyError(codeError);
    this.destroyError(error);
    throw new PjrtError(what, code, message);
  }

  /** True when the plugin's `PJRT_Api` holds a non-null pointer for `slot`. */
  has(slot: SlotName): boolean {
    return this.apiStructSize >= apiSizeNeededFor(slot) &&
      this.api.getBigUint64(slotOffset(slot)) !== 0n;
  }

  private destroyError(error: Deno.PointerValue): void {
    this.voidFn("PJRT_Error_Destroy").call(
      this.args(PJRT_Error_Destroy_Args).setPtr("error", error).bytes,
    );
  }

  private errorFn(slot: SlotName): ErrorFn {
    let fn = this.syncFns.get(slot);
    if (!fn) {
      fn = this.bind(slot, ERROR_FN);
      this.syncFns.set(slot, fn);
    }
    return fn;
  }

  private voidFn(slot: SlotName): VoidFn {
    let fn = this.voidFns.get(slot);
    if (!fn) {
      fn = this.bind(slot, VOID_FN);
      this.voidFns.set(slot, fn);
    }
    return fn;
  }

  private bind<const D extends Deno.ForeignFunction>(slot: SlotName, def: D) {
    const ptr = this.slotPointer(slot) as Deno.PointerObject<Omit<D, "nonblocking">>;
    return new Deno.UnsafeFnPointer(ptr, def);
  }

  /** The function pointer in `slot`, after checking it lies inside the plugin's `PJRT_Api`. */
  private slotPointer(slot: SlotName): Deno.PointerObject {
    const needed = apiSizeNeededFor(slot);
    const { major, minor } = this.apiVersion;
    if (this.apiStructSize < needed) {
      throw new PjrtPluginError(
        `PJRT plugin ${this.path} (API ${major}.${minor}) has ${this.numSlots} function slots ` +
          `(PJRT_Api.struct_size ${this.apiStructSize}); ${slot} is slot ${SLOTS[slot]} and ` +
          `needs struct_size >= ${needed}. Use a newer plugin.`,
      );
    }
    const address = this.api.getBigUint64(slotOffset(slot));
    const ptr = Deno.UnsafePointer.create(address);
    if (ptr === null) {
      throw new PjrtPluginError(
        `PJRT plugin ${this.path} (API ${major}.${minor}) does not implement ${slot} (null slot)`,
      );
    }
    return ptr;
  }

  private readAttributes(): Record<string, AttributeValue> {
    const out: Record<string, AttributeValue> = {};
    if (!this.has("PJRT_Plugin_Attributes")) return out;
    const a = this.args(PJRT_Plugin_Attributes_Args);
    this.call("PJRT_Plugin_Attributes", a);
    const base = a.getPtr("attributes");
    const count = a.getSize("num_attributes");
    if (base === null || count === 0) return out;
    const view = new Deno.UnsafePointerView(base);
    // Elements step by the plugin's sizeof(PJRT_NamedValue), from their struct_size (rounded up
    // to the struct's 8-byte alignment).
    const structSize = Number(view.getBigUint64(0));
    if (structSize < PJRT_NamedValue.structSize) {
      throw new PjrtPluginError(
        `PJRT plugin ${this.path}: its PJRT_Plugin_Attributes entries have struct_size ` +
          `${structSize}, below the ${PJRT_NamedValue.structSize} of PJRT_NamedValue`,
      );
    }
    const stride = alignUp(structSize, PJRT_NamedValue.align);
    this.namedValueStride = Math.max(stride, PJRT_NamedValue.size);
    const at = (field: string, i: number) => i * stride + PJRT_NamedValue.offsetOf(field);
    for (let i = 0; i < count; i++) {
      const name = readString(
        Deno.UnsafePointer.create(view.getBigUint64(at("name", i))),
        Number(view.getBigUint64(at("name_size", i))),
      );
      const type = view.getInt32(at("type", i));
      const valueSize = Number(view.getBigUint64(at("value_size", i)));
      const valueAt = at("value", i);
      switch (type) {
        case NamedValueType.String:
          out[name] = readString(
            Deno.UnsafePointer.create(view.getBigUint64(valueAt)),
            valueSize,
          );
          break;
        case NamedValueType.Int64:
          out[name] = view.getBigInt64(valueAt);
          break;
        case NamedValueType.Int64List: {
          const list = Deno.UnsafePointer.create(view.getBigUint64(valueAt));
          const items: bigint[] = [];
          if (list !== null) {
            const lv = new Deno.UnsafePointerView(list);
            for (let k = 0; k < valueSize; k++) items.push(lv.getBigInt64(k * 8));
          }
          out[name] = items;
          break;
        }
        case NamedValueType.Float:
          out[name] = view.getFloat32(valueAt);
          break;
        case NamedValueType.Bool:
          out[name] = view.getUint8(valueAt) !== 0;
          break;
      }
    }
    return out;
  }
}

const LOADED = new Map<string, PjrtPlugin>();
/** Preloaded libraries stay open for the life of the process, as the plugin does. */
const PRELOADED: Deno.DynamicLibrary<Record<string, never>>[] = [];

/**
 * Loads the CUDA libraries of NVIDIA's wheels next to the plugin, dependencies first, as jax
 * does before its CUDA plugin. A failure is recorded, not fatal: the plugin may still find the
 * library on its own search path (LD_LIBRARY_PATH, the system's CUDA).
 */
function preloadNvidiaLibraries(pluginPath: string): { loaded: string[]; failed: string[] } {
  const loaded: string[] = [], failed: string[] = [];
  for (const lib of nvidiaLibraries(pluginPath)) {
    try {
      PRELOADED.push(Deno.dlopen(lib, {}));
      loaded.push(lib);
    } catch (e) {
      failed.push(`${lib}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return { loaded, failed };
}

/** `dlopen`s `path` and returns `GetPjrtApi()`, with errors that say which step failed. */
function openLibrary(path: string): Deno.PointerObject {
  let lib: Deno.DynamicLibrary<{ GetPjrtApi: { parameters: []; result: "pointer" } }>;
  try {
    lib = Deno.dlopen(path, { GetPjrtApi: { parameters: [], result: "pointer" } } as const);
  } catch (e) {
    const message = (e as Error).message;
    if (/GetPjrtApi/.test(message)) {
      throw new PjrtPluginError(
        `${path} is not a PJRT plugin: it does not export GetPjrtApi (${message})`,
      );
    }
    throw new PjrtPluginError(`PJRT plugin ${path} could not be loaded: ${message}`);
  }
  const api = lib.symbols.GetPjrtApi();
  if (api === null) throw new PjrtPluginError(`PJRT plugin ${path}: GetPjrtApi() returned null`);
  return api;
}
