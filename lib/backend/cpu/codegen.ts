/**
 * JavaScript code generation for fused loops: one function per fused group (an elementwise
 * root or a reduction with its input expression), built as source text and compiled with
 * `new Function`, so that V8 sees monomorphic, inlined code and no intermediate arrays.
 *
 * Every intermediate is rounded to its dtype exactly as a store into its TypedArray would
 * round it (Math.fround for f32, |0 for i32, ...), so fused results are bit-identical to the
 * reference kernels in kernels.ts. Functions are cached by source.
 */
import type { DType } from "../../ir/dtype.ts";
import { type CompareDirection, type ElementwisePrimitive, Primitive } from "../../ir/primitive.ts";
import { hasKind, type Tensor } from "../../ir/tensor.ts";
import { buildGroupIR, type GroupIR, type Ref, type Stmt } from "./fused_ir.ts";
import { erf } from "./math.ts";
import type { GraphPlan } from "./plan.ts";

/** A compiled group: call `fn(out, ...leaves, scratch?)` with the leaves' arrays. */
export interface GroupKernel {
  fn: (...arrays: unknown[]) => void;
  /** Positions of the nodes read as arrays, in argument order (aliases resolved). */
  leaves: number[];
  /** Reductions need a Float64Array accumulator of the output's size. */
  scratch: number;
  source: string;
}

/** Builds (or takes from the cache) the JS kernel of a group. */
export function groupKernel(plan: GraphPlan, p: number): GroupKernel {
  return jsKernel(buildGroupIR(plan, p));
}

export function jsKernel(ir: GroupIR): GroupKernel {
  const source = renderJs(ir);
  let fn = CACHE.get(source);
  if (!fn) {
    fn = new Function("erf", source)(erf) as (...arrays: unknown[]) => void;
    CACHE.set(source, fn);
  }
  return { fn, leaves: ir.leaves, scratch: ir.reduce ? ir.root.size : 0, source };
}

const CACHE = new Map<string, (...arrays: unknown[]) => void>();

function renderJs(ir: GroupIR): string {
  const { dims, lins, stmts, invariant } = ir;
  const inner = dims.length - 1;
  const idx = (i: number) => (i === inner ? "j" : `i${i}`);
  // base offsets (outside the inner loop) and inner index expressions
  const base = lins.map((l, id) => {
    const terms = [String(l.k)];
    for (let d = 0; d < inner; d++) if (l.c[d] !== 0) terms.push(`${l.c[d]} * ${idx(d)}`);
    return `const b${id} = ${terms.join(" + ")};`;
  });
  const at = lins.map((l, id) => {
    const c = l.c[inner];
    return c === 0 ? `b${id}` : c === 1 ? `b${id} + j` : `b${id} + ${c} * j`;
  });
  const ref = (r: Ref) => ("stmt" in r ? `t${r.stmt}` : literal(r.lit));
  const decl = (s: Stmt, i: number) => {
    let e: string;
    if (s.kind === "load") e = `l${s.leaf}[${at[s.lin]}]`;
    else if (s.kind === "index") e = wrap(s.dtype, at[s.lin]);
    else {
      const op = opExpr(s.node, s.args.map(ref));
      e = s.root ? op : wrap(s.node.dtype, op);
    }
    return `const t${i} = ${e};`;
  };
  const hoisted = stmts.map((s, i) => (invariant[i] ? decl(s, i) : "")).filter((x) => x);
  const body = stmts.map((s, i) => (invariant[i] ? "" : decl(s, i))).filter((x) => x);
  const value = ref(ir.value);
  const args = ["o", ...ir.leaves.map((_, i) => `l${i}`), ...(ir.reduce ? ["acc"] : [])];
  const lines: string[] = [`"use strict";`, `return function fused(${args.join(", ")}) {`];
  const prim = ir.root.prim;
  if (ir.reduce) lines.push(`acc.fill(${prim === Primitive.ReduceSum ? "0" : "-Infinity"});`);
  for (let d = 0; d < inner; d++) lines.push(`for (let i${d} = 0; i${d} < ${dims[d]}; i${d}++) {`);
  lines.push(...base, ...hoisted);
  const combine = (a: string, v: string) =>
    prim === Primitive.ReduceSum ? `${a} + ${v}` : `(${a} !== ${a} || ${a} > ${v} ? ${a} : ${v})`;
  const out = ir.outLin;
  if (!ir.reduce) {
    lines.push(
      `for (let j = 0; j < ${dims[inner]}; j++) {`,
      ...body,
      `o[${at[out]}] = ${value};`,
      "}",
    );
  } else if (lins[out].c[inner] === 0) {
    lines.push(`let s = acc[b${out}];`);
    lines.push(
      `for (let j = 0; j < ${dims[inner]}; j++) {`,
      ...body,
      `s = ${combine("s", value)};`,
      "}",
    );
    lines.push(`acc[b${out}] = s;`);
  } else {
    lines.push(`for (let j = 0; j < ${dims[inner]}; j++) {`, ...body);
    lines.push(`const q = ${at[out]};`, `acc[q] = ${combine("acc[q]", value)};`, "}");
  }
  for (let d = 0; d < inner; d++) lines.push("}");
  if (ir.reduce) lines.push(`for (let i = 0; i < ${ir.root.size}; i++) o[i] = acc[i];`);
  lines.push("};");
  return lines.join("\n");
}

