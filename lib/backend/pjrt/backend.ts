/**
 * The PJRT backend: graphs are emitted as StableHLO (lib/backend/stablehlo) and compiled by a
 * PJRT plugin (libtpu, the jax CUDA plugin) through Deno FFI (ffi/). XLA does the fusion.
 *
 * Data parallel: with `devices` > 1 (or several processes) the backend runs the per-replica
 * program on `devices` devices of every process (`mhlo.num_replicas` = devices x processes;
 * replica r runs on the r-th of those devices, taken process by process in id order); the
 * program itself averages gradients with `all_reduce` (see lib/train/step.ts). Arrays hold one
 * buffer per local device: `fromHost` copies a value to every device, `fromHostPerDevice` gives
 * each its own, and `toHost` reads device 0 (`toHostPerDevice` reads all).
 */
import {
  type ClientOptionValue,
  type JobProcess,
  type OpenOptions,
  PjrtClient,
  type PjrtDevice,
} from "../../../ffi/client.ts";
import type { PjrtBuffer } from "../../../ffi/buffer.ts";
import type { PjrtExecutable } from "../../../ffi/executable.ts";
import type { KeyValueStore } from "../../../ffi/kv_callbacks.ts";
import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import type { Precision } from "../../ir/primitive.ts";
import type { Backend, DeviceArray, Executable } from "../backend.ts";
import { type Alias, autoAliases } from "../stablehlo/aliasing.ts";
import { emitStableHlo } from "../stablehlo/emit.ts";
import { PjrtArray } from "./array.ts";
import { downloadTensor, uploadTensor } from "./dtype.ts";
import { checkPerDevice } from "../replicas.ts";

export interface PjrtBackendOptions {
  /** The PJRT plugin (`--pjrt-plugin`); otherwise discovered (PJRT_PLUGIN_PATH, libtpu, ...). */
  pluginPath?: string;
  /**
   * Compute precision (config key `precision`): "bf16" runs matmuls on bf16 operands with f32
   * accumulation; params, optimizer state and every other op stay f32. Default "f32".
   */
  precision?: "f32" | "bf16";
  /**
   * Each dot_general's precision config (config key `matmul-precision`): "default" (jax's
   * default, what deit3-jax ran with: one bf16 pass on TPU, TF32 on NVIDIA), "high" or
   * "highest" (full f32). Unset: each dot's own (ops.ts: "default").
   */
  matmulPrecision?: Precision;
  /**
   * Devices of each process to run replicas on: a count, or "all" addressable devices (the
   * default). Every process of a multi-host job passes the same value.
   */
  devices?: number | "all";
  /** `PJRT_Client_Create` options (see `cudaClientOptions` in ffi/client.ts). */
  clientOptions?: Record<string, ClientOptionValue>;
  /**
   * The job's key-value store, for plugins that find their peers through one at client
   * creation (the CUDA plugin across hosts); see `pjrtKeyValueStore` in kv_bridge.ts.
   */
  keyValueStore?: KeyValueStore;
  /**
   * This process's place in a multi-process job: plugins that join hosts through a key-value
   * store (CUDA) get `node_id`/`num_nodes` and the store; libtpu gets neither (ffi/client.ts).
   */
  job?: JobProcess;
  /** Start-up log lines (plugin, platform, devices). Default console.log. */
  log?: (line: string) => void;
  /** Plugin discovery overrides (environment, search paths). */
  discovery?: OpenOptions["discovery"];
  /** When set, each compiled program's StableHLO text is written into this folder. */
  dumpDir?: string;
}

