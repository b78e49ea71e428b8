import type { DType } from "./dtype.ts";
import {
  type Primitive,
  PRIMITIVE_KIND,
  type PrimitiveKind,
  type PrimitiveOfKind,
  type PrimitiveParams,
} from "./primitive.ts";
import * as ops from "./ops.ts";

/**
 * A symbolic tensor: one node of a traced graph. Tensors are immutable; building an op creates
 * a new node that points at its inputs. Nothing is computed until a backend runs the graph.
 *
 * `Tensor<P>` is a node of primitive P with `params: PrimitiveParams[P]`; rule tables typed
 * `{ [P in Primitive]: Rule<P> }` take `Tensor<P>`, and `isPrim` narrows a plain `Tensor`.
 */
export class Tensor<P extends Primitive = Primitive> {
  static #nextId = 0;
  static #openSegment: RematSegment | undefined;
  readonly id: number;
  /** The rematerialized segment (`checkpoint`) this node was created in, if any. */
  readonly segment: RematSegment | undefined;
  /** For a node recomputed in the backward pass: the forward node it recomputes. */
  readonly rematOf: Tensor | undefined;

  constructor(
    readonly prim: P,
    readonly inputs: readonly Tensor[],
    readonly params: PrimitiveParams[P],
    readonly shape: readonly number[],
    readonly dtype: DType,
    rematOf?: Tensor<P>,
  ) {
    this.id = Tensor.#nextId++;
    this.segment = Tensor.#openSegment;
    this.rematOf = rematOf;
  }

  /**
   * Runs `fn`; the nodes it creates belong to a new segment (nested calls join the outermost
   * one), whose activations the backward pass recomputes instead of keeping. `barrier: false`
   * marks a cheap recomputation that XLA may merge back (see RematSegment).
   */
  static inSegment<T>(fn: () => T, barrier = true): T {
    if (Tensor.#openSegment) return fn();
    Tensor.#openSegment = new RematSegment(barrier);
    try {
      return fn();
    } finally {
      Tensor.#openSegment = undefined;
    }
  }

  /** The recomputation of this node over `inputs` (clones of its inputs in the same segment). */
  remat(inputs: readonly Tensor[]): Tensor<P> {
    return new Tensor(this.prim, inputs, this.params, this.shape, this.dtype, this);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  toString(): string {
    return `Tensor(${this.prim}, ${this.dtype}[${this.shape.join(",")}], #${this.id})`;
  }

  // Chaining sugar over lib/ir/ops.ts (numpy broadcasting, numbers become constants).
  add(o: ops.Operand): Tensor {
    return ops.add(this, o);
  }
  sub(o: ops.Operand): Tensor {
    return ops.sub(this, o);
  }
  mul(o: ops.Operand): Tensor {
    return ops.mul(this, o);
  }
  div(o: ops.Operand): Tensor {
    return ops.div(this, o);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  square(): Tensor {
    return ops.mul(this, this);
  }
  sum(axes?: number | number[], keepdims = false): Tensor {
    return ops.sum(this, axes, keepdims);
  }
  mean(axes?: number | number[], keepdims = false): Tensor {
    return ops.mean(this, axes, keepdims);
  }
  max(axes?: number | number[], keepdims = false): Tensor {
    return ops.max(this, axes, keepdims);
  }
  reshape(shape: readonly number[]): Tensor {
    return ops.reshape(this, shape);
  }
  transpose(perm?: readonly number[]): Tensor {
    return ops.transpose(this, perm);
  }
  astype(dtype: DType): Tensor {
    return ops.convert(this, dtype);
  }
}

/**
 * A rematerialized segment of a trace (one `checkpoint` or `recompute` call); compared by
 * identity. `barrier`: the StableHLO emitter keeps the recomputation apart from the forward
 * (`checkpoint`, jax.checkpoint); without it (`recompute`: elementwise work cheaper to redo than
 * to store) XLA is free to merge the two and fuse as it sees fit.
 */
export class RematSegment {
  static #next = 0;
  readonly id = RematSegment.#next++;
  constructor(readonly barrier = true) {}
}

/** Narrows `t` to a node of primitive `prim`, so that its params are typed. */
export function isPrim<P extends Primitive>(t: Tensor, prim: P): t is Tensor<P> {
  return t.prim === prim;
}

/** The params of `t`, which must be a node of `prim` (a wrong primitive throws, naming both). */
export function paramsOf<P extends Primitive>(t: Tensor, prim: P): PrimitiveParams[P] {
  if (!isPrim(t, prim)) throw new Error(`${t} is not a ${prim} node`);
  return t.params;
}

/** Narrows `t` to a node whose primitive is of kind `kind` (see PRIMITIVE_KIND). */
export function hasKind<K extends PrimitiveKind>(
  t: Tensor,
  kind: K,
): t is Tensor<PrimitiveOfKind<K>> {
  return PRIMITIVE_KIND[t.prim] === kind;
}
