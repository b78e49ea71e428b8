/**
 * Memory of the ViT's attention in the planned CPU graph: with the fused primitive, no
 * [batch, heads, N, N] buffer computed by the forward pass is read by the backward pass (so none
 * is live across the boundary); the unfused path (attention dropout) as the control, which keeps
 * them.
 */
import { planGraph } from "../../../lib/backend/cpu/plan.ts";
import { vjp } from "../../../lib/autodiff/grad.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { logSoftmax, oneHot } from "../../../lib/ir/nn.ts";
import * as ops from "../../../lib/ir/ops.ts";
import { flatten, unflatten } from "../../../lib/ir/pytree.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { initViT } from "../../../lib/model/init.ts";
import { Primitive } from "../../../lib/ir/primitive.ts";
import { type ViTConfig, vitForward } from "../../../lib/model/vit.ts";
import { assert, assertEquals } from "../../assert.ts";

const VIT: ViTConfig = {
  layers: 2,
  dim: 32,
  heads: 2,
  labels: 10,
  layerscale: true,
  patchSize: 4,
  imageSize: 20,
  posemb: "learnable",
  pooling: "cls",
  dropout: 0,
  droppath: 0,
  gradCkpt: false,
};
// N = 26 tokens (not head_dim + 1 = 17, the packed output's last dim)
const B = 3, N = (20 / 4) ** 2 + 1;

/** Forward buffers of shape [B, heads, N, N] that backward nodes read, in the CPU plan. */
function kept(
  c: ViTConfig,
): { kept: number; attentionKernels: number; pads: number; mlp: number } {
  const params = initViT(c, 0);
  const { leaves, def } = flatten<{ shape: number[]; dtype: string }>(params);
  const specs = [
    leaves.map((l) => ({ shape: l.shape, dtype: l.dtype })),
    { shape: [B, 20, 20, 3], dtype: "f32" },
    { shape: [B], dtype: "i32" },
    { shape: [], dtype: "f32" },
    { shape: [2], dtype: "u32" },
  ];
  let seed: Tensor | null = null;
  const { graph } = trace(
    (ps: Tensor[], images: Tensor, labels: Tensor, s: Tensor, key: Tensor) => {
      seed = s;
      const logits = vitForward(c, unflatten(def, ps), images, { det: false, key });
      const loss = ops.neg(ops.mean(ops.mul(logSoftmax(logits), oneHot(labels, 10))));
      return [loss, vjp(loss, ps, s)];
    },
    ...specs,
  );
  // backward nodes: those that depend on the cotangent seed, and recomputations (clones of
  // forward nodes, made by the reverse sweep for it)
  const backward = new Set<number>();
  for (const t of graph.nodes) {
    if (t === seed || t.rematOf || t.inputs.some((x) => backward.has(x.id))) backward.add(t.id);
  }
  const plan = planGraph(graph);
  const pos = (t: Tensor) => plan.position.get(t.id)!;
  const buffer = (p: number) => plan.role[p] === "root" || plan.role[p] === "source";
  // buffers a node's step reads: through inlined nodes and aliases down to roots and sources
  const reads = (t: Tensor, out: Set<number>, seen = new Set<number>()) => {
    for (const x of t.inputs) {
      const p = pos(x);
      if (seen.has(p)) continue;
      seen.add(p);
      if (buffer(p)) out.add(p);
      else reads(x, out, seen);
    }
  };
  const readByBackward = new Set<number>();
  for (const t of graph.nodes) {
    if (backward.has(t.id) && buffer(pos(t))) reads(t, readByBackward);
  }
  const square = [B, c.heads, N, N], hidden = [B, N, 4 * c.dim];
  let n = 0, mlp = 0;
  for (const p of readByBackward) {
    const t = plan.nodes[p];
    if (backward.has(t.id)) continue;
    if (t.shape.join() === square.join()) n++;
    if (t.shape.join() === hidden.join()) mlp++;
  }
  const attentionKernels = plan.kind.filter((k) => k === "attention").length;
  // the output's cotangent reaches attention_grad as it is, never padded to the packed shape
  const pads = plan.nodes.filter((t) => t.prim === Primitive.Pad && t.shape[3] === 17).length;
  return { kept: n, attentionKernels, pads, mlp };
}

Deno.test("attention plan: no [batch, heads, N, N] tensor is kept for the backward", () => {
  for (const gradCkpt of [false, true]) {
    const r = kept({ ...VIT, gradCkpt });
    assertEquals(r.kept, 0, `grad-ckpt ${gradCkpt}`);
    assertEquals(r.pads, 0, `grad-ckpt ${gradCkpt}: padded cotangents`);
    // the MLP keeps its pre-activation only: GELU's intermediates and output are recomputed
    assertEquals(r.mlp, gradCkpt ? 0 : VIT.layers, `grad-ckpt ${gradCkpt}: MLP tensors kept`);
    // forward and backward per layer, and with grad-ckpt the forward again (recomputed)
    assertEquals(r.attentionKernels, (gradCkpt ? 3 : 2) * VIT.layers, `grad-ckpt ${gradCkpt}`);
  }
});

Deno.test("attention plan: the unfused path (attention dropout) keeps them, so the check can fail", () => {
  const r = kept({ ...VIT, dropout: 0.1 });
  assertEquals(r.attentionKernels, 0);
  assert(r.kept >= VIT.layers, `only ${r.kept} kept`);
});