export interface PjrtCompileOptions {
  /**
   * Inputs the caller will donate at execution (e.g. params and optimizer state): each is
   * aliased to the first unclaimed output of its shape and dtype (`autoAliases`), so XLA updates
   * it in place. Ignored when `aliases` is given.
   */
  donate?: readonly boolean[];
  /**
   * Explicit buffer aliases, or "auto" (every input may alias). Default: from `donate`, else
   * none. An aliased input that is not donated at run time keeps its value: the alias is
   * "may alias" and PJRT's `non_donatable_input_indices` makes XLA use fresh memory.
   */
  aliases?: "none" | "auto" | readonly Alias[];
  /** Module name in the StableHLO text. */
  name?: string;
}

export class PjrtBackend implements Backend {
  readonly name = "pjrt";
  readonly description: string;
  /** Replicas of every compiled program (all processes). */
  readonly replicas: number;
  /** The global devices replica 0..replicas-1 run on. */
  readonly replicaDevices: readonly PjrtDevice[];
  /** The replicas this process runs, as devices (their `index` is the addressable index). */
  readonly localDevices: readonly PjrtDevice[];
  #compiled = 0;

  private constructor(readonly client: PjrtClient, private readonly options: PjrtBackendOptions) {
    this.replicaDevices = replicaDevices(client.allDevices, options.devices ?? "all");
    this.replicas = this.replicaDevices.length;
    this.localDevices = this.replicaDevices.filter((d) => d.addressable);
    if (this.localDevices.length === 0) {
      throw new Error(
        `pjrt: none of the ${this.replicas} replica devices belongs to this process (process ` +
          `${client.processIndex})`,
      );
    }
    const kinds = [...new Set(this.localDevices.map((d) => d.kind))].join(", ");
    this.description = `${client.platformName} ${kinds} x${this.localDevices.length}` +
      (this.replicas > this.localDevices.length ? ` (of ${this.replicas} replicas)` : "") +
      `, compute ${options.precision ?? "f32"}, matmul precision ` +
      `${options.matmulPrecision ?? "default"} (PJRT plugin ${client.plugin.path})`;
  }

  /** Local devices (one replica each). */
  get devices(): number {
    return this.localDevices.length;
  }

  /** Opens the plugin (throws the discovery error naming what was searched if none is found). */
  static async create(options: PjrtBackendOptions = {}): Promise<PjrtBackend> {
    const client = await PjrtClient.open({
      pluginPath: options.pluginPath,
      options: options.clientOptions,
      keyValueStore: options.keyValueStore,
      job: options.job,
      log: options.log,
      discovery: options.discovery,
    });
    try {
      return new PjrtBackend(client, options);
    } catch (e) {
      client[Symbol.dispose]();
      throw e;
    }
  }

  /** The StableHLO text `compile` would send for `graph`. */
  emit(graph: Graph, opts: PjrtCompileOptions = {}): string {
    const donate = opts.donate;
    const aliases = opts.aliases === "auto"
      ? autoAliases(graph)
      : opts.aliases === "none"
      ? []
      : opts.aliases ?? (donate ? autoAliases(graph, (i) => !!donate[i]) : []);
    return emitStableHlo(graph, {
      moduleName: opts.name ?? "deit3",
      numReplicas: this.replicas,
      aliases,
      precision: this.options.matmulPrecision,
      compute: this.options.precision ?? "f32",
    });
  }

  async compile(graph: Graph, opts: PjrtCompileOptions = {}): Promise<Executable> {
    const text = this.emit(graph, opts);
    const index = this.#compiled++;
    if (this.options.dumpDir) {
      await Deno.mkdir(this.options.dumpDir, { recursive: true });
      await Deno.writeTextFile(
        `${this.options.dumpDir}/${opts.name ?? "program"}-${index}.mlir`,
        text,
      );
    }
    const executable = await this.client.compile(text, {
      numReplicas: this.replicas,
      numPartitions: 1,
      deviceAssignment: this.replicaDevices.map((d) => [d.id]),
      processIndex: this.client.processIndex,
      processCount: new Set(this.client.allDevices.map((d) => d.processIndex)).size,
    });
    return new PjrtProgram(this, graph, executable);
  }

