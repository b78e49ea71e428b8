/**
 * Input-output aliasing (buffer donation). An aliased input carries `tf.aliasing_output = N` in
 * `@main`: when the caller donates that input at execution, XLA writes output N into its memory,
 * so a training step updates parameters and optimizer state in place. The alias is "may alias":
 * an input that is not donated at run time is left intact and the output gets fresh memory.
 */
import type { Graph } from "../../ir/graph.ts";
import { Primitive } from "../../ir/primitive.ts";

export interface Alias {
  /** Argument index of `@main`. */
  input: number;
  /** Result index of `@main` that may reuse the input's buffer. */
  output: number;
}

/**
 * Pairs each input (in order, only those `donatable` allows) with the first unclaimed output of
 * the same shape and dtype. A training step whose state comes first in both its arguments and
 * results, in the same order, gets state i -> new state i.
 */
export function autoAliases(
  graph: Graph,
  donatable: (input: number) => boolean = () => true,
): Alias[] {
  const claimed = new Set<number>();
  const out: Alias[] = [];
  graph.inputs.forEach((inp, i) => {
    if (!donatable(i)) return;
    const o = graph.outputs.findIndex((t, j) =>
      !claimed.has(j) && t.prim !== Primitive.Input && t.dtype === inp.dtype &&
      t.shape.length === inp.shape.length && t.shape.every((d, k) => d === inp.shape[k])
    );
    if (o < 0) return;
    claimed.add(o);
    out.push({ input: i, output: o });
  });
  return out;
}

/** Throws naming the alias when an index is out of range, repeated, or the types differ. */
export function checkAliases(graph: Graph, aliases: readonly Alias[]): void {
  const inputs = new Set<number>(), outputs = new Set<number>();
  for (const { input, output } of aliases) {
    const name = `alias input ${input} -> output ${output}`;
    const inp = graph.inputs[input], out = graph.outputs[output];
    if (!inp) throw new Error(`${name}: the program has ${graph.inputs.length} inputs`);
    if (!out) throw new Error(`${name}: the program has ${graph.outputs.length} outputs`);
    if (inputs.has(input)) throw new Error(`${name}: input ${input} is aliased twice`);
    if (outputs.has(output)) throw new Error(`${name}: output ${output} is aliased twice`);
    if (
      inp.dtype !== out.dtype || inp.shape.join() !== out.shape.join() ||
      inp.shape.length !== out.shape.length
    ) {
      throw new Error(
        `${name}: input is ${inp.dtype}[${inp.shape}] but output is ${out.dtype}[${out.shape}]`,
      );
    }
    inputs.add(input);
    outputs.add(output);
  }
}

/**
 * Aliases by pytree path: for each `[inputPrefix, outputPrefix]`, the input leaf at
 * `inputPrefix.rest` is aliased to the output leaf at `outputPrefix.rest`. Paths are those of
 * `leavesWithPaths` over the traced arguments (`0.model.embed...` for the first argument) and the
 * result (`params.model.embed...`). A prefix pair that matches nothing is an error.
 */
export function pathAliases(
  inputPaths: readonly string[],
  outputPaths: readonly string[],
  pairs: readonly [string, string][],
): Alias[] {
  const outIndex = new Map(outputPaths.map((p, i) => [p, i]));
  const out: Alias[] = [];
  for (const [inPrefix, outPrefix] of pairs) {
    let matched = 0;
    inputPaths.forEach((path, input) => {
      if (path !== inPrefix && !path.startsWith(`${inPrefix}.`)) return;
      const target = outPrefix + path.slice(inPrefix.length);
      const output = outIndex.get(target);
      if (output === undefined) {
        throw new Error(`alias ${inPrefix} -> ${outPrefix}: no output ${target} for input ${path}`);
      }
      out.push({ input, output });
      matched++;
    });
    if (matched === 0) {
      throw new Error(`alias ${inPrefix} -> ${outPrefix}: no input under ${inPrefix}`);
    }
  }
  return out;
}
