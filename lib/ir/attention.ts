/**
 * Fused scaled dot-product attention, FlashAttention's way: the forward keeps only the output
 * and one log-sum-exp per query row, and the backward recomputes the probabilities from them,
 * so no [.., N, M] tensor outlives either kernel (timm's fused attention keeps the same).
 *
 * The IR has single-output nodes, so each primitive packs its results along an axis:
 * - `attention(q, k, v)`: q [B, H, N, D], k and v [B, H, M, D] -> [B, H, N, D + 1], the output
 *   `softmax(scale q k^T) v` in [.., :D] and `lse = logsumexp(scale q k^T)` in [.., D];
 * - `attention_grad(q, k, v, out, g)` with `out` the attention node and `g` its cotangent (the
 *   output's in [.., :D], the lse's in [.., D]; or [B, H, N, D], the output's alone, when the lse
 *   has none) -> [B, H, N + 2M, D]: dq, then dk, then dv along axis 2.
 *
 * `attentionDecomposed` / `attentionGradDecomposed` are the same computations in primitive ops:
 * the form the StableHLO emitter hands to XLA (which fuses it itself), and `expandAttention`
 * rewrites a graph into for backends without the fused kernels (the WebGPU backend's fallback for
 * shapes its kernels do not serve: lib/backend/webgpu/attention.ts).
 */
import type { Graph } from "./graph.ts";
import * as ops from "./ops.ts";
import { Primitive } from "./primitive.ts";
import { isPrim, Tensor } from "./tensor.ts";

function checkQkv(op: string, q: Tensor, k: Tensor, v: Tensor): void {
  for (const [name, t] of [["q", q], ["k", k], ["v", v]] as const) {
    if (t.ndim !== 4 || t.dtype !== "f32") {
      throw new Error(`${op}: ${name} must be f32 [batch, heads, tokens, head_dim], got ${t}`);
    }
  }
  const [b, h, , d] = q.shape;
  if (k.shape[0] !== b || k.shape[1] !== h || k.shape[3] !== d) {
    throw new Error(`${op}: k [${k.shape}] does not match q [${q.shape}] (batch, heads, head_dim)`);
  }
  if (v.shape.some((s, i) => s !== k.shape[i])) {
    throw new Error(`${op}: v [${v.shape}] must have k's shape [${k.shape}]`);
  }
}

/** The fused node: [B, H, N, D + 1] (output, then lse per row). */
export function attentionPacked(q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  checkQkv("attention", q, k, v);
  const [b, h, n, d] = q.shape;
  return ops.node(Primitive.Attention, [q, k, v], { scale }, [b, h, n, d + 1], "f32");
}

/** softmax(scale q k^T) v: [B, H, N, D], by the fused primitive. */
export function attention(q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  return ops.sliceAxis(attentionPacked(q, k, v, scale), 3, 0, q.shape[3]);
}

/** The gradient node: [B, H, N + 2M, D] (dq, dk, dv along axis 2). */
export function attentionGrad(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  g: Tensor,
  scale: number,
): Tensor {
  checkQkv("attention_grad", q, k, v);
  const [b, h, n, d] = q.shape, m = k.shape[2];
  const packed = [b, h, n, d + 1];
  if (out.dtype !== "f32" || !ops.sameShape(out.shape, packed)) {
    throw new Error(`attention_grad: out must be f32 [${packed}], got ${out}`);
  }
  if (
    g.dtype !== "f32" ||
    !(ops.sameShape(g.shape, packed) || ops.sameShape(g.shape, [b, h, n, d]))
  ) {
    throw new Error(`attention_grad: g must be f32 [${packed}] or [${[b, h, n, d]}], got ${g}`);
  }
  return ops.node(
    Primitive.AttentionGrad,
    [q, k, v, out, g],
    { scale },
    [b, h, n + 2 * m, d],
    "f32",
  );
}

const QK = { lhsBatch: [0, 1], rhsBatch: [0, 1], lhsContract: [3], rhsContract: [3] };
const PV = { lhsBatch: [0, 1], rhsBatch: [0, 1], lhsContract: [3], rhsContract: [2] };
/** [B, H, N, M] x [B, H, N, D] contracting N: [B, H, M, D]. */
const PT = { lhsBatch: [0, 1], rhsBatch: [0, 1], lhsContract: [2], rhsContract: [2] };

const keep = (x: Tensor, shape: readonly number[]) => ops.broadcastInDim(x, shape, [0, 1, 2]);

