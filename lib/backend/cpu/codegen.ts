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
import { Primitive, type PrimitiveParams } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import {
  broadcastMap,
  flatLin,
  identityMap,
  type IndexMap,
  type Lin,
  linKey,
  mapKey,
  reshapeMap,
  sliceMap,
  transposeMap,
} from "./index_map.ts";
import { erf } from "./math.ts";
import type { GraphPlan } from "./plan.ts";

/** A compiled group: call `fn(out, ...leaves, scratch?)` with the leaves' arrays. */
export interface GroupKernel {
  fn: (...arrays: unknown[]) => void;
  /** Positions of the nodes read as arrays, in argument order (aliases resolved by caller). */
  leaves: number[];
  /** Reductions need a Float64Array accumulator of the output's size. */
  scratch: number;
  source: string;
}

/** Builds (or takes from the cache) the kernel computing root `p` of the plan. */
export function groupKernel(plan: GraphPlan, p: number): GroupKernel {
  const g = new GroupBuilder(plan, p);
  const { source, leaves, scratch } = g.build();
  let fn = CACHE.get(source);
  if (!fn) {
    fn = new Function("erf", source)(erf) as (...arrays: unknown[]) => void;
    CACHE.set(source, fn);
  }
  return { fn, leaves, scratch, source };
}

const CACHE = new Map<string, (...arrays: unknown[]) => void>();

type P<K extends Primitive> = PrimitiveParams[K];

interface Stmt {
  name: string;
  /** Expression text; `$L<i>` stands for the index expression of lin i. */
  expr: string;
  /** Lins it indexes with, and statements it reads: for hoisting out of the inner loop. */
  lins: number[];
  deps: string[];
}

class GroupBuilder {
  readonly #plan: GraphPlan;
  readonly #root: Tensor;
  readonly #rootPos: number;
  readonly #domain: readonly number[];
  readonly #rank: number;
  readonly #stmts: Stmt[] = [];
  readonly #cse = new Map<string, string>();
  readonly #lins: Lin[] = [];
  readonly #linIds = new Map<string, number>();
  readonly #leafArgs = new Map<number, string>();
  readonly #leaves: number[] = [];

  constructor(plan: GraphPlan, p: number) {
    this.#plan = plan;
    this.#rootPos = p;
    this.#root = plan.nodes[p];
    const reduce = plan.kind[p] === "reduce";
    this.#domain = reduce ? this.#root.inputs[0].shape : this.#root.shape;
    this.#rank = this.#domain.length;
  }

