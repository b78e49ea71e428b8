/**
 * Fused attention on WebGPU (the primitives of lib/ir/attention.ts), FlashAttention's way: no
 * [B, H, N, M] scores or probabilities exist in any buffer.
 *
 * - Forward (`attention`): a workgroup owns W query rows of one (batch, head), a thread each; key
 *   and value tiles of T rows go through workgroup memory, and each thread keeps its output row
 *   and a running max and sum (the online softmax: rescaled when the max grows). It writes the
 *   output row and lse = max + log(sum) into the packed [B, H, N, D + 1].
 * - Backward (`attention_grad`): first delta = rowsum(dO * O) - dlse, a [B, H, N] reduction the
 *   graph computes before (`lowerAttention` adds it as the node's sixth input); then one dispatch
 *   with two kinds of workgroups: dq over query tiles (K and V tiles streamed), and dk, dv over key
 *   tiles (Q, dO, lse and delta tiles streamed), each recomputing p = exp(scale q.k - lse).
 *
 * Operands are strided views of stored buffers where possible (the ViT's q, k and v are
 * transposes of the projections), so nothing is copied first. Each row lives in vec4 registers
 * (D up to `MAX_HEAD_DIM`); a head dim above that, or workgroup memory too small for one tile row,
 * keeps the decomposed form (`attentionDecomposed`, which stores the probabilities) for that node.
 */
import type { Graph } from "../../ir/graph.ts";
import { attentionDecomposed, attentionGradDecomposed } from "../../ir/attention.ts";
import * as ops from "../../ir/ops.ts";
import { Primitive } from "../../ir/primitive.ts";
import { hasKind, isPrim, Tensor } from "../../ir/tensor.ts";
import { bindingSource } from "./bindings.ts";
import { type GeneratedKernel, grid, type Tuning } from "./codegen.ts";
import { emitterOf } from "./emitters.ts";
import { helperSource } from "./helpers.ts";
import { ExprBuilder } from "./expr.ts";
import type { KernelPlan } from "./plan.ts";
import { stridedView } from "./view.ts";

/** Head dims above this keep the decomposed form: each thread holds four rows of D floats. */
export const MAX_HEAD_DIM = 128;

/**
 * Threads (own rows) per workgroup: within the 256 invocations every adapter allows and
 * enough rows for a GPU's warps.
 */
const OWN_ROWS = 64;

/** Rows of the streamed tiles: the most (up to 64) whose two tiles and row terms fit. */
export function tileRows(d: number, maxWorkgroupStorage: number): number {
  const d4 = Math.ceil(d / 4);
  let t = 64;
  while (t >= 1 && 2 * t * d4 * 16 + t * 8 > maxWorkgroupStorage) t /= 2;
  return t >= 1 ? t : 0;
}

/** Whether the fused kernels serve head dim `d` here (else the decomposed form runs). */
export function fusedAttentionFits(d: number, tuning: Tuning): boolean {
  return d >= 1 && d <= MAX_HEAD_DIM && tileRows(d, tuning.maxWorkgroupStorage) > 0;
}

/**
 * `graph` ready for the planner: each attention node kept for the fused kernels, with delta =
 * rowsum(dO * O) - dlse added as a sixth input of each gradient node (a reduction planned like any
 * other); a node the kernels cannot serve (`fusedAttentionFits`, or no keys) is replaced by its
 * decomposition instead. The same graph when it has no attention.
 */
export function lowerAttention(graph: Graph, tuning: Tuning): Graph {
  if (!graph.nodes.some((t) => t.prim === Primitive.Attention)) {
    if (!graph.nodes.some((t) => t.prim === Primitive.AttentionGrad)) return graph;
  }
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
    const fused = (isPrim(t, Primitive.Attention) || isPrim(t, Primitive.AttentionGrad)) &&
      fusedAttentionFits(t.inputs[0].shape[3], tuning) && t.inputs[1].shape[2] > 0;
    if (isPrim(t, Primitive.Attention) && !fused) {
      r = attentionDecomposed(ins[0], ins[1], ins[2], t.params.scale);
    } else if (isPrim(t, Primitive.AttentionGrad) && !fused) {
      r = attentionGradDecomposed(ins[0], ins[1], ins[2], ins[3], ins[4], t.params.scale);
    } else if (isPrim(t, Primitive.AttentionGrad)) {
      r = new Tensor(t.prim, [...ins, rowDelta(ins[3], ins[4])], t.params, t.shape, t.dtype);
    } else if (ins.some((x, i) => x !== t.inputs[i])) {
      r = new Tensor(t.prim, ins, t.params, t.shape, t.dtype);
    } else r = t;
    if (r !== t) map.set(t.id, r);
    add(r);
  }
  const outputs = graph.outputs.map((o) => map.get(o.id) ?? o);
  for (const o of outputs) add(o);
  return { inputs: graph.inputs, outputs, nodes };
}

