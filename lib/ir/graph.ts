import type { DType } from "./dtype.ts";
import { input } from "./ops.ts";
import { Primitive } from "./primitive.ts";
import { flatten, type TreeDef, unflatten } from "./pytree.ts";
import type { Tensor } from "./tensor.ts";

/** What a traced function takes: a shape and dtype per leaf. */
export interface ShapeSpec {
  shape: readonly number[];
  dtype: DType;
}

/**
 * A traced program: inputs (Primitive.Input nodes in argument order), outputs, and every node
 * reachable from the outputs in a topological order (inputs and constants included).
 */
export interface Graph {
  inputs: Tensor[];
  outputs: Tensor[];
  nodes: Tensor[];
}

export interface Traced {
  graph: Graph;
  inDef: TreeDef;
  outDef: TreeDef;
}

/**
 * Traces `fn` over pytrees of shape specs: each leaf becomes an input node, and the function's
 * returned pytree of tensors becomes the graph's outputs.
 */
export function trace(fn: (...args: any[]) => unknown, ...argSpecs: unknown[]): Traced {
  const { leaves, def: inDef } = flatten<ShapeSpec>(argSpecs);
  const inputs = leaves.map((s, i) => input(i, `arg${i}`, s.shape, s.dtype));
  const args = unflatten(inDef, inputs) as unknown[];
  const result = fn(...args);
  const { leaves: outputs, def: outDef } = flatten<Tensor>(result);
  return { graph: buildGraph(inputs, outputs), inDef, outDef };
}

/** Collects the nodes reachable from `outputs` in topological order. */
export function buildGraph(inputs: Tensor[], outputs: Tensor[]): Graph {
  const allowed = new Set(inputs.map((t) => t.id));
  const nodes = topoSort(outputs);
  for (const t of nodes) {
    if (t.prim === Primitive.Input && !allowed.has(t.id)) {
      throw new Error(`trace: ${t} is an input of another trace (a tensor leaked across traces)`);
    }
  }
  return { inputs, outputs, nodes };
}

/**
 * Every node reachable from `roots`, inputs before their users. Iterative post-order DFS: the
 * graph of a deep ViT step is too deep for recursion.
 */
export function topoSort(roots: readonly Tensor[]): Tensor[] {
  const seen = new Set<number>();
  const nodes: Tensor[] = [];
  const stack: [Tensor, number][] = [];
  for (const root of roots) {
    if (seen.has(root.id)) continue;
    seen.add(root.id);
    stack.push([root, 0]);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [t, i] = top;
      if (i < t.inputs.length) {
        top[1]++;
        const child = t.inputs[i];
        if (!seen.has(child.id)) {
          seen.add(child.id);
          stack.push([child, 0]);
        }
      } else {
        stack.pop();
        nodes.push(t);
      }
    }
  }
  return nodes;
}

/** Counts of each primitive, for tests and debugging. */
export function primitiveCounts(graph: Graph): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of graph.nodes) out[n.prim] = (out[n.prim] ?? 0) + 1;
  return out;
}