  /** Copies `t` to every local replica. */
  async fromHost(t: HostTensor): Promise<DeviceArray> {
    const buffers = await Promise.all(
      this.localDevices.map((d) => uploadTensor(this.client, t, d.index)),
    );
    return new PjrtArray(t.shape, t.dtype, buffers);
  }

  /** `ts[d]` on local device d. */
  async fromHostPerDevice(ts: readonly HostTensor[]): Promise<PjrtArray> {
    checkPerDevice(ts, this.localDevices.length);
    const buffers = await Promise.all(
      ts.map((p, i) => uploadTensor(this.client, p, this.localDevices[i].index)),
    );
    return new PjrtArray(ts[0].shape, ts[0].dtype, buffers);
  }

  /** Replica 0's value (replicated state is identical on every replica). */
  async toHost(a: DeviceArray): Promise<HostTensor> {
    return await downloadTensor(this.array(a, "toHost").buffers[0]);
  }

  /** Every local device's value, in device order. */
  async toHostPerDevice(a: DeviceArray): Promise<HostTensor[]> {
    return await Promise.all(this.array(a, "toHostPerDevice").buffers.map(downloadTensor));
  }

  free(a: DeviceArray): void {
    this.array(a, "free").free();
  }

  dispose(): void {
    this.client[Symbol.dispose]();
  }

  /** @internal */
  array(a: DeviceArray, what: string): PjrtArray {
    if (!(a instanceof PjrtArray)) {
      throw new Error(`pjrt ${what}: ${a.dtype}[${a.shape}] is not an array of this backend`);
    }
    return a;
  }
}

/**
 * The devices replicas run on: `devices` of each process (all its addressable ones for "all"),
 * process by process, each in id order. Every process must have that many.
 */
export function replicaDevices(all: readonly PjrtDevice[], devices: number | "all"): PjrtDevice[] {
  const byProcess = new Map<number, PjrtDevice[]>();
  for (const d of [...all].sort((a, b) => a.processIndex - b.processIndex || a.id - b.id)) {
    byProcess.set(d.processIndex, [...(byProcess.get(d.processIndex) ?? []), d]);
  }
  const fewest = Math.min(...[...byProcess.values()].map((l) => l.length));
  const n = devices === "all" ? fewest : devices;
  if (!Number.isInteger(n) || n < 1 || n > fewest) {
    throw new Error(
      `pjrt: --devices must be "all" or 1..${fewest} (devices per process), got ${devices}`,
    );
  }
  return [...byProcess.values()].flatMap((l) => l.slice(0, n));
}

/**
 * Where each of the executable's devices is among `local` (the replicas' devices here), checking
 * that they are the same devices; identity when the plugin does not say.
 */
export function deviceOrder(
  local: readonly PjrtDevice[],
  executable: readonly Deno.PointerObject[] | null,
): number[] {
  if (executable === null) return local.map((_, i) => i);
  const at = new Map(local.map((d, i) => [Deno.UnsafePointer.value(d.handle), i]));
  const order = executable.map((p) => at.get(Deno.UnsafePointer.value(p)) ?? -1);
  if (order.length !== local.length || order.includes(-1) || new Set(order).size !== order.length) {
    const ids = (l: readonly PjrtDevice[]) => l.map((d) => d.id).join(", ");
    const all = new Map(local.map((d) => [Deno.UnsafePointer.value(d.handle), d.id]));
    const named = executable.map((p) => all.get(Deno.UnsafePointer.value(p)) ?? "?").join(", ");
    throw new Error(
      `pjrt: the compiled program runs on devices [${named}] of this process, the backend's ` +
        `replicas are on [${ids(local)}]`,
    );
  }
  return order;
}

class PjrtProgram implements Executable {
  #executable: PjrtExecutable | null;
  /** `order[k]`: the local replica whose arguments go in the executable's k-th device list. */
  readonly #order: number[];
  /** The first launch while it runs off the thread; later launches wait for it. */
  #firstLaunch: Promise<unknown> | null = null;
  #launched = false;