/** JS expression for one elementwise op of the reference semantics (kernels.ts). */
function opExpr(t: Tensor, a: string[]): string {
  if (!hasKind(t, "elementwise")) throw new Error(`cpu codegen: ${t.prim} is not elementwise`);
  return (JS_OPS[t.prim] as JsOp<ElementwisePrimitive>)(a, t);
}

/** The JS expression of an op over its operand expressions (`a`), per elementwise primitive. */
type JsOp<P extends ElementwisePrimitive> = (a: string[], t: Tensor<P>) => string;

const JS_OPS: { [P in ElementwisePrimitive]: JsOp<P> } = {
  [Primitive.Neg]: ([x]) => `-${x}`,
  [Primitive.Exp]: ([x]) => `Math.exp(${x})`,
  [Primitive.Log]: ([x]) => `Math.log(${x})`,
  [Primitive.Sqrt]: ([x]) => `Math.sqrt(${x})`,
  [Primitive.Rsqrt]: ([x]) => `1 / Math.sqrt(${x})`,
  [Primitive.Tanh]: ([x]) => `Math.tanh(${x})`,
  [Primitive.Erf]: ([x]) => `erf(${x})`,
  [Primitive.Not]: ([x], t) => (t.inputs[0].dtype === "bool" ? `(${x} ? 0 : 1)` : `~${x}`),
  [Primitive.StopGradient]: ([x]) => x,
  [Primitive.Convert]: ([x], t) => convertExpr(t.dtype, x),
  [Primitive.Add]: ([x, y]) => `${x} + ${y}`,
  [Primitive.Sub]: ([x, y]) => `${x} - ${y}`,
  [Primitive.Mul]: (
    [x, y],
    t,
  ) => (isInt(t.inputs[0].dtype) ? `Math.imul(${x}, ${y})` : `${x} * ${y}`),
  [Primitive.Div]: ([x, y], t) =>
    t.inputs[0].dtype === "f32" ? `${x} / ${y}` : `(${y} === 0 ? -1 : Math.trunc(${x} / ${y}))`,
  [Primitive.Max]: ([x, y]) => `(${x} !== ${x} || ${x} > ${y} ? ${x} : ${y})`,
  [Primitive.Min]: ([x, y]) => `(${x} !== ${x} || ${x} < ${y} ? ${x} : ${y})`,
  [Primitive.Compare]: ([x, y], t) => `(${x} ${COMPARE_OPS[t.params.direction]} ${y} ? 1 : 0)`,
  [Primitive.And]: ([x, y]) => `${x} & ${y}`,
  [Primitive.Or]: ([x, y]) => `${x} | ${y}`,
  [Primitive.Xor]: ([x, y]) => `${x} ^ ${y}`,
  [Primitive.ShiftLeft]: ([x, y]) => `(${y} >>> 0 >= 32 ? 0 : ${x} << ${y})`,
  [Primitive.ShiftRightLogical]: ([x, y], t) =>
    t.inputs[0].dtype === "i32"
      ? `(${y} >>> 0 >= 32 ? 0 : (${x} >>> ${y}) | 0)`
      : `(${y} >>> 0 >= 32 ? 0 : ${x} >>> ${y})`,
  [Primitive.Select]: ([p, x, y]) => `(${p} ? ${x} : ${y})`,
};

const COMPARE_OPS: Record<CompareDirection, string> = {
  eq: "===",
  ne: "!==",
  lt: "<",
  le: "<=",
  gt: ">",
  ge: ">=",
};

/** i32 and u32 multiply as 32-bit integers (Math.imul), as a store into their arrays would. */
function isInt(d: DType): boolean {
  return d === "i32" || d === "u32";
}

function convertExpr(to: DType, v: string): string {
  switch (to) {
    case "f32":
      return v;
    case "bool":
      return `(${v} !== 0 ? 1 : 0)`;
    case "u8":
      return `(${v} !== ${v} ? 0 : Math.min(255, Math.max(0, Math.trunc(${v}))))`;
    case "i32":
      return `(${v} !== ${v} ? 0 : Math.min(2147483647, Math.max(-2147483648, Math.trunc(${v}))))`;
    case "u32":
      return `(${v} !== ${v} ? 0 : Math.min(4294967295, Math.max(0, Math.trunc(${v}))))`;
    default:
      throw new Error(`cpu codegen: convert to ${to} is not fused`);
  }
}

/** Rounds an intermediate as a store into its TypedArray would. */
function wrap(dtype: DType, e: string): string {
  switch (dtype) {
    case "f32":
      return `Math.fround(${e})`;
    case "i32":
      return `(${e}) | 0`;
    case "u32":
      return `(${e}) >>> 0`;
    default:
      return `(${e}) & 255`;
  }
}

function literal(v: number): string {
  if (Object.is(v, -0)) return "(-0)";
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "(-Infinity)";
  return v < 0 ? `(${v})` : String(v);
}
