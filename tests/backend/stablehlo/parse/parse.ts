/**
 * StableHLO text (the generic-form subset this emitter writes) back to an IR graph, so that an
 * exported program can be run on the CPU or WebGPU backends and the emitter checked against the
 * reference semantics without XLA. Each op is rebuilt with the tracing API, which re-infers
 * shapes; a declared result type that disagrees is an error naming the op's line.
 */
import type { DType } from "../../../../lib/ir/dtype.ts";
import { buildGraph, type Graph } from "../../../../lib/ir/graph.ts";
import * as ops from "../../../../lib/ir/ops.ts";
import type { Tensor } from "../../../../lib/ir/tensor.ts";
import type { Alias } from "../../../../lib/backend/stablehlo/aliasing.ts";
import { build, checkType, intAttr, type Op, type TypeSpec } from "./parse_ops.ts";

export interface ParsedProgram {
  graph: Graph;
  moduleName: string;
  numReplicas: number;
  numPartitions: number;
  aliases: Alias[];
}

/** Parses a module with one `func.func @main`. Throws `line N: ...` for anything unsupported. */
export function parseStableHlo(text: string): ParsedProgram {
  return new Parser(text).module();
}

class Parser {
  #pos = 0;
  #lineAt = 0;
  #lineNo = 1;
  constructor(private readonly src: string) {}

  module(): ParsedProgram {
    this.expectWord("module");
    let moduleName = "";
    if (this.peek() === "@") moduleName = this.symbol();
    let attrs = new Map<string, string>();
    if (this.tryWord("attributes")) attrs = this.attrDict();
    this.expect("{");
    this.expectWord("func.func");
    this.tryWord("public");
    const fn = this.symbol();
    if (fn !== "main") this.fail(`expected @main, got @${fn}`);
    this.expect("(");
    const inputs: Tensor[] = [];
    const aliases: Alias[] = [];
    const values = new Map<string, Tensor[]>();
    while (this.peek() !== ")") {
      const name = this.valueName();
      this.expect(":");
      const t = this.type();
      const input = ops.input(inputs.length, name, t.shape, t.dtype);
      if (this.peek() === "{") {
        const a = this.attrDict().get("tf.aliasing_output");
        if (a !== undefined) aliases.push({ input: inputs.length, output: intAttr(a) });
      }
      values.set(name, [input]);
      inputs.push(input);
      if (!this.tryChar(",")) break;
    }
    this.expect(")");
    this.expect("->");
    const resultTypes = this.typeList();
    this.expect("{");
    let outputs: Tensor[] | null = null;
    while (this.peek() !== "}") {
      const op = this.op();
      if (op.name === "func.return") {
        outputs = op.operands.map((o) => lookup(values, o, op.line));
        break;
      }
      const results = build(op, op.operands.map((o) => lookup(values, o, op.line)));
      if (results.length !== op.resultTypes.length) {
        this.fail(
          `${op.name} gives ${results.length} results, ${op.resultTypes.length} declared`,
          op.line,
        );
      }
      results.forEach((r, i) => checkType(r, op.resultTypes[i], op));
      define(values, op, results);
    }
    if (!outputs) this.fail("@main has no func.return");
    this.skipSpace();
    this.expect("}");
    this.expect("}");
    if (outputs.length !== resultTypes.length) {
      this.fail("func.return does not match the result types");
    }
    return {
      graph: buildGraph(inputs, outputs),
      moduleName,
      numReplicas: attrs.has("mhlo.num_replicas") ? intAttr(attrs.get("mhlo.num_replicas")!) : 1,
      numPartitions: attrs.has("mhlo.num_partitions")
        ? intAttr(attrs.get("mhlo.num_partitions")!)
        : 1,
      aliases,
    };
  }

  op(): Op {
    this.skipSpace();
    const line = this.line();
    const results: string[] = [];
    if (this.peek() === "%") {
      const base = this.valueName();
      let count = 1;
      if (this.tryChar(":")) count = this.integer();
      for (let i = 0; i < count; i++) results.push(count === 1 ? base : `${base}#${i}`);
      this.expect("=");
    }
    const name = this.string();
    this.expect("(");
    const operands: string[] = [];
    while (this.peek() !== ")") {
      operands.push(this.valueRef());
      if (!this.tryChar(",")) break;
    }
    this.expect(")");
    const regions: Op[][] = [];
    if (this.peek() === "(") {
      this.expect("(");
      do regions.push(this.region()); while (this.tryChar(","));
      this.expect(")");
    }
    const attrs = this.peek() === "{" ? this.attrDict() : new Map<string, string>();
    this.expect(":");
    const operandTypes = this.typeList();
    this.expect("->");
    const resultTypes = this.peek() === "(" ? this.typeList() : [this.type()];
    return { line, results, name, operands, regions, attrs, operandTypes, resultTypes };
  }

  region(): Op[] {
    this.expect("{");
    this.expect("^");
    this.identifier();
    this.expect("(");
    const args: string[] = [];
    while (this.peek() !== ")") {
      args.push(this.valueName());
      this.expect(":");
      this.type();
      if (!this.tryChar(",")) break;
    }
    this.expect(")");
    this.expect(":");
    const body: Op[] = [];
    while (this.peek() !== "}") body.push(this.op());
    this.expect("}");
    // Record the block arguments on the body for `regionBody`.
    (body as Op[] & { args?: string[] }).args = args;
    return body;
  }