  constructor(
    private readonly backend: PjrtBackend,
    private readonly graph: Graph,
    executable: PjrtExecutable,
  ) {
    this.#executable = executable;
    try {
      if (executable.numOutputs !== graph.outputs.length) {
        throw new Error(
          `pjrt: the compiled program has ${executable.numOutputs} outputs, the graph ` +
            `${graph.outputs.length}`,
        );
      }
      this.#order = deviceOrder(backend.localDevices, executable.addressableDevices);
    } catch (e) {
      executable[Symbol.dispose]();
      throw e;
    }
  }

  /**
   * Enqueues one run on every local replica; outputs become ready asynchronously. A client
   * with a key-value store launches each program's first run off the JS thread: the CUDA plugin
   * fetches its NCCL clique ids through the store (which needs this thread) at a program's
   * first collective, and caches the clique for later runs, which are plain calls.
   */
  execute(
    args: readonly DeviceArray[],
    opts: { donate?: readonly boolean[] } = {},
  ): Promise<DeviceArray[]> {
    try {
      // A launch while the first one is still off the thread must not block this thread (the
      // first may need the store, which runs here): it waits its turn.
      const first = this.#firstLaunch;
      if (first) return first.then(() => this.execute(args, opts));
      return this.run(args, opts.donate ?? []);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private run(args: readonly DeviceArray[], donate: readonly boolean[]): Promise<DeviceArray[]> {
    const executable = this.#executable;
    if (executable === null) throw new Error("pjrt: execute after dispose");
    const { inputs, outputs } = this.graph;
    if (args.length !== inputs.length) {
      throw new Error(`pjrt: the program takes ${inputs.length} arrays, got ${args.length}`);
    }
    const arrays = args.map((a, i) => {
      const arr = this.backend.array(a, `execute argument ${i}`);
      const spec = inputs[i];
      if (arr.dtype !== spec.dtype || arr.shape.join() !== spec.shape.join()) {
        throw new Error(
          `pjrt: argument ${i} is ${arr.dtype}[${arr.shape}], the program takes ` +
            `${spec.dtype}[${spec.shape}]`,
        );
      }
      if (donate[i] && args.some((b, j) => j !== i && b === a)) {
        throw new Error(`pjrt: argument ${i} is donated but also passed as another argument`);
      }
      return arr;
    });
    const replicas = this.backend.localDevices.length;
    // One argument list per device, in the executable's device order.
    const perDevice = this.#order.map((d) =>
      arrays.map((a, i) => {
        const buffers = a.buffers;
        if (buffers.length !== replicas) {
          throw new Error(
            `pjrt: argument ${i} has ${buffers.length} replica buffers, the backend runs ${replicas}`,
          );
        }
        return buffers[d];
      })
    );
    const options = { donated: inputs.map((_, i) => !!donate[i]) };
    const wrap = (results: PjrtBuffer[][]) => {
      const byReplica = new Array<PjrtBuffer[]>(replicas);
      this.#order.forEach((d, k) => byReplica[d] = results[k]);
      return outputs.map((o, k) => new PjrtArray(o.shape, o.dtype, byReplica.map((row) => row[k])));
    };
    if (!this.#launched && this.backend.client.hasKeyValueStore) {
      this.#launched = true;
      const launch = executable.executeAsync(perDevice, options).then(wrap);
      // Settles (never rejects: the caller gets the error) once the launch is done.
      this.#firstLaunch = launch.then(() => {}, () => {}).finally(() => this.#firstLaunch = null);
      return launch;
    }
    this.#launched = true;
    return Promise.resolve(wrap(executable.execute(perDevice, options)));
  }

  dispose(): void {
    this.#executable?.[Symbol.dispose]();
    this.#executable = null;
  }
}
