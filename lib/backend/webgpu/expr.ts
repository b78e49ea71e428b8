/**
 * Straight-line WGSL for a fused expression. `ExprBuilder.value(node, index)` emits `let`
 * statements computing `node` at a multi-dimensional index (one u32 WGSL expression per dim)
 * and returns the name holding the result. Elementwise ops pass the index through; movement
 * ops (reshape, broadcast, transpose, slice, pad, concatenate) rewrite it, so they cost index
 * arithmetic instead of memory traffic. Values and index expressions are memoized per scope,
 * so a node used twice at the same index is computed once.
 */
import type { DType } from "../../ir/dtype.ts";
import { stridesOf } from "../../ir/host_tensor.ts";
import type { Tensor } from "../../ir/tensor.ts";
import { wgslType } from "./storage.ts";

/**
 * Where to evaluate a node: one u32 expression per dim, a flat row-major offset, or a vec4 of
 * the four flat elements 4q..4q+3. Flat and vec4 indices pass through elementwise ops and
 * reshapes for free; other ops unflatten them (or evaluate the four lanes one by one).
 */
export type Index = readonly string[] | FlatIndex | VecIndex;

export class FlatIndex {
  constructor(readonly flat: string) {}
}

export class VecIndex {
  constructor(readonly q: string) {}
}

export function isFlat(i: Index): i is FlatIndex {
  return i instanceof FlatIndex;
}

export function isVec(i: Index): i is VecIndex {
  return i instanceof VecIndex;
}

/** The memo key of an index. */
export function indexKey(i: Index): string {
  return isFlat(i) ? `@${i.flat}` : isVec(i) ? `#${i.q}` : `[${i.join(",")}]`;
}

export interface KernelContext {
  /** WGSL array name of the storage binding that holds `n`, when `n` is read from memory. */
  binding(n: Tensor): string | undefined;
  /** The fused reduction or contraction: its value at the kernel's own index. */
  core?: { node: Tensor; value: string };
  /** Values already computed at the kernel's own index (outputs of a multi-output kernel). */
  known?: Map<number, string>;
  /** `indexKey` of the kernel's own index, where `known` values apply. */
  ownKey?: string;
}

/** Emitted code grows with distinct (node, index) pairs; past this a kernel is unreasonable. */
const MAX_LINES = 20000;

/** The WGSL type of `dtype` values at `idx`: scalar, or vec4 at a VecIndex. */
export function typeAt(idx: Index, dtype: DType): string {
  return isVec(idx) ? `vec4<${wgslType(dtype)}>` : wgslType(dtype);
}

export class ExprBuilder {
  readonly helpers = new Set<string>();
  /** Bindings read with vec4 loads. */
  readonly vecLoads = new Set<string>();
  readonly #ctx: KernelContext;
  readonly #lines: string[] = [];
  readonly #scopes: Map<string, string>[] = [new Map()];
  #indent = "  ";
  #next = 0;

  /**
   * `emitterOf` gives the rule of a node's primitive: WGSL for it at an index in terms of its
   * inputs' values (emitters.ts; passed in, as the rules call back into this builder).
   */
  constructor(
    ctx: KernelContext,
    readonly emitterOf: (n: Tensor) => (b: ExprBuilder, n: Tensor, idx: Index) => string,
  ) {
    this.#ctx = ctx;
  }