  attrDict(): Map<string, string> {
    const out = new Map<string, string>();
    this.expect("{");
    while (this.peek() !== "}") {
      this.skipSpace();
      const name = this.identifier();
      this.expect("=");
      out.set(name, this.rawValue());
      if (!this.tryChar(",")) break;
    }
    this.expect("}");
    return out;
  }

  /** An attribute value's text: up to the next `,` or `}` outside brackets and quotes. */
  rawValue(): string {
    this.skipSpace();
    const start = this.#pos;
    let depth = 0;
    while (this.#pos < this.src.length) {
      const c = this.src[this.#pos];
      if (c === '"') {
        this.#pos = this.src.indexOf('"', this.#pos + 1) + 1;
        continue;
      }
      if (c === "<" || c === "[" || c === "{" || c === "(") depth++;
      else if (c === ">" && this.src[this.#pos - 1] === "-") { /* "->" is not a bracket */ }
      else if (c === ">" || c === "]" || c === "}" || c === ")") {
        if (depth === 0) break;
        depth--;
      } else if (c === "," && depth === 0) break;
      this.#pos++;
    }
    return this.src.slice(start, this.#pos).trim();
  }

  type(): TypeSpec {
    this.skipSpace();
    const m = /^tensor<([0-9x]*?)(f32|bf16|i32|ui32|ui8|i1)>/.exec(
      this.src.slice(this.#pos, this.#pos + 200),
    );
    if (!m) this.fail("expected a tensor type (f32, bf16, i32, ui32, ui8, i1)");
    this.#pos += m[0].length;
    const shape = m[1] ? m[1].split("x").filter((d) => d !== "").map(Number) : [];
    return { shape, dtype: DTYPE_OF[m[2]] };
  }

  typeList(): TypeSpec[] {
    this.expect("(");
    const out: TypeSpec[] = [];
    while (this.peek() !== ")") {
      out.push(this.type());
      if (!this.tryChar(",")) break;
    }
    this.expect(")");
    return out;
  }

  valueName(): string {
    this.skipSpace();
    const m = /^%[A-Za-z0-9_$.-]+/.exec(this.src.slice(this.#pos, this.#pos + 100));
    if (!m) this.fail("expected a value name");
    this.#pos += m[0].length;
    return m[0];
  }

  valueRef(): string {
    const name = this.valueName();
    if (this.src[this.#pos] === "#") {
      this.#pos++;
      return `${name}#${this.integer()}`;
    }
    return name;
  }

  symbol(): string {
    this.expect("@");
    return this.identifier();
  }

  identifier(): string {
    this.skipSpace();
    const m = /^[A-Za-z_][A-Za-z0-9_$.]*/.exec(this.src.slice(this.#pos, this.#pos + 200));
    if (!m) this.fail("expected an identifier");
    this.#pos += m[0].length;
    return m[0];
  }

  string(): string {
    this.expect('"');
    const end = this.src.indexOf('"', this.#pos);
    const s = this.src.slice(this.#pos, end);
    this.#pos = end + 1;
    return s;
  }

  integer(): number {
    this.skipSpace();
    const m = /^\d+/.exec(this.src.slice(this.#pos, this.#pos + 20));
    if (!m) this.fail("expected an integer");
    this.#pos += m[0].length;
    return Number(m[0]);
  }

  expectWord(w: string): void {
    if (!this.tryWord(w)) this.fail(`expected "${w}"`);
  }

  tryWord(w: string): boolean {
    this.skipSpace();
    if (
      this.src.startsWith(w, this.#pos) &&
      !/[A-Za-z0-9_.]/.test(this.src[this.#pos + w.length] ?? "")
    ) {
      this.#pos += w.length;
      return true;
    }
    return false;
  }

  expect(s: string): void {
    this.skipSpace();
    if (!this.src.startsWith(s, this.#pos)) this.fail(`expected "${s}"`);
    this.#pos += s.length;
  }

  tryChar(c: string): boolean {
    this.skipSpace();
    if (this.src[this.#pos] !== c) return false;
    this.#pos++;
    return true;
  }

  peek(): string {
    this.skipSpace();
    return this.src[this.#pos] ?? "";
  }

  skipSpace(): void {
    for (;;) {
      while (/\s/.test(this.src[this.#pos] ?? "")) this.#pos++;
      if (this.src.startsWith("//", this.#pos)) {
        const nl = this.src.indexOf("\n", this.#pos);
        this.#pos = nl < 0 ? this.src.length : nl;
      } else return;
    }
  }

  /** The current line number (counted incrementally: the parser only moves forward). */
  line(): number {
    for (; this.#lineAt < this.#pos; this.#lineAt++) {
      if (this.src.charCodeAt(this.#lineAt) === 10) this.#lineNo++;
    }
    return this.#lineNo;
  }

  fail(message: string, line = this.line()): never {
    const near = this.src.slice(this.#pos, this.#pos + 40).split("\n")[0];
    throw new Error(`stablehlo parse: line ${line}: ${message} (at "${near}")`);
  }
}

const DTYPE_OF: Record<string, DType> = {
  f32: "f32",
  bf16: "bf16",
  i32: "i32",
  ui32: "u32",
  ui8: "u8",
  i1: "bool",
};

function define(values: Map<string, Tensor[]>, op: Op, results: Tensor[]): void {
  if (op.results.length === 1) values.set(op.results[0], results);
  else op.results.forEach((name, i) => values.set(name, [results[i]]));
}

function lookup(values: Map<string, Tensor[]>, ref: string, line: number): Tensor {
  const v = values.get(ref);
  if (!v) throw new Error(`stablehlo parse: line ${line}: ${ref} is not defined`);
  return v[0];
}