/**
 * The softmax of the decompositions, s = scale q k^T, m = max s, e = exp(s - m), l = sum e,
 * p = e / l, written once so that the backward's recomputation is the forward's ops exactly: XLA
 * then merges the two (CSE). Measured with XLA's bytes accessed on the ViT-S/16 step (batch 8,
 * BENCHMARKS.md): 9.45 GB, against 10.14 GB for out = (e v) / l with the backward's
 * p = exp(s - lse), and 10.37 GB for deit3-jax's step.
 */
function softmaxParts(q: Tensor, k: Tensor, scale: number) {
  const s = ops.mul(ops.dotGeneral(q, k, QK), scale);
  const m = ops.max(s, 3);
  const e = ops.exp(ops.sub(s, keep(m, s.shape)));
  const l = ops.sum(e, 3);
  return { m, l, p: ops.div(e, keep(l, e.shape)) };
}

/** `attention` in primitive ops: out = p v, lse = m + log l (see softmaxParts). */
export function attentionDecomposed(q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  const { m, l, p } = softmaxParts(q, k, scale);
  const out = ops.dotGeneral(p, v, PV);
  const lse = ops.add(m, ops.log(l));
  return ops.concatenate([out, ops.expandDims(lse, 3)], 3);
}

/**
 * `attention_grad` in primitive ops: p recomputed as the forward computes it (softmaxParts; the
 * saved lse is not needed then), dv = p^T do, dp = do v^T,
 * delta = rowsum(do * out) - dlse, ds = scale p (dp - delta), dq = ds k, dk = ds^T q.
 */
export function attentionGradDecomposed(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  g: Tensor,
  scale: number,
): Tensor {
  const d = q.shape[3];
  const o = ops.sliceAxis(out, 3, 0, d);
  const dout = ops.sliceAxis(g, 3, 0, d);
  const dlse = g.shape[3] === d
    ? ops.zeros(g.shape.slice(0, 3))
    : ops.reshape(ops.sliceAxis(g, 3, d, d + 1), g.shape.slice(0, 3));
  const { p } = softmaxParts(q, k, scale);
  const dv = ops.dotGeneral(p, dout, PT);
  const dp = ops.dotGeneral(dout, v, QK);
  const delta = ops.sub(ops.sum(ops.mul(dout, o), 3), dlse);
  const ds = ops.mul(ops.mul(p, ops.sub(dp, keep(delta, dp.shape))), scale);
  const dq = ops.dotGeneral(ds, k, PV);
  const dk = ops.dotGeneral(ds, q, PT);
  return ops.concatenate([dq, dk, dv], 2);
}

/** The decomposition of an attention or attention_grad node over (rewritten) inputs `ins`. */
export function decomposeAttention(t: Tensor, ins: readonly Tensor[]): Tensor {
  const scale = (t.params as { scale: number }).scale;
  return isPrim(t, Primitive.Attention)
    ? attentionDecomposed(ins[0], ins[1], ins[2], scale)
    : attentionGradDecomposed(ins[0], ins[1], ins[2], ins[3], ins[4], scale);
}

/**
 * `graph` with each attention and attention_grad node replaced by `rewrite(node, its rewritten
 * inputs)`, every other node rebuilt over rewritten inputs; the same graph when it has none.
 */
export function rewriteAttention(
  graph: Graph,
  rewrite: (t: Tensor, ins: Tensor[]) => Tensor,
): Graph {
  const isAttention = (t: Tensor) =>
    t.prim === Primitive.Attention || t.prim === Primitive.AttentionGrad;
  if (!graph.nodes.some(isAttention)) return graph;
  const map = new Map<number, Tensor>();
  const nodes: Tensor[] = [];
  const seen = new Set<number>();
  const add = (t: Tensor) => {
    if (seen.has(t.id)) return;
    seen.add(t.id);
    for (const x of t.inputs) add(x);
    nodes.push(t);
  };
  for (const t of graph.nodes) {
    const ins = t.inputs.map((x) => map.get(x.id) ?? x);
    let r: Tensor;
    if (isAttention(t)) r = rewrite(t, ins);
    else if (ins.some((x, i) => x !== t.inputs[i])) {
      r = new Tensor(t.prim, ins, t.params, t.shape, t.dtype);
    } else r = t;
    if (r !== t) map.set(t.id, r);
    add(r);
  }
  const outputs = graph.outputs.map((o) => map.get(o.id) ?? o);
  for (const o of outputs) add(o);
  return { inputs: graph.inputs, outputs, nodes };
}

/**
 * `graph` with every attention node replaced by its decomposition (the same graph if none; the
 * [.., N, N] probabilities are then materialized, as in the unfused form).
 */
export function expandAttention(graph: Graph): Graph {
  return rewriteAttention(graph, decomposeAttention);
}
