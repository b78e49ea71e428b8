import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import { Primitive, type PrimitiveParams } from "../../ir/primitive.ts";
import type { Backend, DeviceArray, Executable } from "../backend.ts";
import { KERNELS } from "./kernels.ts";

/**
 * The reference backend: interprets a graph over TypedArrays. Each intermediate is released
 * after its last use, so peak memory follows the live set, not the whole graph.
 */
export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly description = "CPU reference interpreter (TypedArrays)";

  compile(graph: Graph): Promise<Executable> {
    return Promise.resolve(new CpuExecutable(graph));
  }

  fromHost(t: HostTensor): Promise<DeviceArray> {
    return Promise.resolve(
      { shape: [...t.shape], dtype: t.dtype, data: t.data.slice() } as HostTensor,
    );
  }

  toHost(a: DeviceArray): Promise<HostTensor> {
    const t = a as HostTensor;
    return Promise.resolve({ shape: [...t.shape], dtype: t.dtype, data: t.data.slice() });
  }

  free(_a: DeviceArray): void {}

  dispose(): void {}
}

class CpuExecutable implements Executable {
  readonly #graph: Graph;
  readonly #lastUse: Int32Array;
  readonly #position = new Map<number, number>();

  constructor(graph: Graph) {
    this.#graph = graph;
    graph.nodes.forEach((n, i) => this.#position.set(n.id, i));
    this.#lastUse = new Int32Array(graph.nodes.length).fill(-1);
    graph.nodes.forEach((n, i) => {
      for (const inp of n.inputs) this.#lastUse[this.#position.get(inp.id)!] = i;
    });
    for (const o of graph.outputs) this.#lastUse[this.#position.get(o.id)!] = graph.nodes.length;
  }

  execute(args: readonly DeviceArray[]): Promise<DeviceArray[]> {
    const { nodes, outputs } = this.#graph;
    const values = new Array<HostTensor | undefined>(nodes.length);
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i];
      if (n.prim === Primitive.Input) {
        values[i] = args[(n.params as PrimitiveParams[Primitive.Input]).index] as HostTensor;
        continue;
      }
      const ins = n.inputs.map((t) => values[this.#position.get(t.id)!]!);
      values[i] = KERNELS[n.prim](n, ins);
      for (const t of n.inputs) {
        const p = this.#position.get(t.id)!;
        if (this.#lastUse[p] === i) values[p] = undefined;
      }
    }
    return Promise.resolve(outputs.map((o) => values[this.#position.get(o.id)!]!));
  }

  dispose(): void {}
}
