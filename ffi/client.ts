/**
 * PJRT client: runs StableHLO programs on TPUs (libtpu) and NVIDIA GPUs (the jax CUDA plugin)
 * through Deno FFI.
 *
 * Call sequence (every PJRT function takes one args struct and returns a `PJRT_Error*`):
 *  1. `findPjrtPlugin` (discovery.ts): `--pjrt-plugin`, `PJRT_PLUGIN_PATH`, site-packages, ...
 *  2. `PjrtPlugin.load` (plugin.ts): `dlopen`, `GetPjrtApi()`, version check,
 *     `PJRT_Plugin_Initialize` (once per process), `PJRT_Plugin_Attributes`.
 *  2b. The CUDA libraries of NVIDIA's wheels next to a jax plugin are loaded first, as jax
 *     does (discovery.ts `nvidiaLibraries`).
 *  3. `PJRT_Client_Create` with `PJRT_NamedValue` options (typed as the CUDA plugin declares
 *     them; the array steps by the plugin's sizeof) and, for a process of a multi-host job on a
 *     plugin that joins hosts itself (CUDA, not libtpu), `node_id`/`num_nodes` and the
 *     key-value callbacks of kv_callbacks.ts; run `nonblocking` (a TPU pod waits for every host
 *     here), then `PlatformName`, `Devices`, `AddressableDevices` and each device's
 *     description (id, kind, process index), logged once.
 *  4. `compile`: `PJRT_Client_Compile` of MLIR text with a hand-encoded `CompileOptionsProto`
 *     (proto.ts), `nonblocking`; `GetExecutable` + `NumOutputs` (+ `Executable_Destroy`), and
 *     `LoadedExecutable_AddressableDevices`: the order `execute` takes device argument lists.
 *  5. `bufferFromHost`: `PJRT_Client_BufferFromHostBuffer` with "immutable until transfer
 *     completes"; the `done_with_host_buffer` event is awaited (host array kept alive until
 *     then) and destroyed.
 *  6. `PjrtExecutable.execute`: `PJRT_LoadedExecutable_Execute` with `argument_lists[device]
 *     [arg]`, caller-allocated `output_lists`, and `non_donatable_input_indices` for every
 *     argument not donated.
 *  7. `PjrtBuffer.toHost`: `PJRT_Buffer_ToHostBuffer` once to learn the size, once to copy,
 *     then the event is awaited (`nonblocking`) and destroyed.
 *  8. `[Symbol.dispose]` on buffers, executables and the client (`*_Destroy`); disposing the
 *     client first destroys whatever buffers and executables are still alive.
 * Errors become `PjrtError` (code + the plugin's message); unusable plugins `PjrtPluginError`.
 */
import { PjrtBuffer } from "./buffer.ts";
import { type DiscoveryOptions, findPjrtPlugin, type PluginSource } from "./discovery.ts";
import {
  elementByteSize,
  elementCount,
  elementTypeName,
  type PjrtHostBuffer,
} from "./element_type.ts";
import { PjrtExecutable } from "./executable.ts";
import { type KeyValueStore, KvCallbacks } from "./kv_callbacks.ts";
import {
  HostBufferSemantics,
  NamedValueType,
  PJRT_Client_AddressableDevices_Args,
  PJRT_Client_BufferFromHostBuffer_Args,
  PJRT_Client_Compile_Args,
  PJRT_Client_Create_Args,
  PJRT_Client_Destroy_Args,
  PJRT_Client_Devices_Args,
  PJRT_Client_PlatformName_Args,
  PJRT_Client_PlatformVersion_Args,
  PJRT_Client_ProcessIndex_Args,
  PJRT_Device_GetDescription_Args,
  PJRT_DeviceDescription_DebugString_Args,
  PJRT_DeviceDescription_Id_Args,
  PJRT_DeviceDescription_Kind_Args,
  PJRT_DeviceDescription_ProcessIndex_Args,
  PJRT_NamedValue,
  PJRT_Program,
} from "./pjrt_api.ts";
import { type CompileOptions, encodeCompileOptions } from "./proto.ts";
import { type AttributeValue, PjrtPlugin } from "./plugin.ts";
import { readPointers, readString, StructBuffer, utf8 } from "./struct_buffer.ts";