  build(): { source: string; leaves: number[]; scratch: number } {
    const root = this.#root;
    const reduce = this.#plan.kind[this.#rootPos] === "reduce";
    const domainMap = identityMap(this.#domain);
    let value: string;
    let outLin: Lin;
    if (reduce) {
      value = this.#gen(root.inputs[0], domainMap);
      const { axes } = root.params as P<Primitive.ReduceSum>;
      const kept = this.#domain.map((_, d) => d).filter((d) => !axes.includes(d));
      outLin = flatLin(kept.map((d) => domainMap[d]), root.shape, this.#rank);
    } else {
      value = this.#expand(root, domainMap, true);
      outLin = flatLin(domainMap, root.shape, this.#rank);
    }
    const outId = this.#lin(outLin);
    const source = this.#render(value, outId, reduce);
    return { source, leaves: this.#leaves, scratch: reduce ? root.size : 0 };
  }

  // ------------------------------------------------------------ expression building

  /** The value of node `t` at the element addressed by `map`. */
  #gen(t: Tensor, map: IndexMap): string {
    const plan = this.#plan;
    const p = plan.position.get(t.id)!;
    const role = plan.role[p];
    if (t.prim === Primitive.Constant && t.size === 1) {
      const v = (t.params as P<Primitive.Constant>).value;
      if (v.dtype !== "bf16") return literal(v.data[0]);
    }
    if (role === "alias") {
      const x = t.inputs[0];
      if (t.prim !== Primitive.Reshape) return this.#gen(x, map);
      const m = reshapeMap(map, t.shape, x.shape, this.#rank);
      if (m) return this.#gen(x, m);
      return this.#load(x, flatLin(map, t.shape, this.#rank));
    }
    if (role === "source" || role === "root") {
      return this.#load(t, flatLin(map, t.shape, this.#rank));
    }
    return this.#expand(t, map, false);
  }

  /** Computes an inlined node (or the root) from its operands. */
  #expand(t: Tensor, map: IndexMap, isRoot: boolean): string {
    const key = `${t.id}|${mapKey(map)}`;
    const hit = this.#cse.get(key);
    if (hit) return hit;
    const rank = this.#rank;
    let out: string;
    switch (t.prim) {
      case Primitive.BroadcastInDim: {
        const x = t.inputs[0];
        out = this.#gen(
          x,
          broadcastMap(map, x.shape, (t.params as P<Primitive.BroadcastInDim>).dims, rank),
        );
        break;
      }
      case Primitive.Transpose:
        out = this.#gen(t.inputs[0], transposeMap(map, (t.params as P<Primitive.Transpose>).perm));
        break;
      case Primitive.Slice: {
        const { start, strides } = t.params as P<Primitive.Slice>;
        out = this.#gen(t.inputs[0], sliceMap(map, start, strides));
        break;
      }
      case Primitive.Reshape:
      case Primitive.StopGradient:
      case Primitive.AllReduceSum:
        // only reached as a root copy; aliases are resolved in #gen
        out = this.#gen(t, map);
        break;
      case Primitive.Iota: {
        const lin = map[(t.params as P<Primitive.Iota>).axis];
        const id = this.#lin(lin);
        out = this.#emit(wrap(t.dtype, `$L${id}`), [id], []);
        break;
      }
      default: {
        const args = t.inputs.map((x) => this.#gen(x, map));
        const e = opExpr(t, args);
        out = this.#emit(isRoot ? e : wrap(t.dtype, e), [], args.filter((a) => a.startsWith("t")));
      }
    }
    this.#cse.set(key, out);
    return out;
  }

  #load(t: Tensor, lin: Lin): string {
    // Aliases read their base buffer: same flat index.
    let base = t;
    let bp = this.#plan.position.get(base.id)!;
    while (this.#plan.role[bp] === "alias") {
      base = base.inputs[0];
      bp = this.#plan.position.get(base.id)!;
    }
    let arg = this.#leafArgs.get(bp);
    if (!arg) {
      arg = `l${this.#leaves.length}`;
      this.#leaves.push(bp);
      this.#leafArgs.set(bp, arg);
    }
    const key = `load|${arg}|${linKey(lin)}`;
    const hit = this.#cse.get(key);
    if (hit) return hit;
    const id = this.#lin(lin);
    const out = this.#emit(`${arg}[$L${id}]`, [id], []);
    this.#cse.set(key, out);
    return out;
  }

  #emit(expr: string, lins: number[], deps: string[]): string {
    const name = `t${this.#stmts.length}`;
    this.#stmts.push({ name, expr, lins, deps });
    return name;
  }

  #lin(l: Lin): number {
    const key = linKey(l);
    let id = this.#linIds.get(key);
    if (id === undefined) {
      id = this.#lins.length;
      this.#lins.push(l);
      this.#linIds.set(key, id);
    }
    return id;
  }

  // ------------------------------------------------------------ rendering

