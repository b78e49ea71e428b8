/**
 * Graph -> StableHLO module text (MLIR generic form): one `func.func public @main` whose
 * arguments are the graph inputs and whose results are the graph outputs. The text depends only
 * on the graph's structure and the options, so the same program always gives the same text.
 */
import type { Graph } from "../../ir/graph.ts";
import { Primitive } from "../../ir/primitive.ts";
import type { Precision } from "../../ir/primitive.ts";
import { isPrim, type Tensor } from "../../ir/tensor.ts";
import { type Alias, checkAliases } from "./aliasing.ts";
import { Emitter } from "./emitter.ts";
import { planRematBarriers, type RematPlan } from "./remat.ts";
import { type EmitRule, RULES, typeOf } from "./rules.ts";
import { replicasOf } from "../replicas.ts";

export interface EmitOptions {
  /** The module's symbol name (`module @name`); default "deit3". */
  moduleName?: string;
  /**
   * `mhlo.num_replicas`: data-parallel replicas (all global devices). Default: the `replicas`
   * of the graph's all-reduces, or 1. A different value than the all-reduces use is an error.
   */
  numReplicas?: number;
  /** Input -> output buffer aliases (`tf.aliasing_output`), e.g. from `autoAliases`. */
  aliases?: readonly Alias[];
  /** Overrides every dot_general's precision ("highest" to compare numbers across platforms). */
  precision?: Precision;
  /**
   * "bf16": matmul operands in bf16 with f32 accumulation and f32 results; params, optimizer
   * state and all other ops stay f32. Default "f32".
   */
  compute?: "f32" | "bf16";
  /** Optimization barriers in front of rematerialized segments (default true). */
  rematBarriers?: boolean;
}

/** The StableHLO module for `graph`. */
export function emitStableHlo(graph: Graph, options: EmitOptions = {}): string {
  checkInputs(graph);
  const numReplicas = replicasOf(graph, options.numReplicas);
  const aliases = options.aliases ?? [];
  checkAliases(graph, aliases);
  const plan: RematPlan = options.rematBarriers === false
    ? { groupOf: new Map(), barrierInputs: [] }
    : planRematBarriers(graph.nodes);

  const e = new Emitter({ precision: options.precision, compute: options.compute ?? "f32" });
  const names = new Map<Tensor, string>();
  const barrierNames = plan.barrierInputs.map(() => new Map<Tensor, string>());
  for (const item of emissionOrder(graph, plan)) {
    if (typeof item === "number") {
      emitBarrier(e, plan.barrierInputs[item], names, barrierNames[item]);
      continue;
    }
    const group = plan.groupOf.get(item);
    const args = item.inputs.map((inp) =>
      (group !== undefined ? barrierNames[group].get(inp) : undefined) ?? names.get(inp)!
    );
    const rule = RULES[item.prim] as EmitRule<Primitive>;
    names.set(item, rule(e, item, args, item.params));
  }

  const aliasOf = new Map(aliases.map((a) => [a.input, a.output]));
  const params = graph.inputs.map((t, i) => {
    const alias = aliasOf.get(i);
    return `%arg${i}: ${typeOf(t)}${
      alias === undefined ? "" : ` {tf.aliasing_output = ${alias} : i32}`
    }`;
  });
  const resultTypes = graph.outputs.map(typeOf);
  const ret = e.opText(null, "func.return", {
    operands: graph.outputs.map((t) => names.get(t)!),
    operandTypes: resultTypes,
    results: "()",
  });
  const name = symbolName(options.moduleName ?? "deit3");
  return [
    `module @${name} attributes {mhlo.num_partitions = 1 : i32, mhlo.num_replicas = ${numReplicas} : i32} {`,
    `  func.func public @main(${params.join(", ")}) -> (${resultTypes.join(", ")}) {`,
    ...e.lines,
    `    ${ret}`,
    "  }",
    "}",
    "",
  ].join("\n");
}

function checkInputs(graph: Graph): void {
  graph.inputs.forEach((t, i) => {
    if (!isPrim(t, Primitive.Input) || t.params.index !== i) {
      throw new Error(`stablehlo: graph input ${i} is ${t}, not input #${i}`);
    }
  });
}

/**
 * A topological order of the nodes reachable from the outputs (post-order DFS, so the result
 * follows the graph's structure only), with barrier `k` (a number) placed before the first clone
 * of group k. Input nodes are function arguments and emit nothing.
 */
function emissionOrder(graph: Graph, plan: RematPlan): (Tensor | number)[] {
  const order: (Tensor | number)[] = [];
  const done = new Set<Tensor | number>();
  const deps = (item: Tensor | number): readonly (Tensor | number)[] => {
    if (typeof item === "number") return plan.barrierInputs[item];
    const group = plan.groupOf.get(item);
    return group === undefined ? item.inputs : [...item.inputs, group];
  };
  for (const out of graph.outputs) {
    if (done.has(out)) continue;
    done.add(out);
    const stack: [Tensor | number, number][] = [[out, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const d = deps(top[0]);
      if (top[1] < d.length) {
        const next = d[top[1]++];
        if (!done.has(next)) {
          done.add(next);
          stack.push([next, 0]);
        }
      } else {
        stack.pop();
        order.push(top[0]);
      }
    }
  }
  return order;
}

function emitBarrier(
  e: Emitter,
  inputs: readonly Tensor[],
  names: Map<Tensor, string>,
  out: Map<Tensor, string>,
): void {
  const types = inputs.map(typeOf);
  const result = e.op("stablehlo.optimization_barrier", {
    operands: inputs.map((t) => names.get(t)!),
    operandTypes: types,
    results: types,
  });
  inputs.forEach((t, i) => out.set(t, inputs.length === 1 ? result : `${result}#${i}`));
}

/** A valid MLIR symbol name (letters, digits, `_`, `$`, `.`; not starting with a digit). */
function symbolName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_$.]/g, "_");
  return /^[A-Za-z_]/.test(s) ? s : `_${s}`;
}