/**
 * A `PJRT_Client_Create` option. A number is sent as the type the CUDA plugin declares for the
 * option's name (`OPTION_TYPES`: `memory_fraction` = 1 is the float 1.0, not an int64 it would
 * refuse); for other names integers go as int64 and the rest as float. `{ float }` /
 * `{ int64 }` force the type.
 */
export type ClientOptionValue =
  | string
  | boolean
  | number
  | bigint
  | bigint[]
  | { float: number }
  | { int64: number | bigint };

/**
 * The option types the CUDA plugin checks (`kExpectedOptionNameAndTypes` in
 * xla/pjrt/c/pjrt_c_api_gpu_internal.cc): a known name with another type is refused.
 */
export const OPTION_TYPES: Record<string, number> = {
  platform_name: NamedValueType.String,
  allocator: NamedValueType.String,
  memory_fraction: NamedValueType.Float,
  preallocate: NamedValueType.Bool,
  collective_memory_size: NamedValueType.Int64,
  visible_devices: NamedValueType.Int64List,
  node_id: NamedValueType.Int64,
  num_nodes: NamedValueType.Int64,
};

/** One process of a multi-process job, for `OpenOptions.job`. */
export interface JobProcess {
  processIndex: number;
  processCount: number;
  /** The job's key-value store (process 0's coordinator; lib/backend/pjrt/kv_bridge.ts). */
  keyValueStore: KeyValueStore;
}

export interface OpenOptions {
  /** `--pjrt-plugin PATH`; otherwise discovery decides (see discovery.ts). */
  pluginPath?: string;
  /** Platform-specific client options (see `cudaClientOptions`); none needed for TPU. */
  options?: Record<string, ClientOptionValue>;
  /**
   * A key-value store shared by the job's processes, for plugins that need one to find their
   * peers (`kv_get/put/try_get_callback`); see kv_callbacks.ts. Kept until the client is
   * disposed.
   */
  keyValueStore?: KeyValueStore;
  /**
   * This process's place in a multi-process job. Plugins that join hosts themselves through a
   * key-value store (the CUDA and ROCm plugins; `joinsThroughKeyValueStore`) get the
   * `node_id` and `num_nodes` options and the job's store, as jax does; libtpu finds its peers
   * from the TPU VM's metadata and gets neither.
   */
  job?: JobProcess;
  /** Where the start-up lines (plugin, platform, devices) go. Default `console.log`. */
  log?: (line: string) => void;
  /** Overrides for plugin discovery (environment, search prefixes). */
  discovery?: Omit<DiscoveryOptions, "pluginPath">;
}

export interface PjrtDevice {
  /** Global device id (`PJRT_DeviceDescription_Id`); used in device assignments. */
  id: number;
  /** Process that owns the device. */
  processIndex: number;
  /** e.g. "NVIDIA H200", "TPU v4". */
  kind: string;
  debugString: string;
  /** True when this process can place buffers on it. */
  addressable: boolean;
  /** Position in `client.devices` (addressable devices), or -1. */
  index: number;
  handle: Deno.PointerObject;
}

/** `PJRT_Client_Create` options for the CUDA plugin. */
export function cudaClientOptions(o: {
  /** "default" | "platform" | "bfc" | "cuda_async". */
  allocator?: string;
  /** Fraction of GPU memory to preallocate/limit to, e.g. 0.75. */
  memoryFraction?: number;
  preallocate?: boolean;
}): Record<string, ClientOptionValue> {
  const out: Record<string, ClientOptionValue> = {};
  if (o.allocator !== undefined) out.allocator = o.allocator;
  if (o.memoryFraction !== undefined) out.memory_fraction = { float: o.memoryFraction };
  if (o.preallocate !== undefined) out.preallocate = o.preallocate;
  return out;
}

