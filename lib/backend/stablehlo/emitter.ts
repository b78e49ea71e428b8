/**
 * The text builder shared by the op rules: fresh SSA names, one line per op in MLIR generic form
 * (`%3 = "stablehlo.add"(%1, %2) : (...) -> ...`), and single-block regions for reductions.
 */
import type { DType } from "../../ir/dtype.ts";
import type { Precision } from "../../ir/primitive.ts";
import { tensorType } from "./types.ts";

/** Emitter settings the op rules read. */
export interface RuleOptions {
  /** Overrides every dot_general's own precision when set. */
  precision?: Precision;
  /** "bf16": dot_general operands are converted to bf16 (f32 accumulation and result). */
  compute: "f32" | "bf16";
}

export interface OpSpec {
  operands?: readonly string[];
  operandTypes?: readonly string[];
  /** One result type, or several (the op then yields `%N:k`, used as `%N#i`). */
  results: string | readonly string[];
  /** `name = value` entries of the attribute dictionary, in print order. */
  attrs?: readonly string[];
  /** Each region as its lines (block label included), without the braces. */
  regions?: readonly string[][];
}

export class Emitter {
  readonly lines: string[] = [];
  #next = 0;
  #bf16 = new Map<string, string>();

  constructor(readonly options: RuleOptions, private readonly indent = "    ") {}

  /** A new SSA value name. */
  fresh(): string {
    return `%${this.#next++}`;
  }

  /** Appends one op; returns its result name (`%N`, or for k > 1 results the base `%N`). */
  op(name: string, spec: OpSpec): string {
    const result = this.fresh();
    this.lines.push(this.indent + this.opText(result, name, spec));
    return result;
  }

  /** The text of an op producing `result` (no indent). */
  opText(result: string | null, name: string, spec: OpSpec): string {
    const operands = spec.operands ?? [];
    const operandTypes = spec.operandTypes ?? [];
    const results = typeof spec.results === "string" ? [spec.results] : spec.results;
    const lhs = result === null
      ? ""
      : results.length > 1
      ? `${result}:${results.length} = `
      : `${result} = `;
    const regions = spec.regions?.length
      ? ` (${
        spec.regions.map((r) =>
          `{\n${r.map((l) => `${this.indent}  ${l}`).join("\n")}\n${this.indent}}`
        )
          .join(", ")
      })`
      : "";
    const attrs = spec.attrs?.length ? ` {${spec.attrs.join(", ")}}` : "";
    const resultTypes = results.length === 1 ? results[0] : `(${results.join(", ")})`;
    return `${lhs}"${name}"(${operands.join(", ")})${regions}${attrs} : (${
      operandTypes.join(", ")
    }) -> ${resultTypes}`;
  }

  /**
   * A region `^bb0(%a: tensor<T>, %b: tensor<T>)` returning `op(%a, %b)`: the body of
   * reduce and all_reduce.
   */
  binaryRegion(opName: string, dtype: DType): string[] {
    const t = tensorType([], dtype);
    const a = this.fresh(), b = this.fresh(), r = this.fresh();
    return [
      `^bb0(${a}: ${t}, ${b}: ${t}):`,
      `  ${this.opText(r, opName, { operands: [a, b], operandTypes: [t, t], results: t })}`,
      `  ${
        this.opText(null, "stablehlo.return", { operands: [r], operandTypes: [t], results: "()" })
      }`,
    ];
  }

  /**
   * `value` (an f32 tensor of `shape`) converted to bf16, emitted once per value: the forward
   * and backward matmuls that read one activation share a single bf16 copy.
   */
  asBf16(value: string, shape: readonly number[]): string {
    let out = this.#bf16.get(value);
    if (!out) {
      out = this.op("stablehlo.convert", {
        operands: [value],
        operandTypes: [tensorType(shape, "f32")],
        results: tensorType(shape, "bf16"),
      });
      this.#bf16.set(value, out);
    }
    return out;
  }
}
