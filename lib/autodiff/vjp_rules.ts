/**
 * One VJP rule per primitive: given the forward node and the cotangent of its output, return a
 * cotangent per input (null where the input is not differentiable). Rules see equal shapes,
 * since broadcasting is explicit; the sum back to a source shape lives only in the
 * broadcast_in_dim rule.
 */
import * as ops from "../ir/ops.ts";
import { Primitive } from "../ir/primitive.ts";
import { isPrim, type Tensor } from "../ir/tensor.ts";
import { isFloat } from "../ir/dtype.ts";
import { attentionGrad } from "../ir/attention.ts";

/** The VJP of a node of primitive P (its params typed by P). */
export type VjpRule<P extends Primitive = Primitive> = (
  node: Tensor<P>,
  g: Tensor,
) => (Tensor | null)[];

const none = (n: Tensor) => n.inputs.map(() => null);

export const VJP_RULES: { [P in Primitive]: VjpRule<P> } = {
  [Primitive.Input]: none,
  [Primitive.Constant]: none,
  [Primitive.Iota]: none,
  [Primitive.Neg]: (_n, g) => [ops.neg(g)],
  [Primitive.Exp]: (n, g) => [ops.mul(g, n)],
  [Primitive.Log]: (n, g) => [ops.div(g, n.inputs[0])],
  [Primitive.Sqrt]: (n, g) => [ops.div(ops.mul(g, 0.5), n)],
  [Primitive.Rsqrt]: (n, g) => [ops.mul(ops.mul(g, -0.5), ops.div(n, n.inputs[0]))],
  [Primitive.Tanh]: (n, g) => [ops.mul(g, ops.sub(1, ops.mul(n, n)))],
  [Primitive.Erf]: (n, g) => {
    const x = n.inputs[0];
    return [ops.mul(g, ops.mul(ops.exp(ops.neg(ops.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
  },
  [Primitive.Not]: none,
  [Primitive.Add]: (_n, g) => [g, g],
  [Primitive.Sub]: (_n, g) => [g, ops.neg(g)],
  [Primitive.Mul]: (n, g) => [ops.mul(g, n.inputs[1]), ops.mul(g, n.inputs[0])],
  [Primitive.Div]: (n, g) => {
    const [x, y] = n.inputs;
    const gx = ops.div(g, y);
    return [gx, ops.neg(ops.mul(gx, ops.div(x, y)))];
  },
  [Primitive.Max]: (n, g) => minMaxVjp(n, g),
  [Primitive.Min]: (n, g) => minMaxVjp(n, g),
  [Primitive.Compare]: none,
  [Primitive.And]: none,
  [Primitive.Or]: none,
  [Primitive.Xor]: none,
  [Primitive.ShiftLeft]: none,
  [Primitive.ShiftRightLogical]: none,
  [Primitive.Select]: (n, g) => {
    const [p] = n.inputs;
    const zero = ops.zeros(g.shape, g.dtype);
    return [null, ops.where(p, g, zero), ops.where(p, zero, g)];
  },
  [Primitive.Convert]: (n, g) => {
    const x = n.inputs[0];
    return [isFloat(x.dtype) && isFloat(n.dtype) ? ops.convert(g, x.dtype) : null];
  },
  [Primitive.StopGradient]: none,
  [Primitive.ReduceSum]: (n, g) => {
    const x = n.inputs[0];
    const { axes } = n.params;
    const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    return [ops.broadcastInDim(g, x.shape, kept)];
  },
  [Primitive.ReduceMax]: (n, g) => {
    // Ties share the cotangent equally, as JAX does.
    const x = n.inputs[0];
    const { axes } = n.params;
    const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
    const mask = ops.convert(ops.eq(x, ops.broadcastInDim(n, x.shape, kept)), x.dtype);
    const count = ops.sum(mask, axes);
    return [ops.mul(mask, ops.broadcastInDim(ops.div(g, count), x.shape, kept))];
  },
  [Primitive.Reshape]: (n, g) => [ops.reshape(g, n.inputs[0].shape)],
  [Primitive.BroadcastInDim]: (n, g) => {
    const x = n.inputs[0];
    const { dims } = n.params;
    // Sum over the new dims and over the dims the operand had as 1.
    const summed = n.shape.map((_, i) => i).filter((i) => {
      const j = dims.indexOf(i);
      return j < 0 || (x.shape[j] === 1 && n.shape[i] !== 1);
    });
    return [ops.reshape(ops.sum(g, summed), x.shape)];
  },
  [Primitive.Transpose]: (n, g) => {
    const { perm } = n.params;
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [ops.transpose(g, inv)];
  },
  [Primitive.Slice]: (n, g) => {
    const x = n.inputs[0];
    const { start, strides } = n.params;
    let r = g;
    // Strided axes: interleave zeros, then pad to the operand's extent.
    for (let a = 0; a < x.ndim; a++) {
      if (strides[a] > 1) r = interleaveZeros(r, a, strides[a]);
    }
    const high = x.shape.map((d, a) => d - start[a] - r.shape[a]);
    if (high.some((h) => h < 0)) {
      r = ops.slice(r, r.shape.map(() => 0), r.shape.map((d, a) => d + Math.min(0, high[a])));
    }
    return [ops.pad(r, start, high.map((h) => Math.max(0, h)), 0)];
  },
  [Primitive.Pad]: (n, g) => {
    const x = n.inputs[0];
    const { low } = n.params;
    return [ops.slice(g, low, low.map((l, i) => l + x.shape[i]))];
  },
  [Primitive.Concatenate]: (n, g) => {
    const { axis } = n.params;
    let offset = 0;
    return n.inputs.map((x) => {
      const part = ops.sliceAxis(g, axis, offset, offset + x.shape[axis]);
      offset += x.shape[axis];
      return part;
    });
  },
  [Primitive.DotGeneral]: (n, g) => {
    const [a, b] = n.inputs;
    const p = n.params;
    const nb = p.lhsBatch.length;
    const lhsFree = freeDims(a.ndim, p.lhsBatch, p.lhsContract);
    const rhsFree = freeDims(b.ndim, p.rhsBatch, p.rhsContract);
    const gBatch = range(0, nb), gLhs = range(nb, nb + lhsFree.length);
    const gRhs = range(nb + lhsFree.length, g.ndim);
    // d lhs: contract g's rhs-free dims with rhs's free dims.
    const da = ops.dotGeneral(
      g,
      b,
      { lhsBatch: gBatch, rhsBatch: p.rhsBatch, lhsContract: gRhs, rhsContract: rhsFree },
      p.precision,
    );
    const restB = [...p.rhsContract].sort((x, y) => x - y);
    const daDims = [
      ...p.lhsBatch,
      ...lhsFree,
      ...restB.map((r) => p.lhsContract[p.rhsContract.indexOf(r)]),
    ];
    const db = ops.dotGeneral(
      g,
      a,
      { lhsBatch: gBatch, rhsBatch: p.lhsBatch, lhsContract: gLhs, rhsContract: lhsFree },
      p.precision,
    );
    const restA = [...p.lhsContract].sort((x, y) => x - y);
    const dbDims = [
      ...p.rhsBatch,
      ...rhsFree,
      ...restA.map((l) => p.rhsContract[p.lhsContract.indexOf(l)]),
    ];
    return [
      ops.transpose(da, inversePlacement(daDims)),
      ops.transpose(db, inversePlacement(dbDims)),
    ];
  },
  [Primitive.AllReduceSum]: (n, g) => [ops.allReduceSum(g, n.params.replicas)],
  [Primitive.Attention]: (n, g) => {
    // one kernel recomputes the probabilities from the saved lse (lib/ir/attention.ts)
    const [q, k, v] = n.inputs;
    const grads = attentionGrad(q, k, v, n, outputCotangent(g, q.shape[3]), n.params.scale);
    const N = q.shape[2], M = k.shape[2];
    return [
      ops.sliceAxis(grads, 2, 0, N),
      ops.sliceAxis(grads, 2, N, N + M),
      ops.sliceAxis(grads, 2, N + M, N + 2 * M),
    ];
  },
  [Primitive.AttentionGrad]: (n) => {
    throw new Error(`grad: ${n} has no second derivative (differentiate attentionDecomposed)`);
  },
};

/**
 * The cotangent of attention's packed result, or, when it is the output's cotangent padded with
 * a zero lse column (the usual case: the lse is read by nothing but the backward), that
 * cotangent itself, so the pad is never materialized.
 */
function outputCotangent(g: Tensor, d: number): Tensor {
  if (!isPrim(g, Primitive.Pad) || g.params.value !== 0) return g;
  const { low, high } = g.params;
  const lseOnly = low.every((l) => l === 0) && high.every((h, i) => h === (i === 3 ? 1 : 0));
  return lseOnly && g.inputs[0].shape[3] === d ? g.inputs[0] : g;
}

function minMaxVjp(n: Tensor, g: Tensor): Tensor[] {
  const [x, y] = n.inputs;
  const xWins = ops.convert(ops.eq(x, n), g.dtype);
  const yWins = ops.convert(ops.eq(y, n), g.dtype);
  // Where both equal the result, each gets half.
  const total = ops.add(xWins, yWins);
  const safe = ops.maximum(total, 1);
  return [ops.mul(g, ops.div(xWins, safe)), ops.mul(g, ops.div(yWins, safe))];
}

/** [.., n, ..] -> [.., n*s, ..] with zeros between consecutive elements along `axis`, trimmed. */
function interleaveZeros(x: Tensor, axis: number, s: number): Tensor {
  const expanded = ops.expandDims(x, axis + 1);
  const padded = ops.pad(
    expanded,
    expanded.shape.map(() => 0),
    expanded.shape.map((_, i) => (i === axis + 1 ? s - 1 : 0)),
  );
  const shape = [...x.shape];
  shape[axis] *= s;
  const flat = ops.reshape(padded, shape);
  return ops.sliceAxis(flat, axis, 0, (x.shape[axis] - 1) * s + 1);
}

function freeDims(ndim: number, batch: number[], contract: number[]): number[] {
  return range(0, ndim).filter((i) => !batch.includes(i) && !contract.includes(i));
}

function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
}

/** `dims[i]` says which operand dim result dim i is; returns the perm that restores operand order. */
function inversePlacement(dims: number[]): number[] {
  const perm = new Array<number>(dims.length);
  dims.forEach((d, i) => (perm[d] = i));
  return perm;
}

/** The rule of `node`'s primitive (the table, widened to any primitive at this one place). */
export function vjpRule(node: Tensor): VjpRule {
  return VJP_RULES[node.prim] as VjpRule;
}