  #render(value: string, outId: number, reduce: boolean): string {
    const { dims, lins } = mergeDomain(this.#domain, this.#lins);
    const r = dims.length;
    const inner = r - 1;
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
    const sub = (e: string) => e.replace(/\$L(\d+)/g, (_, i) => at[Number(i)]);
    // Statements that do not depend on the inner index run once per inner loop.
    const invariant = new Set<string>();
    for (const s of this.#stmts) {
      if (s.lins.every((id) => lins[id].c[inner] === 0) && s.deps.every((d) => invariant.has(d))) {
        invariant.add(s.name);
      }
    }
    const decl = (s: Stmt) => `const ${s.name} = ${sub(s.expr)};`;
    const hoisted = this.#stmts.filter((s) => invariant.has(s.name)).map(decl);
    const body = this.#stmts.filter((s) => !invariant.has(s.name)).map(decl);
    const args = ["o", ...this.#leaves.map((_, i) => `l${i}`), ...(reduce ? ["acc"] : [])];
    const lines: string[] = [`"use strict";`, `return function fused(${args.join(", ")}) {`];
    const prim = this.#root.prim;
    if (reduce) {
      lines.push(`acc.fill(${prim === Primitive.ReduceSum ? "0" : "-Infinity"});`);
    }
    for (let d = 0; d < inner; d++) {
      lines.push(`for (let i${d} = 0; i${d} < ${dims[d]}; i${d}++) {`);
    }
    lines.push(...base, ...hoisted);
    const combine = (a: string, v: string) =>
      prim === Primitive.ReduceSum ? `${a} + ${v}` : `(${a} !== ${a} || ${a} > ${v} ? ${a} : ${v})`;
    const outInner = lins[outId].c[inner];
    if (!reduce) {
      lines.push(
        `for (let j = 0; j < ${dims[inner]}; j++) {`,
        ...body,
        `o[${at[outId]}] = ${value};`,
        "}",
      );
    } else if (outInner === 0) {
      lines.push(`let s = acc[b${outId}];`);
      lines.push(
        `for (let j = 0; j < ${dims[inner]}; j++) {`,
        ...body,
        `s = ${combine("s", value)};`,
        "}",
      );
      lines.push(`acc[b${outId}] = s;`);
    } else {
      lines.push(`for (let j = 0; j < ${dims[inner]}; j++) {`, ...body);
      lines.push(`const q = ${at[outId]};`, `acc[q] = ${combine("acc[q]", value)};`, "}");
    }
    for (let d = 0; d < inner; d++) lines.push("}");
    if (reduce) lines.push(`for (let i = 0; i < ${this.#root.size}; i++) o[i] = acc[i];`);
    lines.push("};");
    return lines.join("\n");
  }
}

/**
 * Drops size-1 dims and merges adjacent dims that every access walks contiguously
 * (c[d] = c[d+1] * n[d+1]), so most loops become one flat loop. Returns at least one dim.
 */
function mergeDomain(domain: readonly number[], lins: Lin[]): { dims: number[]; lins: Lin[] } {
  const keep = domain.map((_, d) => d).filter((d) => domain[d] !== 1);
  const dims: number[] = [];
  const groups: number[][] = [];
  for (const d of keep) {
    const g = groups[groups.length - 1];
    const prev = g?.[g.length - 1];
    if (
      g && lins.every((l) => l.c[prev!] === l.c[d] * domain[d])
    ) {
      g.push(d);
      dims[dims.length - 1] *= domain[d];
    } else {
      groups.push([d]);
      dims.push(domain[d]);
    }
  }
  if (dims.length === 0) return { dims: [1], lins: lins.map((l) => ({ c: [0], k: l.k })) };
  return {
    dims,
    lins: lins.map((l) => ({ c: groups.map((g) => l.c[g[g.length - 1]]), k: l.k })),
  };
}

/** JS expression for one elementwise op of the reference semantics (kernels.ts). */
function opExpr(t: Tensor, a: string[]): string {
  const xd = t.inputs[0]?.dtype;
  const [x, y] = a;
  switch (t.prim) {
    case Primitive.Neg:
      return `-${x}`;
    case Primitive.Exp:
      return `Math.exp(${x})`;
    case Primitive.Log:
      return `Math.log(${x})`;
    case Primitive.Sqrt:
      return `Math.sqrt(${x})`;
    case Primitive.Rsqrt:
      return `1 / Math.sqrt(${x})`;
    case Primitive.Tanh:
      return `Math.tanh(${x})`;
    case Primitive.Erf:
      return `erf(${x})`;
    case Primitive.Not:
      return xd === "bool" ? `(${x} ? 0 : 1)` : `~${x}`;
    case Primitive.StopGradient:
    case Primitive.AllReduceSum:
    case Primitive.Reshape:
      return x;
    case Primitive.Convert:
      return convertExpr(t.dtype, x);
    case Primitive.Add:
      return `${x} + ${y}`;
    case Primitive.Sub:
      return `${x} - ${y}`;
    case Primitive.Mul:
      return xd === "i32" || xd === "u32" ? `Math.imul(${x}, ${y})` : `${x} * ${y}`;
    case Primitive.Div:
      return xd === "f32" ? `${x} / ${y}` : `(${y} === 0 ? -1 : Math.trunc(${x} / ${y}))`;
    case Primitive.Max:
      return `(${x} !== ${x} || ${x} > ${y} ? ${x} : ${y})`;
    case Primitive.Min:
      return `(${x} !== ${x} || ${x} < ${y} ? ${x} : ${y})`;
    case Primitive.Compare: {
      const op = { eq: "===", ne: "!==", lt: "<", le: "<=", gt: ">", ge: ">=" }[
        (t.params as P<Primitive.Compare>).direction
      ];
      return `(${x} ${op} ${y} ? 1 : 0)`;
    }
    case Primitive.And:
      return `${x} & ${y}`;
    case Primitive.Or:
      return `${x} | ${y}`;
    case Primitive.Xor:
      return `${x} ^ ${y}`;
    case Primitive.ShiftLeft:
      return `(${y} >>> 0 >= 32 ? 0 : ${x} << ${y})`;
    case Primitive.ShiftRightLogical:
      return xd === "i32"
        ? `(${y} >>> 0 >= 32 ? 0 : (${x} >>> ${y}) | 0)`
        : `(${y} >>> 0 >= 32 ? 0 : ${x} >>> ${y})`;
    case Primitive.Select:
      return `(${a[0]} ? ${a[1]} : ${a[2]})`;
    default:
      throw new Error(`cpu codegen: ${t.prim} is not elementwise`);
  }
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
