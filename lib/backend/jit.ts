import { type HostTensor, isHostTensor } from "../ir/host_tensor.ts";
import { type ShapeSpec, trace, type Traced } from "../ir/graph.ts";
import { flatten, unflatten } from "../ir/pytree.ts";
import type { Backend, CompileOptions, DeviceArray, Executable } from "./backend.ts";

/**
 * A traced-and-compiled function over pytrees. `call` takes pytrees of device arrays (or host
 * tensors, uploaded on the fly) matching the specs it was compiled for.
 */
export class Compiled {
  private constructor(
    readonly backend: Backend,
    readonly traced: Traced,
    readonly executable: Executable,
  ) {}

  static async create(
    backend: Backend,
    fn: (...args: any[]) => unknown,
    ...argSpecs: unknown[]
  ): Promise<Compiled> {
    return await Compiled.createWith(backend, {}, fn, ...argSpecs);
  }

  /** As `create`, with compile options (e.g. which flattened inputs are donated). */
  static async createWith(
    backend: Backend,
    options: CompileOptions,
    fn: (...args: any[]) => unknown,
    ...argSpecs: unknown[]
  ): Promise<Compiled> {
    const traced = trace(fn, ...argSpecs);
    return new Compiled(backend, traced, await backend.compile(traced.graph, options));
  }

  /** Runs on device; returns the output pytree of device arrays. */
  async call(args: unknown[], opts?: { donate?: readonly boolean[] }): Promise<any> {
    const { leaves } = flatten<DeviceArray | HostTensor>(args);
    const specs = this.traced.graph.inputs;
    if (leaves.length !== specs.length) {
      throw new Error(`compiled function takes ${specs.length} arrays, got ${leaves.length}`);
    }
    const uploaded: DeviceArray[] = [];
    const device = await Promise.all(leaves.map(async (x, i) => {
      checkSpec(i, x, specs[i]);
      if (isHostTensor(x)) {
        const d = await this.backend.fromHost(x);
        uploaded.push(d);
        return d;
      }
      return x;
    }));
    const outs = await this.executable.execute(device, opts);
    for (const u of uploaded) if (!outs.includes(u)) this.backend.free(u);
    return unflatten(this.traced.outDef, outs);
  }

  dispose(): void {
    this.executable.dispose();
  }
}

/** Traces, compiles and runs `fn` once on host inputs; returns host outputs. For tests and tools. */
export async function evaluate(
  backend: Backend,
  fn: (...args: any[]) => unknown,
  ...args: unknown[]
): Promise<any> {
  const compiled = await Compiled.create(backend, fn, ...args);
  try {
    const out = await compiled.call(args);
    const { leaves, def } = flatten<DeviceArray>(out);
    const host = await Promise.all(leaves.map((l) => backend.toHost(l)));
    for (const l of leaves) backend.free(l);
    return unflatten(def, host);
  } finally {
    compiled.dispose();
  }
}

function checkSpec(i: number, x: ShapeSpec, spec: ShapeSpec): void {
  if (
    x.dtype !== spec.dtype || x.shape.length !== spec.shape.length ||
    x.shape.some((d, j) => d !== spec.shape[j])
  ) {
    throw new Error(
      `argument ${i}: got ${x.dtype}[${x.shape}], compiled for ${spec.dtype}[${spec.shape}]`,
    );
  }
}