/** delta = rowsum(dO * O) - dlse as [B, H, N, 1] (the lse's cotangent only when g has its column). */
function rowDelta(out: Tensor, g: Tensor): Tensor {
  const [b, h, n, d1] = out.shape, d = d1 - 1;
  const o = ops.sliceAxis(out, 3, 0, d), dout = ops.sliceAxis(g, 3, 0, d);
  let delta = ops.sum(ops.mul(dout, o), 3);
  if (g.shape[3] === d1) delta = ops.sub(delta, ops.reshape(ops.sliceAxis(g, 3, d, d1), [b, h, n]));
  return ops.reshape(delta, [b, h, n, 1]);
}

/** The WGSL kernel of a planned attention or attention_grad node. */
export function attentionKernel(k: KernelPlan, t: Tuning): GeneratedKernel {
  const root = k.roots[0];
  const [q, kk] = root.inputs;
  const [B, H, N, D] = q.shape, M = kk.shape[2];
  const T = tileRows(D, t.maxWorkgroupStorage), W = OWN_ROWS, D4 = Math.ceil(D / 4);
  if (!hasKind(root, "attention")) throw new Error(`webgpu: ${root} is not attention`);
  const scale = f32(root.params.scale);
  const names = new Map<number, string>();
  k.reads.forEach((n, i) => names.set(n.id, `buf${1 + i}`));
  const loaders: string[] = [];
  const helpers = new Set<string>();
  const loader = (fn: string, x: Tensor) => {
    const l = loaderSource(fn, x, H, names);
    loaders.push(l.code);
    for (const h of l.helpers) helpers.add(h);
  };
  const grad = isPrim(root, Primitive.AttentionGrad);
  ["ld_q", "ld_k", "ld_v", "ld_o", "ld_g", "ld_delta"].slice(0, grad ? 6 : 3)
    .forEach((fn, i) => loader(fn, root.inputs[i]));
  const ctx: Ctx = { D, D4, T, W, scale };
  const QT = Math.ceil(N / W), KT = Math.ceil(M / W);
  const groups = B * H * (grad ? QT + KT : QT);
  const body = grad ? gradBody(ctx, B * H, N, M, QT, KT) : forwardBody(ctx, N, M, QT);
  const specs = [
    { name: "buf0", node: root, output: true, vec4: false },
    ...k.reads.map((node, i) => ({ name: `buf${1 + i}`, node, output: false, vec4: false })),
  ];
  const code = [
    bindingSource(specs, t.chunks),
    helperSource(helpers),
    ...loaders,
    `var<workgroup> ta: array<vec4f, ${T * D4}>;`,
    `var<workgroup> tb: array<vec4f, ${T * D4}>;`,
    grad ? `var<workgroup> tr: array<vec2f, ${T}>;` : "",
    `@compute @workgroup_size(${W})`,
    `fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,`,
    `        @builtin(local_invocation_index) li: u32) {`,
    `  let w = wid.x + wid.y * nwg.x;`,
    `  if (w >= ${groups}u) { return; }`,
    body,
    `}`,
  ].join("\n");
  return {
    code,
    bindings: [root, ...k.reads],
    outputs: 1,
    workgroups: grid(groups),
    label: `${root.prim}#${root.id}[${root.shape.join(",")}]`,
  };
}

interface Ctx {
  D: number;
  D4: number;
  T: number;
  W: number;
  scale: string;
}

