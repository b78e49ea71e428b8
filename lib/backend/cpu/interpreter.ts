import type { Graph } from "../../ir/graph.ts";
import type { HostTensor } from "../../ir/host_tensor.ts";
import { Primitive } from "../../ir/primitive.ts";
import { isPrim } from "../../ir/tensor.ts";
import type { HostExecutable } from "./array.ts";
import { kernelOf } from "./kernels.ts";
import type { ReplicaRun } from "./replicas.ts";

/**
 * The reference interpreter: runs each node with its kernel from kernels.ts. Each intermediate
 * is released after its last use, so peak memory follows the live set, not the whole graph.
 */
export class InterpretedExecutable implements HostExecutable {
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

  /** `run`: this call is one replica of a replicated program (see replicas.ts). */
  async execute(args: readonly HostTensor[], run?: ReplicaRun): Promise<HostTensor[]> {
    const { nodes, outputs } = this.#graph;
    const values = new Array<HostTensor | undefined>(nodes.length);
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i];
      if (isPrim(n, Primitive.Input)) {
        values[i] = args[n.params.index];
        continue;
      }
      const ins = n.inputs.map((t) => values[this.#position.get(t.id)!]!);
      if (n.prim === Primitive.AllReduceSum && run) {
        const x = ins[0];
        const data = await run.group.sum(run.replica, x.dtype, x.data);
        values[i] = { shape: [...n.shape], dtype: n.dtype, data };
      } else values[i] = kernelOf(n)(n, ins);
      for (const t of n.inputs) {
        const p = this.#position.get(t.id)!;
        if (this.#lastUse[p] === i) values[p] = undefined;
      }
    }
    return outputs.map((o) => values[this.#position.get(o.id)!]!);
  }

  dispose(): void {}
}