export class PjrtClient implements Disposable {
  readonly platformName: string;
  readonly platformVersion: string;
  readonly processIndex: number;
  /** Devices this process can use, in the plugin's order; `bufferFromHost` indexes these. */
  readonly devices: PjrtDevice[];
  /** Every device of the (possibly multi-host) platform. */
  readonly allDevices: PjrtDevice[];
  /** Buffers and executables not yet disposed; destroyed with the client. */
  readonly live = new Set<Disposable>();
  #handle: Deno.PointerValue;
  #kv: KvCallbacks | null = null;

  /** Finds and loads the plugin, creates a client, and logs platform and devices. */
  static async open(o: OpenOptions = {}): Promise<PjrtClient> {
    const found = findPjrtPlugin({ ...o.discovery, pluginPath: o.pluginPath });
    const plugin = PjrtPlugin.load(found.path);
    const join = o.job && o.job.processCount > 1 && joinsThroughKeyValueStore(found.path)
      ? o.job
      : undefined;
    const options = join
      ? { ...o.options, node_id: join.processIndex, num_nodes: join.processCount }
      : o.options ?? {};
    const store = o.keyValueStore ?? join?.keyValueStore;
    const kv = store ? await KvCallbacks.start(store) : null;
    let client: PjrtClient;
    try {
      const handle = await createClient(plugin, options, kv);
      try {
        client = new PjrtClient(plugin, handle);
      } catch (e) {
        plugin.call(
          "PJRT_Client_Destroy",
          plugin.args(PJRT_Client_Destroy_Args).setPtr("client", handle),
        );
        throw e;
      }
    } catch (e) {
      kv?.[Symbol.dispose]();
      throw e;
    }
    client.#kv = kv;
    client.logStartup(o.log ?? console.log, found.source);
    return client;
  }

  private constructor(readonly plugin: PjrtPlugin, handle: Deno.PointerObject) {
    this.#handle = handle;
    const name = plugin.args(PJRT_Client_PlatformName_Args).setPtr("client", handle);
    plugin.call("PJRT_Client_PlatformName", name);
    this.platformName = readString(
      name.getPtr("platform_name"),
      name.getSize("platform_name_size"),
    );
    this.platformVersion = "";
    if (plugin.has("PJRT_Client_PlatformVersion")) {
      const v = plugin.args(PJRT_Client_PlatformVersion_Args).setPtr("client", handle);
      plugin.call("PJRT_Client_PlatformVersion", v);
      this.platformVersion = readString(
        v.getPtr("platform_version"),
        v.getSize("platform_version_size"),
      );
    }
    this.processIndex = 0;
    if (plugin.has("PJRT_Client_ProcessIndex")) {
      const p = plugin.args(PJRT_Client_ProcessIndex_Args).setPtr("client", handle);
      plugin.call("PJRT_Client_ProcessIndex", p);
      this.processIndex = p.getI32("process_index");
    }
    const addressable = this.listDevices(
      "PJRT_Client_AddressableDevices",
      "addressable_devices",
      "num_addressable_devices",
    );
    const all = this.listDevices("PJRT_Client_Devices", "devices", "num_devices");
    const indexOf = new Map(addressable.map((p, i) => [Deno.UnsafePointer.value(p), i]));
    this.allDevices = all.map((p) => this.describe(p, indexOf.get(Deno.UnsafePointer.value(p))));
    const byAddress = new Map(this.allDevices.map((d) => [Deno.UnsafePointer.value(d.handle), d]));
    this.devices = addressable.map((p, i) =>
      byAddress.get(Deno.UnsafePointer.value(p)) ?? this.describe(p, i)
    );
  }

  get disposed(): boolean {
    return this.#handle === null;
  }

  /** True when the client was given a key-value store (a multi-host plugin may call it). */
  get hasKeyValueStore(): boolean {
    return this.#kv !== null;
  }

  /** The plugin's attributes (xla_version, stablehlo_current_version, ...). */
  get attributes(): Record<string, AttributeValue> {
    return this.plugin.attributes;
  }