  /** The value of `n` at `index`. */
  value(n: Tensor, index: Index): string {
    if (this.#ctx.core?.node === n) return this.#ctx.core.value;
    const idx = isFlat(index) || isVec(index)
      ? index
      : index.map((e, i) => (n.shape[i] === 1 ? "0u" : e));
    const ik = indexKey(idx);
    const known = this.#ctx.known?.get(n.id);
    if (known !== undefined && ik === this.#ctx.ownKey) return known;
    const key = `v${n.id}${ik}`;
    const hit = this.#lookup(key);
    if (hit !== undefined) return hit;
    const buf = this.#ctx.binding(n);
    let expr: string;
    if (buf !== undefined) expr = this.#load(buf, n, idx);
    else expr = this.emitterOf(n)(this, n, idx);
    if (isAtom(expr)) {
      this.#scopes[this.#scopes.length - 1].set(key, expr);
      return expr;
    }
    const name = this.fresh("v");
    this.emit(`let ${name}: ${typeAt(idx, n.dtype)} = ${expr};`);
    this.#scopes[this.#scopes.length - 1].set(key, name);
    return name;
  }

  /** Binds a compound u32 index expression to a name (memoized); atoms pass through. */
  index(expr: string): string {
    if (isAtom(expr)) return expr;
    const key = `i:${expr}`;
    const hit = this.#lookup(key);
    if (hit !== undefined) return hit;
    const name = this.fresh("i");
    this.emit(`let ${name} = ${expr};`);
    this.#scopes[this.#scopes.length - 1].set(key, name);
    return name;
  }

  /** Per-dim index of `n`-shaped `index` (unflattening a flat one). */
  dims(index: Index, shape: readonly number[]): readonly string[] {
    if (isVec(index)) throw new Error("webgpu: internal: per-dim index of a vec4 index");
    return isFlat(index) ? this.unflatten(index.flat, shape) : index;
  }

  /** Row-major flat offset of `idx` in `shape`. */
  linear(idx: readonly string[], shape: readonly number[]): string {
    const strides = stridesOf(shape);
    const terms: string[] = [];
    idx.forEach((e, i) => {
      if (shape[i] === 1 || e === "0u") return;
      terms.push(strides[i] === 1 ? e : `${e} * ${strides[i]}u`);
    });
    if (terms.length === 0) return "0u";
    return this.index(terms.join(" + "));
  }

  /** The multi-dim index of flat offset `flat` in `shape`. */
  unflatten(flat: string, shape: readonly number[]): string[] {
    const strides = stridesOf(shape);
    const first = shape.findIndex((d) => d !== 1);
    return shape.map((d, i) => {
      if (d === 1) return "0u";
      const q = strides[i] === 1 ? flat : `${flat} / ${strides[i]}u`;
      return this.index(i === first ? q : `(${q}) % ${d}u`);
    });
  }

  fresh(prefix: string): string {
    return `${prefix}${this.#next++}`;
  }

  emit(line: string): void {
    this.#lines.push(this.#indent + line);
    if (this.#lines.length > MAX_LINES) {
      throw new Error(
        `webgpu: a fused kernel exceeded ${MAX_LINES} lines of WGSL (too many distinct movement paths)`,
      );
    }
  }

  /** Runs `fn` in a nested scope (a loop or branch body): names made inside stay inside. */
  scoped<T>(fn: () => T): T {
    this.#scopes.push(new Map());
    const indent = this.#indent;
    this.#indent += "  ";
    try {
      return fn();
    } finally {
      this.#indent = indent;
      this.#scopes.pop();
    }
  }

  code(): string {
    return this.#lines.join("\n");
  }

  /** A load of stored `n` at `idx`, through the binding's accessors (see bindings.ts). */
  #load(buf: string, n: Tensor, idx: Index): string {
    if (isVec(idx)) {
      if (n.size === 1) return `vec4<${wgslType(n.dtype)}>(ld_${buf}(0u))`;
      this.vecLoads.add(buf);
      return `ld4_${buf}(${idx.q})`;
    }
    return `ld_${buf}(${isFlat(idx) ? idx.flat : this.linear(idx, n.shape)})`;
  }

  #lookup(key: string): string | undefined {
    for (let s = this.#scopes.length - 1; s >= 0; s--) {
      const hit = this.#scopes[s].get(key);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
}

/** A name or a numeric literal: cheap to repeat, never worth a `let`. */
function isAtom(expr: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(expr) ||
    /^\(?-?[0-9][0-9a-fA-Fx.e+-]*[uif]?\)?$/.test(expr);
}
