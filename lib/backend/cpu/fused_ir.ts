/**
 * The loop program of one fused group, independent of how it is rendered (JS source in
 * codegen.ts, wasm SIMD in wasm_fused.ts): a domain of loops, the linear index forms it
 * reads with, and a list of single-assignment statements (loads, index values, ops).
 */
import type { DType } from "../../ir/dtype.ts";
import { Primitive } from "../../ir/primitive.ts";
import { hasKind, isPrim, type Tensor } from "../../ir/tensor.ts";
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
import type { GraphPlan } from "./plan.ts";

/** A statement's operand: a statement index, or a literal scalar of a dtype. */
export type Ref = { stmt: number } | { lit: number; dtype: DType };

export type Stmt =
  /** Element of leaf `leaf` (index into `leaves`) at lin `lin`. */
  | { kind: "load"; leaf: number; lin: number; dtype: DType }
  /** The value of lin `lin` itself (iota). */
  | { kind: "index"; lin: number; dtype: DType }
  /** `node`'s elementwise op applied to `args`, rounded to node.dtype unless it is the root. */
  | { kind: "op"; node: Tensor; args: Ref[]; root: boolean };

export interface GroupIR {
  root: Tensor;
  reduce: boolean;
  /** Loop domain after merging (at least one dim; the last is the inner loop). */
  dims: number[];
  /** Index forms over `dims`. */
  lins: Lin[];
  stmts: Stmt[];
  /** The value stored (or accumulated) per domain element. */
  value: Ref;
  /** Lin of the output element (for reductions, kept dims only). */
  outLin: number;
  /** Node positions read as buffers (aliases resolved to their base), in argument order. */
  leaves: number[];
  leafDtypes: DType[];
  /** Statements that do not depend on the inner loop index. */
  invariant: boolean[];
}

/** Builds the loop program computing root `p` of the plan (an elementwise or reduce root). */
export function buildGroupIR(plan: GraphPlan, p: number): GroupIR {
  return new Builder(plan, p).build();
}

class Builder {
  readonly #plan: GraphPlan;
  readonly #root: Tensor;
  readonly #reduce: boolean;
  readonly #domain: readonly number[];
  readonly #rank: number;
  readonly #stmts: Stmt[] = [];
  readonly #cse = new Map<string, Ref>();
  readonly #lins: Lin[] = [];
  readonly #linIds = new Map<string, number>();
  readonly #leafIndex = new Map<number, number>();
  readonly #leaves: number[] = [];
  readonly #leafDtypes: DType[] = [];

  constructor(plan: GraphPlan, p: number) {
    this.#plan = plan;
    this.#root = plan.nodes[p];
    this.#reduce = plan.kind[p] === "reduce";
    this.#domain = this.#reduce ? this.#root.inputs[0].shape : this.#root.shape;
    this.#rank = this.#domain.length;
  }

  build(): GroupIR {
    const root = this.#root;
    const domainMap = identityMap(this.#domain);
    let value: Ref;
    let outLin: Lin;
    if (this.#reduce) {
      value = this.#gen(root.inputs[0], domainMap);
      if (!hasKind(root, "reduce")) throw new Error(`cpu fused: ${root} is not a reduction`);
      const { axes } = root.params;
      const kept = this.#domain.map((_, d) => d).filter((d) => !axes.includes(d));
      outLin = flatLin(kept.map((d) => domainMap[d]), root.shape, this.#rank);
    } else {
      value = this.#expand(root, domainMap, true);
      outLin = flatLin(domainMap, root.shape, this.#rank);
    }
    const outId = this.#lin(outLin);
    const { dims, lins } = mergeDomain(this.#domain, this.#lins);
    const inner = dims.length - 1;
    const invariant: boolean[] = [];
    for (const s of this.#stmts) {
      invariant.push(
        s.kind === "op"
          ? s.args.every((a) => !("stmt" in a) || invariant[a.stmt])
          : lins[s.lin].c[inner] === 0,
      );
    }
    return {
      root,
      reduce: this.#reduce,
      dims,
      lins,
      stmts: this.#stmts,
      value,
      outLin: outId,
      leaves: this.#leaves,
      leafDtypes: this.#leafDtypes,
      invariant,
    };
  }

  /** The value of node `t` at the element addressed by `map`. */
  #gen(t: Tensor, map: IndexMap): Ref {
    const plan = this.#plan;
    const p = plan.position.get(t.id)!;
    const role = plan.role[p];
    if (isPrim(t, Primitive.Constant) && t.size === 1) {
      const v = t.params.value;
      if (v.dtype !== "bf16") return { lit: v.data[0], dtype: v.dtype };
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
  #expand(t: Tensor, map: IndexMap, isRoot: boolean): Ref {
    const key = `${t.id}|${mapKey(map)}`;
    const hit = this.#cse.get(key);
    if (hit) return hit;
    const rank = this.#rank;
    let out: Ref;
    const x = t.inputs[0];
    // movement ops and iota are index maps: they change where the operand is read
    if (isPrim(t, Primitive.BroadcastInDim)) {
      out = this.#gen(x, broadcastMap(map, x.shape, t.params.dims, rank));
    } else if (isPrim(t, Primitive.Transpose)) {
      out = this.#gen(x, transposeMap(map, t.params.perm));
    } else if (isPrim(t, Primitive.Slice)) {
      out = this.#gen(x, sliceMap(map, t.params.start, t.params.strides));
    } else if (isPrim(t, Primitive.Iota)) {
      const lin = map[t.params.axis];
      out = this.#emit(
        { kind: "index", lin: this.#lin(lin), dtype: t.dtype },
        `index|${linKey(lin)}|${t.dtype}`,
      );
    } else {
      const args = t.inputs.map((x) => this.#gen(x, map));
      // Value numbering: the same op on the same operands is computed once.
      const vn = `op|${t.prim}|${t.dtype}|${JSON.stringify(t.params)}|${isRoot}|${
        args.map(refKey)
      }`;
      out = this.#emit({ kind: "op", node: t, args, root: isRoot }, vn);
    }
    this.#cse.set(key, out);
    return out;
  }

  #load(t: Tensor, lin: Lin): Ref {
    // Aliases read their base buffer: same flat index.
    let base = t;
    let bp = this.#plan.position.get(base.id)!;
    while (this.#plan.role[bp] === "alias") {
      base = base.inputs[0];
      bp = this.#plan.position.get(base.id)!;
    }
    let leaf = this.#leafIndex.get(bp);
    if (leaf === undefined) {
      leaf = this.#leaves.length;
      this.#leaves.push(bp);
      this.#leafDtypes.push(base.dtype);
      this.#leafIndex.set(bp, leaf);
    }
    const id = this.#lin(lin);
    return this.#emit({ kind: "load", leaf, lin: id, dtype: base.dtype }, `load|${leaf}|${id}`);
  }

  #emit(s: Stmt, key: string): Ref {
    const hit = this.#cse.get(key);
    if (hit) return hit;
    this.#stmts.push(s);
    const ref = { stmt: this.#stmts.length - 1 };
    this.#cse.set(key, ref);
    return ref;
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
}

export function refKey(r: Ref): string {
  return "stmt" in r ? `s${r.stmt}` : `${r.dtype}:${Object.is(r.lit, -0) ? "-0" : r.lit}`;
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
    if (g && lins.every((l) => l.c[prev!] === l.c[d] * domain[d])) {
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
