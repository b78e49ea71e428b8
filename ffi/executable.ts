/** `PjrtExecutable`: a compiled, loaded program (`PJRT_LoadedExecutable`). */
import { type BufferOwner, PjrtBuffer } from "./buffer.ts";
import {
  PJRT_Executable_Destroy_Args,
  PJRT_Executable_Name_Args,
  PJRT_Executable_NumOutputs_Args,
  PJRT_ExecuteOptions,
  PJRT_LoadedExecutable_AddressableDevices_Args,
  PJRT_LoadedExecutable_Destroy_Args,
  PJRT_LoadedExecutable_Execute_Args,
  PJRT_LoadedExecutable_GetExecutable_Args,
} from "./pjrt_api.ts";
import { readPointers, readString } from "./struct_buffer.ts";

export interface ExecuteOptions {
  /**
   * Per argument index: true to hand the input's memory to the program (it must alias the
   * input to an output with `tf.aliasing_output`). Donated inputs are consumed: their
   * `PjrtBuffer`s can only be disposed afterwards. Default: nothing is donated.
   */
  donated?: boolean[];
  /** `PJRT_ExecuteOptions.launch_id`; the same value on every host of a multi-host launch. */
  launchId?: number;
}

export class PjrtExecutable implements Disposable {
  /** Outputs per device (`PJRT_Executable_NumOutputs`). */
  readonly numOutputs: number;
  /** `PJRT_Executable_Name` (the module name), or "" when the plugin has no such slot. */
  readonly name: string;
  /**
   * The devices it runs on (`PJRT_LoadedExecutable_AddressableDevices`), in the order `execute`
   * takes their argument lists (jax orders its per-device arguments by this list too); null
   * when the plugin lacks the slot.
   */
  readonly addressableDevices: Deno.PointerObject[] | null;
  #handle: Deno.PointerValue;

  /** Takes ownership of a `PJRT_LoadedExecutable*` from `PJRT_Client_Compile`. */
  constructor(private readonly owner: BufferOwner, loaded: Deno.PointerObject) {
    this.#handle = loaded;
    const plugin = owner.plugin;
    try {
      const get = plugin.args(PJRT_LoadedExecutable_GetExecutable_Args)
        .setPtr("loaded_executable", loaded);
      plugin.call("PJRT_LoadedExecutable_GetExecutable", get);
      const exe = get.getPtr("executable");
      try {
        const n = plugin.args(PJRT_Executable_NumOutputs_Args).setPtr("executable", exe);
        plugin.call("PJRT_Executable_NumOutputs", n);
        this.numOutputs = n.getSize("num_outputs");
        let name = "";
        if (plugin.has("PJRT_Executable_Name")) {
          const a = plugin.args(PJRT_Executable_Name_Args).setPtr("executable", exe);
          plugin.call("PJRT_Executable_Name", a);
          name = readString(a.getPtr("executable_name"), a.getSize("executable_name_size"));
        }
        this.name = name;
        this.addressableDevices = null;
        if (plugin.has("PJRT_LoadedExecutable_AddressableDevices")) {
          const d = plugin.args(PJRT_LoadedExecutable_AddressableDevices_Args)
            .setPtr("executable", loaded);
          plugin.call("PJRT_LoadedExecutable_AddressableDevices", d);
          this.addressableDevices = readPointers(
            d.getPtr("addressable_devices"),
            d.getSize("num_addressable_devices"),
          ).map((p, i) => {
            if (p === null) throw new Error(`the executable's addressable device ${i} is null`);
            return p;
          });
        }
      } finally {
        plugin.call(
          "PJRT_Executable_Destroy",
          plugin.args(PJRT_Executable_Destroy_Args).setPtr("executable", exe),
        );
      }
    } catch (e) {
      this.#destroy();
      throw e;
    }
    owner.live.add(this);
  }

  get disposed(): boolean {
    return this.#handle === null;
  }

  /**
   * Runs the program once per device: `args[device][argument]` -> `outputs[device][output]`.
   * The call enqueues work and returns at once; outputs become ready asynchronously (await
   * `toHost()` or `ready()` on them). Calls on one executable are serialized by the JS thread.
   */
  execute(args: PjrtBuffer[][], options: ExecuteOptions = {}): PjrtBuffer[][] {
    const launch = this.#prepare(args, options);
    this.owner.plugin.call("PJRT_LoadedExecutable_Execute", launch.call);
    return launch.finish();
  }

