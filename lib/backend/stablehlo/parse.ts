/**
 * StableHLO text (the generic-form subset this emitter writes) back to an IR graph, so that an
 * exported program can be run on the CPU or WebGPU backends and the emitter checked against the
 * reference semantics without XLA. Each op is rebuilt with the tracing API, which re-infers
 * shapes; a declared result type that disagrees is an error naming the op's line.
 */
import { type DType, f32ToBf16 } from "../../ir/dtype.ts";
import { buildGraph, type Graph } from "../../ir/graph.ts";
import { type HostTensor, hostTensor, numel } from "../../ir/host_tensor.ts";
import * as ops from "../../ir/ops.ts";
import {
  type CompareDirection,
  type Precision,
  Primitive,
  type PrimitiveParams,
} from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import type { Alias } from "./aliasing.ts";

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

interface TypeSpec {
  shape: number[];
  dtype: DType;
}

interface Op {
  line: number;
  results: string[];
  name: string;
  operands: string[];
  regions: Op[][];
  attrs: Map<string, string>;
  operandTypes: TypeSpec[];
  resultTypes: TypeSpec[];
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

const UNARY: Record<string, (x: Tensor) => Tensor> = {
  "stablehlo.negate": ops.neg,
  "stablehlo.exponential": ops.exp,
  "stablehlo.log": ops.log,
  "stablehlo.sqrt": ops.sqrt,
  "stablehlo.rsqrt": ops.rsqrt,
  "stablehlo.tanh": ops.tanh,
  "chlo.erf": ops.erf,
  "stablehlo.not": ops.not,
};

const BINARY: Record<string, (a: Tensor, b: Tensor) => Tensor> = {
  "stablehlo.add": ops.add,
  "stablehlo.subtract": ops.sub,
  "stablehlo.multiply": ops.mul,
  "stablehlo.divide": ops.div,
  "stablehlo.maximum": ops.maximum,
  "stablehlo.minimum": ops.minimum,
  "stablehlo.and": ops.and,
  "stablehlo.or": ops.or,
  "stablehlo.xor": ops.xor,
  "stablehlo.shift_left": ops.shiftLeft,
  "stablehlo.shift_right_logical": ops.shiftRightLogical,
};

/** The IR value(s) of one op. */
function build(op: Op, args: Tensor[]): Tensor[] {
  const fail = (why: string): never => {
    throw new Error(`stablehlo parse: line ${op.line}: ${op.name}: ${why}`);
  };
  const attr = (name: string): string => op.attrs.get(name) ?? fail(`missing attribute ${name}`);
  const out = op.resultTypes[0];
  args.forEach((a, i) => {
    const t = op.operandTypes[i];
    if (!t || !sameType(a, t)) fail(`operand ${i} is ${a.dtype}[${a.shape}], declared ${show(t)}`);
  });
  if (op.name in UNARY) return [UNARY[op.name](args[0])];
  if (op.name in BINARY) return [BINARY[op.name](args[0], args[1])];
  switch (op.name) {
    case "stablehlo.constant":
      return [ops.constant(denseValue(attr("value"), out, fail))];
    case "stablehlo.iota":
      return [ops.iota(out.shape, intAttr(attr("iota_dimension")), out.dtype)];
    case "stablehlo.convert":
      return [ops.convert(args[0], out.dtype)];
    case "stablehlo.select":
      return [ops.where(args[0], args[1], args[2])];
    case "stablehlo.compare": {
      const dir = enumAttr(attr("comparison_direction"), "comparison_direction", fail);
      const kind = enumAttr(attr("compare_type"), "comparison_type", fail);
      const dtype = args[0].dtype;
      const expected = dtype === "f32" || dtype === "bf16"
        ? "FLOAT"
        : dtype === "i32"
        ? "SIGNED"
        : "UNSIGNED";
      if (kind !== expected) {
        fail(`compare_type ${kind} on ${dtype} (only ${expected} is supported)`);
      }
      return [ops.compare(args[0], args[1], dir.toLowerCase() as CompareDirection)];
    }
    case "stablehlo.reshape":
      return [ops.reshape(args[0], out.shape)];
    case "stablehlo.broadcast_in_dim":
      return [ops.broadcastInDim(args[0], out.shape, i64s(attr("broadcast_dimensions")))];
    case "stablehlo.transpose":
      return [ops.transpose(args[0], i64s(attr("permutation")))];
    case "stablehlo.slice":
      return [
        ops.slice(
          args[0],
          i64s(attr("start_indices")),
          i64s(attr("limit_indices")),
          i64s(attr("strides")),
        ),
      ];
    case "stablehlo.pad": {
      if (i64s(attr("interior_padding")).some((v) => v !== 0)) fail("interior padding");
      const value = constantScalar(args[1]) ?? fail("the padding value must be a constant");
      return [
        ops.pad(args[0], i64s(attr("edge_padding_low")), i64s(attr("edge_padding_high")), value),
      ];
    }
    case "stablehlo.concatenate":
      return [ops.concatenate(args, intAttr(attr("dimension")))];
    case "stablehlo.dot_general": {
      const dims = dotDims(attr("dot_dimension_numbers"));
      const precisions = [...attr("precision_config").matchAll(/#stablehlo<precision (\w+)>/g)]
        .map((m) => m[1]);
      if (precisions.length !== 2 || precisions[0] !== precisions[1]) fail("precision_config");
      const precision = precisions[0].toLowerCase() as Precision;
      let [a, b] = args;
      if (a.dtype === "bf16" && b.dtype === "bf16" && out.dtype === "f32") {
        // bf16 x bf16 products are exact in f32: f32 accumulation of the widened operands.
        a = ops.convert(a, "f32");
        b = ops.convert(b, "f32");
      }
      return [ops.dotGeneral(a, b, dims, precision)];
    }
    case "stablehlo.reduce": {
      const body = regionBody(op, fail);
      const axes = i64s(attr("dimensions"));
      const [x, init] = args;
      const initB = (r: Tensor) => ops.broadcastTo(init, r.shape);
      if (body === "stablehlo.add") {
        const r = ops.sum(x, axes);
        return [ops.add(r, initB(r))];
      }
      if (body === "stablehlo.maximum") {
        const r = ops.max(x, axes);
        return [ops.maximum(r, initB(r))];
      }
      return fail(`reduction body ${body}`);
    }
    case "stablehlo.all_reduce": {
      if (regionBody(op, fail) !== "stablehlo.add") fail("only sums are supported");
      const groups =
        /^dense<\[\[([\d, ]*)\]\]> : tensor<1x(\d+)xi64>$/.exec(attr("replica_groups")) ??
          fail("replica_groups must be one group");
      const ids = groups[1].split(",").map((s) => Number(s.trim()));
      if (ids.some((v, i) => v !== i)) fail("replica_groups must list 0..N-1");
      return [ops.allReduceSum(args[0], ids.length)];
    }
    case "stablehlo.optimization_barrier":
      return args;
    default:
      return fail("unsupported op");
  }
}

function regionBody(op: Op, fail: (why: string) => never): string {
  const region = op.regions[0] as (Op[] & { args?: string[] }) | undefined;
  if (!region || region.length !== 2 || region[1].name !== "stablehlo.return") {
    return fail("expected a region with one binary op and a return");
  }
  const [body, ret] = region;
  const args = region.args ?? [];
  if (body.operands.join() !== args.join() || ret.operands[0] !== body.results[0]) {
    fail("the region must apply its op to the block arguments and return the result");
  }
  return body.name;
}

function define(values: Map<string, Tensor[]>, op: Op, results: Tensor[]): void {
  if (op.results.length === 1) values.set(op.results[0], results);
  else op.results.forEach((name, i) => values.set(name, [results[i]]));
}

function lookup(values: Map<string, Tensor[]>, ref: string, line: number): Tensor {
  const v = values.get(ref);
  if (!v) throw new Error(`stablehlo parse: line ${line}: ${ref} is not defined`);
  return v[0];
}

function checkType(t: Tensor, spec: TypeSpec, op: Op): void {
  if (!sameType(t, spec)) {
    throw new Error(
      `stablehlo parse: line ${op.line}: ${op.name} computes ${t.dtype}[${t.shape}], declared ` +
        show(spec),
    );
  }
}

function sameType(t: { shape: readonly number[]; dtype: DType }, s: TypeSpec): boolean {
  return t.dtype === s.dtype && t.shape.length === s.shape.length &&
    t.shape.every((d, i) => d === s.shape[i]);
}

function show(t: TypeSpec | undefined): string {
  return t ? `${t.dtype}[${t.shape}]` : "nothing";
}

function intAttr(text: string): number {
  const m = /^(-?\d+)(?: : i\d+)?$/.exec(text.trim());
  if (!m) throw new Error(`stablehlo parse: expected an integer attribute, got "${text}"`);
  return Number(m[1]);
}

function i64s(text: string): number[] {
  const m = /^array<i64(?::([\d, -]*))?>$/.exec(text.trim());
  if (!m) throw new Error(`stablehlo parse: expected array<i64: ...>, got "${text}"`);
  return m[1] ? m[1].split(",").map((s) => Number(s.trim())) : [];
}

function enumAttr(text: string, kind: string, fail: (why: string) => never): string {
  const m = new RegExp(`^#stablehlo<${kind} (\\w+)>$`).exec(text.trim());
  return m ? m[1] : fail(`expected #stablehlo<${kind} ...>, got "${text}"`);
}

function dotDims(text: string): PrimitiveParams[Primitive.DotGeneral] {
  const field = (name: string) => {
    const m = new RegExp(`${name} = \\[([\\d, ]*)\\]`).exec(text);
    return m && m[1].trim() ? m[1].split(",").map((s) => Number(s.trim())) : [];
  };
  return {
    lhsBatch: field("lhs_batching_dimensions"),
    rhsBatch: field("rhs_batching_dimensions"),
    lhsContract: field("lhs_contracting_dimensions"),
    rhsContract: field("rhs_contracting_dimensions"),
    precision: "default",
  };
}

function constantScalar(t: Tensor): number | undefined {
  let n = t;
  while (n.prim === Primitive.BroadcastInDim) n = n.inputs[0];
  if (n.prim !== Primitive.Constant) return undefined;
  const v = (n.params as PrimitiveParams[Primitive.Constant]).value;
  if (v.data.length !== 1) return undefined;
  return v.dtype === "bf16" ? bf16Value(v.data[0]) : v.data[0];
}

/** `dense<...> : tensor<...>` as a host tensor of the declared type. */
function denseValue(text: string, type: TypeSpec, fail: (why: string) => never): HostTensor {
  const m = /^dense<([\s\S]*)> : (tensor<[^>]*>)$/.exec(text.trim()) ??
    fail(`bad dense value "${text.slice(0, 60)}"`);
  const body = m[1].trim();
  const n = numel(type.shape);
  const t = hostTensor(type.shape, type.dtype);
  if (body.startsWith('"0x')) {
    const hex = body.slice(3, -1);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (hex.length !== bytes.length * 2) {
      fail(`hex constant has ${hex.length / 2} bytes, ${bytes.length} expected`);
    }
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return t;
  }
  const items = body.replace(/[[\]]/g, " ").split(",").map((s) => s.trim()).filter((s) => s);
  if (items.length !== 1 && items.length !== n) fail(`${items.length} values for ${n} elements`);
  const values = items.map((s) => literal(s, type.dtype, fail));
  for (let i = 0; i < n; i++) t.data[i] = values[items.length === 1 ? 0 : i];
  return t;
}

/** One literal as stored in a HostTensor of `dtype` (bf16 as bits). */
function literal(s: string, dtype: DType, fail: (why: string) => never): number {
  if (dtype === "bool") return s === "true" ? 1 : s === "false" ? 0 : fail(`bad bool ${s}`);
  if (/^0x[0-9A-Fa-f]+$/.test(s)) {
    const bits = parseInt(s, 16);
    if (dtype === "f32") return new Float32Array(new Uint32Array([bits]).buffer)[0];
    if (dtype === "bf16") return bits;
    return fail(`hex literal ${s} for ${dtype}`);
  }
  const v = Number(s);
  if (Number.isNaN(v)) fail(`bad literal ${s}`);
  if ((dtype === "f32" || dtype === "bf16") && !/[.]/.test(s)) {
    fail(`float literal ${s} has no decimal point`);
  }
  return dtype === "bf16" ? f32ToBf16(v) : v;
}

function bf16Value(bits: number): number {
  return new Float32Array(new Uint32Array([(bits & 0xffff) << 16]).buffer)[0];
}