/** One thread per query row; K and V tiles streamed; online softmax. */
function forwardBody(c: Ctx, N: number, M: number, QT: number): string {
  const { D, D4, T, W, scale } = c;
  return `
  let bh = w / ${QT}u;
  let i = (w % ${QT}u) * ${W}u + li;
  let ic = min(i, ${N - 1}u);
  var q: array<vec4f, ${D4}>;
  var acc: array<vec4f, ${D4}>;
  for (var c = 0u; c < ${D4}u; c++) { q[c] = ${row4("ld_q", "bh", "ic", "c", D)}; }
  var m = -3.0e38f;
  var l = 0.0f;
  for (var t0 = 0u; t0 < ${M}u; t0 += ${T}u) {
    workgroupBarrier();
    ${tileLoad(c, M, [["ta", "ld_k"], ["tb", "ld_v"]])}
    workgroupBarrier();
    let n = min(${T}u, ${M}u - t0);
    for (var j = 0u; j < n; j++) {
      var s = 0.0f;
      for (var c = 0u; c < ${D4}u; c++) { s += dot(q[c], ta[j * ${D4}u + c]); }
      s *= ${scale};
      if (s > m) {
        let r = exp(m - s);
        l *= r;
        for (var c = 0u; c < ${D4}u; c++) { acc[c] *= r; }
        m = s;
      }
      let p = exp(s - m);
      l += p;
      for (var c = 0u; c < ${D4}u; c++) { acc[c] = fma(vec4f(p), tb[j * ${D4}u + c], acc[c]); }
    }
  }
  if (i < ${N}u) {
    let base = (bh * ${N}u + i) * ${D + 1}u;
    for (var c = 0u; c < ${D4}u; c++) { ${store4("base", "acc[c] / l", D)} }
    st_buf0(base + ${D}u, m + log(l));
  }`;
}

/**
 * Workgroups [0, B H QT) compute dq for W query rows each; the rest dk and dv for W key rows.
 * The branch is on the workgroup id, so the barriers in each stay in uniform control flow.
 */
function gradBody(c: Ctx, BH: number, N: number, M: number, QT: number, KT: number): string {
  const { D, D4, T, W, scale } = c;
  const rows = N + 2 * M;
  return `
  let dqGroups = ${BH * QT}u;
  if (w < dqGroups) {
    let bh = w / ${QT}u;
    let i = (w % ${QT}u) * ${W}u + li;
    let ic = min(i, ${N - 1}u);
    var q: array<vec4f, ${D4}>;
    var dor: array<vec4f, ${D4}>;
    var dq: array<vec4f, ${D4}>;
    for (var c = 0u; c < ${D4}u; c++) {
      q[c] = ${row4("ld_q", "bh", "ic", "c", D)};
      dor[c] = ${row4("ld_g", "bh", "ic", "c", D)};
    }
    let lse = ld_o(bh, ic, ${D}u);
    let delta = ld_delta(bh, ic, 0u);
    for (var t0 = 0u; t0 < ${M}u; t0 += ${T}u) {
      workgroupBarrier();
      ${tileLoad(c, M, [["ta", "ld_k"], ["tb", "ld_v"]])}
      workgroupBarrier();
      let n = min(${T}u, ${M}u - t0);
      for (var j = 0u; j < n; j++) {
        var s = 0.0f;
        var dp = 0.0f;
        for (var c = 0u; c < ${D4}u; c++) {
          s += dot(q[c], ta[j * ${D4}u + c]);
          dp += dot(dor[c], tb[j * ${D4}u + c]);
        }
        let ds = exp(s * ${scale} - lse) * (dp - delta);
        for (var c = 0u; c < ${D4}u; c++) { dq[c] = fma(vec4f(ds), ta[j * ${D4}u + c], dq[c]); }
      }
    }
    if (i < ${N}u) {
      let base = (bh * ${rows}u + i) * ${D}u;
      for (var c = 0u; c < ${D4}u; c++) { ${store4("base", `dq[c] * ${scale}`, D)} }
    }
  } else {
    let w2 = w - dqGroups;
    let bh = w2 / ${KT}u;
    let j = (w2 % ${KT}u) * ${W}u + li;
    let jc = min(j, ${M - 1}u);
    var kr: array<vec4f, ${D4}>;
    var vr: array<vec4f, ${D4}>;
    var dk: array<vec4f, ${D4}>;
    var dv: array<vec4f, ${D4}>;
    for (var c = 0u; c < ${D4}u; c++) {
      kr[c] = ${row4("ld_k", "bh", "jc", "c", D)};
      vr[c] = ${row4("ld_v", "bh", "jc", "c", D)};
    }
    for (var t0 = 0u; t0 < ${N}u; t0 += ${T}u) {
      workgroupBarrier();
      ${tileLoad(c, N, [["ta", "ld_q"], ["tb", "ld_g"]])}
      for (var e = li; e < ${T}u; e += ${W}u) {
        let r = min(t0 + e, ${N - 1}u);
        tr[e] = vec2f(ld_o(bh, r, ${D}u), ld_delta(bh, r, 0u));
      }
      workgroupBarrier();
      let n = min(${T}u, ${N}u - t0);
      for (var r = 0u; r < n; r++) {
        var s = 0.0f;
        var dp = 0.0f;
        for (var c = 0u; c < ${D4}u; c++) {
          s += dot(ta[r * ${D4}u + c], kr[c]);
          dp += dot(tb[r * ${D4}u + c], vr[c]);
        }
        let p = exp(s * ${scale} - tr[r].x);
        let ds = p * (dp - tr[r].y);
        for (var c = 0u; c < ${D4}u; c++) {
          dv[c] = fma(vec4f(p), tb[r * ${D4}u + c], dv[c]);
          dk[c] = fma(vec4f(ds), ta[r * ${D4}u + c], dk[c]);
        }
      }
    }
    if (j < ${M}u) {
      let kbase = (bh * ${rows}u + ${N}u + j) * ${D}u;
      let vbase = kbase + ${M * D}u;
      for (var c = 0u; c < ${D4}u; c++) {
        ${store4("kbase", `dk[c] * ${scale}`, D)}
        ${store4("vbase", "dv[c]", D)}
      }
    }
  }`;
}