  /**
   * Compiles StableHLO (MLIR text or bytecode) off the JS thread. Defaults: 1 replica,
   * 1 partition, plugin-chosen device.
   */
  async compile(mlir: string | Uint8Array, options: CompileOptions = {}): Promise<PjrtExecutable> {
    const code = typeof mlir === "string" ? utf8(mlir) : mlir;
    const format = utf8("mlir");
    const compileOptions = encodeCompileOptions(options);
    const program = this.plugin.args(PJRT_Program)
      .setPtr("code", code)
      .setU64("code_size", code.byteLength)
      .setPtr("format", format)
      .setU64("format_size", format.byteLength);
    const a = this.plugin.args(PJRT_Client_Compile_Args)
      .setPtr("client", this.handle)
      .setPtr("program", program.bytes)
      .setPtr("compile_options", compileOptions)
      .setU64("compile_options_size", compileOptions.byteLength);
    // code, format, program and compileOptions stay referenced here until the call returns.
    await this.plugin.callNonblocking("PJRT_Client_Compile", a);
    const loaded = a.getPtr("executable");
    if (loaded === null) throw new Error("PJRT_Client_Compile returned no executable");
    keepAlive(code, format, program, compileOptions);
    return new PjrtExecutable(this, loaded);
  }

  /**
   * Copies dense row-major host bytes to addressable device `deviceIndex`. Resolves once the
   * plugin is done reading the host memory (`host.data` must not change before then).
   */
  async bufferFromHost(host: PjrtHostBuffer, deviceIndex = 0): Promise<PjrtBuffer> {
    const device = this.devices[deviceIndex];
    if (!device) {
      throw new Error(
        `bufferFromHost: device index ${deviceIndex} out of range (${this.devices.length} ` +
          "addressable devices)",
      );
    }
    const { elementType, dims: shape } = host;
    const width = elementByteSize(elementType);
    const what = () => `${elementTypeName(elementType)}[${shape}]`; // for errors only
    if (width === undefined) throw new Error(`bufferFromHost: ${what()}: unsupported element type`);
    const expected = elementCount(shape) * width;
    if (host.data.byteLength !== expected) {
      throw new Error(
        `bufferFromHost: ${what()} needs ${expected} bytes, data has ${host.data.byteLength}`,
      );
    }
    const dims = BigInt64Array.from(shape.map(BigInt));
    // A zero-size array has no address; PJRT still wants a non-null pointer.
    const data = host.data.byteLength > 0 ? host.data : new Uint8Array(8);
    const a = this.plugin.args(PJRT_Client_BufferFromHostBuffer_Args)
      .setPtr("client", this.handle)
      .setPtr("data", data)
      .setI32("type", elementType)
      .setPtr("dims", dims.length ? dims : null)
      .setU64("num_dims", dims.length)
      .setI32("host_buffer_semantics", HostBufferSemantics.ImmutableUntilTransferCompletes)
      .setPtr("device", device.handle);
    this.plugin.call("PJRT_Client_BufferFromHostBuffer", a);
    const bufferPtr = a.getPtr("buffer");
    if (bufferPtr === null) {
      this.plugin.destroyEvent(a.getPtr("done_with_host_buffer"));
      throw new Error("PJRT_Client_BufferFromHostBuffer returned no buffer");
    }
    const buffer = new PjrtBuffer(this, bufferPtr);
    try {
      await this.plugin.awaitEvent(
        a.getPtr("done_with_host_buffer"),
        "PJRT_Client_BufferFromHostBuffer (done_with_host_buffer)",
      );
    } catch (e) {
      buffer[Symbol.dispose]();
      throw e;
    }
    keepAlive(data, dims);
    return buffer;
  }

  /** Destroys live buffers and executables, then the client (`PJRT_Client_Destroy`). */
  [Symbol.dispose](): void {
    const handle = this.#handle;
    if (handle === null) return;
    for (const obj of [...this.live]) obj[Symbol.dispose]();
    this.#handle = null;
    this.plugin.call(
      "PJRT_Client_Destroy",
      this.plugin.args(PJRT_Client_Destroy_Args).setPtr("client", handle),
    );
    this.#kv?.[Symbol.dispose]();
    this.#kv = null;
  }