  /**
   * `execute` with the call itself off the JS thread, for plugins that may call back into JS
   * while they launch: the CUDA plugin fetches NCCL ids through the key-value store at a
   * program's first collective, and the store needs this thread. The arguments must stay alive
   * until the promise settles.
   */
  async executeAsync(args: PjrtBuffer[][], options: ExecuteOptions = {}): Promise<PjrtBuffer[][]> {
    const launch = this.#prepare(args, options);
    await this.owner.plugin.callNonblocking("PJRT_LoadedExecutable_Execute", launch.call);
    return launch.finish();
  }

  /** Checks the arguments and builds the Execute args struct (and what it points into). */
  #prepare(args: PjrtBuffer[][], options: ExecuteOptions) {
    if (this.#handle === null) throw new Error("PjrtExecutable.execute after dispose");
    const numDevices = args.length;
    if (numDevices === 0) throw new Error("PjrtExecutable.execute: no devices' arguments given");
    const numArgs = args[0].length;
    args.forEach((row, d) => {
      if (row.length !== numArgs) {
        throw new Error(
          `PjrtExecutable.execute: device ${d} has ${row.length} arguments, device 0 has ${numArgs}`,
        );
      }
    });
    const donated = options.donated ?? new Array<boolean>(numArgs).fill(false);
    if (donated.length !== numArgs) {
      throw new Error(
        `PjrtExecutable.execute: donated has ${donated.length} entries for ${numArgs} arguments`,
      );
    }
    const plugin = this.owner.plugin;

    // argument_lists: PJRT_Buffer* const* const*, i.e. one pointer array per device.
    const argRows = args.map((row) => pointerArray(row.map((b) => addressOfHandle(b.handle))));
    const argLists = pointerArray(argRows.map(addressOfBuffer));
    // output_lists: caller-allocated [numDevices][numOutputs] pointer arrays.
    const outRows = args.map(() => new BigUint64Array(Math.max(1, this.numOutputs)));
    const outLists = pointerArray(outRows.map(addressOfBuffer));

    const nonDonatable = BigInt64Array.from(
      donated.flatMap((d, i) => (d ? [] : [BigInt(i)])),
    );
    const opts = plugin.args(PJRT_ExecuteOptions)
      .setI32("launch_id", options.launchId ?? 0)
      .setPtr("non_donatable_input_indices", nonDonatable.length ? nonDonatable : null)
      .setU64("num_non_donatable_input_indices", nonDonatable.length);
    const call = plugin.args(PJRT_LoadedExecutable_Execute_Args)
      .setPtr("executable", this.#handle)
      .setPtr("options", opts.bytes)
      .setPtr("argument_lists", argLists)
      .setU64("num_devices", numDevices)
      .setU64("num_args", numArgs)
      .setPtr("output_lists", outLists);

    const finish = (): PjrtBuffer[][] => {
      // Everything the C call read stays referenced until here.
      keepAlive(argRows, argLists, outLists, nonDonatable, opts);
      for (const row of args) row.forEach((b, i) => donated[i] && b.markDonated());
      return outRows.map((row, d) =>
        readPointers(Deno.UnsafePointer.of(row), this.numOutputs).map((ptr, o) => {
          if (ptr === null) {
            throw new Error(`PJRT_LoadedExecutable_Execute left output ${o} of device ${d} empty`);
          }
          return new PjrtBuffer(this.owner, ptr);
        })
      );
    };
    return { call, finish };
  }

  /** `PJRT_LoadedExecutable_Destroy`. Safe to call twice. */
  [Symbol.dispose](): void {
    if (this.#handle === null) return;
    this.owner.live.delete(this);
    this.#destroy();
  }

  #destroy(): void {
    const handle = this.#handle;
    this.#handle = null;
    this.owner.plugin.call(
      "PJRT_LoadedExecutable_Destroy",
      this.owner.plugin.args(PJRT_LoadedExecutable_Destroy_Args).setPtr("executable", handle),
    );
  }
}

function keepAlive(..._values: unknown[]): void {}

function pointerArray(addresses: bigint[]): BigUint64Array {
  return BigUint64Array.from(addresses.length ? addresses : [0n]);
}

function addressOfHandle(ptr: Deno.PointerObject): bigint {
  return BigInt(Deno.UnsafePointer.value(ptr));
}

function addressOfBuffer(array: BigUint64Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(array)));
}