/**
 * Cooperative load of tiles [t0, t0 + T) of rows (clamped to `rows`) into workgroup arrays,
 * vec4 by vec4 (lanes past D are 0).
 */
function tileLoad(c: Ctx, rows: number, tiles: [string, string][]): string {
  const { D, D4, T, W } = c;
  return `for (var e = li; e < ${T * D4}u; e += ${W}u) {
      let r = min(t0 + e / ${D4}u, ${rows - 1}u);
      let c = e % ${D4}u;
${tiles.map(([arr, fn]) => `      ${arr}[e] = ${row4(fn, "bh", "r", "c", D)};`).join("\n")}
    }`;
}

/** vec4 `c` of row `r` through loader `fn` (lanes at or past `D` are 0). */
function row4(fn: string, bh: string, r: string, c: string, D: number): string {
  const lanes = [0, 1, 2, 3].map((l) => {
    const e = `4u * ${c} + ${l}u`;
    if (D % 4 === 0) return `${fn}(${bh}, ${r}, ${e})`;
    return `select(0.0f, ${fn}(${bh}, ${r}, min(${e}, ${D - 1}u)), ${e} < ${D}u)`;
  });
  return `vec4f(${lanes.join(", ")})`;
}

/** Stores vec4 `v` (a WGSL expression) at elements 4c.. of the row at `base`, lanes below D. */
function store4(base: string, v: string, D: number): string {
  const lanes = [0, 1, 2, 3].map((l) => {
    const st = `st_buf0(${base} + 4u * c + ${l}u, x[${l}]);`;
    return D % 4 === 0 ? st : `if (4u * c + ${l}u < ${D}u) { ${st} }`;
  });
  return `{ let x = ${v}; ${lanes.join(" ")} }`;
}

/**
 * `fn name(bh, r, e) -> f32`: element (bh / H, bh % H, r, e) of operand `x`, a strided view of its
 * binding, or else its fused expression evaluated there.
 */
function loaderSource(
  name: string,
  x: Tensor,
  H: number,
  names: Map<number, string>,
): { code: string; helpers: Set<string> } {
  const sig = `fn ${name}(bh: u32, r: u32, e: u32) -> f32`;
  const view = stridedView(x, (t) => names.has(t.id));
  if (view) {
    const [sb, sh, sr, se] = view.strides;
    const terms = [`${view.offset}u`];
    // batch and head merge into one stride when they nest (contiguous [B, H, ..] views)
    if (sb === sh * H) terms.push(`bh * ${sh}u`);
    else terms.push(`(bh / ${H}u) * ${sb}u`, `(bh % ${H}u) * ${sh}u`);
    terms.push(`r * ${sr}u`, `e * ${se}u`);
    const buf = names.get(view.source.id)!;
    return { code: `${sig} { return ld_${buf}(${terms.join(" + ")}); }`, helpers: new Set() };
  }
  const b = new ExprBuilder({ binding: (n) => names.get(n.id) }, emitterOf);
  const v = b.value(x, [`(bh / ${H}u)`, `(bh % ${H}u)`, "r", "e"]);
  return { code: `${sig} {\n${b.code()}\n  return ${v};\n}`, helpers: b.helpers };
}

/** A WGSL f32 literal. */
function f32(x: number): string {
  const s = String(Math.fround(x));
  return /[.e]/.test(s) ? `${s}f` : `${s}.0f`;
}