  private get handle(): Deno.PointerObject {
    if (this.#handle === null) throw new Error("PjrtClient used after it was disposed");
    return this.#handle;
  }

  private listDevices(
    slot: "PJRT_Client_Devices" | "PJRT_Client_AddressableDevices",
    arrayField: string,
    countField: string,
  ): Deno.PointerObject[] {
    const layout = slot === "PJRT_Client_Devices"
      ? PJRT_Client_Devices_Args
      : PJRT_Client_AddressableDevices_Args;
    const a = this.plugin.args(layout).setPtr("client", this.handle);
    this.plugin.call(slot, a);
    return readPointers(a.getPtr(arrayField), a.getSize(countField)).map((p, i) => {
      if (p === null) throw new Error(`${slot} returned a null device at position ${i}`);
      return p;
    });
  }

  private describe(device: Deno.PointerObject, index: number | undefined): PjrtDevice {
    const plugin = this.plugin;
    const g = plugin.args(PJRT_Device_GetDescription_Args).setPtr("device", device);
    plugin.call("PJRT_Device_GetDescription", g);
    const desc = g.getPtr("device_description");
    const id = plugin.args(PJRT_DeviceDescription_Id_Args).setPtr("device_description", desc);
    plugin.call("PJRT_DeviceDescription_Id", id);
    const proc = plugin.args(PJRT_DeviceDescription_ProcessIndex_Args)
      .setPtr("device_description", desc);
    plugin.call("PJRT_DeviceDescription_ProcessIndex", proc);
    const kind = plugin.args(PJRT_DeviceDescription_Kind_Args).setPtr("device_description", desc);
    plugin.call("PJRT_DeviceDescription_Kind", kind);
    const dbg = plugin.args(PJRT_DeviceDescription_DebugString_Args)
      .setPtr("device_description", desc);
    plugin.call("PJRT_DeviceDescription_DebugString", dbg);
    return {
      id: id.getI32("id"),
      processIndex: proc.getI32("process_index"),
      kind: readString(kind.getPtr("device_kind"), kind.getSize("device_kind_size")),
      debugString: readString(dbg.getPtr("debug_string"), dbg.getSize("debug_string_size")),
      addressable: index !== undefined,
      index: index ?? -1,
      handle: device,
    };
  }

  private logStartup(log: (line: string) => void, source: PluginSource): void {
    const { major, minor } = this.plugin.apiVersion;
    const attrs = this.plugin.attributes;
    const versions = ["xla_version", "stablehlo_current_version", "stablehlo_minimum_version"]
      .filter((k) => k in attrs).map((k) => `${k} ${formatAttribute(attrs[k])}`);
    log(
      `PJRT plugin ${this.plugin.path} (from ${source}), C API ${major}.${minor}` +
        (versions.length ? `, ${versions.join(", ")}` : ""),
    );
    log(
      `PJRT platform ${this.platformName}${
        this.platformVersion ? ` (${this.platformVersion})` : ""
      }, process ${this.processIndex}: ${this.devices.length} addressable of ` +
        `${this.allDevices.length} devices`,
    );
    for (const d of this.devices) log(`  device ${d.index}: id ${d.id}, ${d.kind}`);
    const { loaded, failed } = this.plugin.preloaded;
    if (loaded.length) {
      const dir = loaded[0].slice(0, loaded[0].lastIndexOf("/nvidia/") + 7);
      log(`  preloaded ${loaded.length} NVIDIA libraries from ${dir}/*/lib`);
    }
    for (const f of failed) log(`  could not preload ${f}`);
  }
}

/**
 * Encodes client options as a C array of `PJRT_NamedValue` and runs `PJRT_Client_Create`
 * (`nonblocking`: a TPU pod waits for every host here, and the KV callbacks need this thread).
 */
async function createClient(
  plugin: PjrtPlugin,
  options: Record<string, ClientOptionValue>,
  kv: KvCallbacks | null,
): Promise<Deno.PointerObject> {
  const entries = Object.entries(options);
  // The plugin steps through the array by its own sizeof(PJRT_NamedValue); each element's
  // struct_size is the header's PJRT_NamedValue_STRUCT_SIZE, the tail (if any) zeros.
  const stride = plugin.namedValueStride;
  const array = new Uint8Array(Math.max(1, entries.length) * stride);
  const keep: unknown[] = [];
  entries.forEach(([name, value], i) => {
    const nv = new StructBuffer(PJRT_NamedValue);
    const nameBytes = utf8(name);
    keep.push(nameBytes);
    nv.setPtr("name", nameBytes).setU64("name_size", nameBytes.byteLength);
    encodeNamedValue(nv, name, value, keep);
    array.set(nv.bytes.subarray(0, stride), i * stride);
  });
  const a = plugin.args(PJRT_Client_Create_Args)
    .setPtr("create_options", entries.length ? array : null)
    .setU64("num_options", entries.length);
  if (kv) {
    a.setPtr("kv_get_callback", kv.get).setPtr("kv_put_callback", kv.put);
    if (kv.tryGet) a.setPtr("kv_try_get_callback", kv.tryGet);
  }
  await plugin.callNonblocking("PJRT_Client_Create", a);
  keepAlive(array, keep);
  const client = a.getPtr("client");
  if (client === null) throw new Error("PJRT_Client_Create returned no client");
  return client;
}

function encodeNamedValue(
  nv: StructBuffer,
  name: string,
  value: ClientOptionValue,
  keep: unknown[],
): void {
  const set = (type: number, size: number) => nv.setI32("type", type).setU64("value_size", size);
  if (typeof value === "string") {
    const bytes = utf8(value);
    keep.push(bytes);
    set(NamedValueType.String, bytes.byteLength).setPtr("value", bytes);
  } else if (typeof value === "boolean") {
    set(NamedValueType.Bool, 1).setBool("value", value);
  } else if (typeof value === "bigint") {
    set(NamedValueType.Int64, 1).setI64("value", value);
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`client option ${name} = ${value} is not finite`);
    const declared = OPTION_TYPES[name];
    if (
      declared !== undefined && declared !== NamedValueType.Int64 &&
      declared !== NamedValueType.Float
    ) {
      throw new Error(
        `client option ${name} takes a ${TYPE_NAMES[declared]}, got the number ${value}`,
      );
    }
    const asFloat = declared === NamedValueType.Float ||
      (declared === undefined && !Number.isInteger(value));
    if (!asFloat && !Number.isInteger(value)) {
      throw new Error(`client option ${name} takes a whole number (int64), got ${value}`);
    }
    if (asFloat) set(NamedValueType.Float, 1).setF32("value", value);
    else set(NamedValueType.Int64, 1).setI64("value", value);
  } else if (Array.isArray(value)) {
    const list = BigInt64Array.from(value);
    keep.push(list);
    set(NamedValueType.Int64List, list.length).setPtr("value", list.length ? list : null);
  } else if ("float" in value) {
    set(NamedValueType.Float, 1).setF32("value", value.float);
  } else if ("int64" in value) {
    set(NamedValueType.Int64, 1).setI64("value", value.int64);
  } else {
    throw new Error(`client option ${name}: unsupported value ${JSON.stringify(value)}`);
  }
}

const TYPE_NAMES: Record<number, string> = {
  [NamedValueType.String]: "string",
  [NamedValueType.Int64]: "int64",
  [NamedValueType.Int64List]: "list of int64",
  [NamedValueType.Float]: "float",
  [NamedValueType.Bool]: "bool",
};

/**
 * True for plugins that form a multi-host job through the key-value store and `node_id` /
 * `num_nodes` (the jax CUDA/ROCm plugins, and any other than libtpu); false for libtpu, which
 * jax creates without a store (its peers come from the TPU VM's metadata).
 */
export function joinsThroughKeyValueStore(pluginPath: string): boolean {
  const base = pluginPath.split("/").at(-1) ?? "";
  return !/^libtpu/.test(base) && !pluginPath.includes("/libtpu/");
}

function formatAttribute(v: AttributeValue): string {
  return Array.isArray(v) ? v.join(".") : String(v);
}

/** Keeps buffers that C holds pointers into reachable until this point. */
function keepAlive(..._values: unknown[]): void {}
