/**
 * Fused attention on WebGPU (the primitives of lib/ir/attention.ts), FlashAttention's way: no
 * [B, H, N, M] scores or probabilities exist in any buffer.
 *
 * - Forward (`attention`): a workgroup owns W query rows of one (batch, head), a thread each,
 *   streams the key and value rows (in tiles of T rows through workgroup memory on GPUs), and
 *   each thread keeps its output row and a running max and sum (the online softmax: rescaled when
 *   the max grows). It writes the output row and lse = max + log(sum) into the packed
 *   [B, H, N, D + 1].
 * - Backward (`attention_grad`): first delta = rowsum(dO * O) - dlse, a [B, H, N] reduction the
 *   graph computes before (`lowerAttention` adds it as the node's sixth input); then one dispatch
 *   with two kinds of workgroups: dq over query rows (K and V rows streamed), and dk, dv over key
 *   rows (Q, dO, lse and delta rows streamed), each recomputing p = exp(scale q.k - lse).
 *
 * Operands are strided views of stored buffers where possible (the ViT's q, k and v are
 * transposes of the projections), so nothing is copied first. Each row lives in vec4 registers
 * (D up to `MAX_HEAD_DIM`); a head dim above that, or workgroup memory too small for one tile row,
 * keeps the decomposed form (`attentionDecomposed`, which stores the probabilities) for that node.
 */
import type { Graph } from "../../ir/graph.ts";
import { decomposeAttention, rewriteAttention } from "../../ir/attention.ts";
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
  return rewriteAttention(graph, (t, ins) => {
    const fused = fusedAttentionFits(t.inputs[0].shape[3], tuning) && t.inputs[1].shape[2] > 0;
    if (!fused) return decomposeAttention(t, ins);
    if (isPrim(t, Primitive.AttentionGrad)) {
      return new Tensor(t.prim, [...ins, rowDelta(ins[3], ins[4])], t.params, t.shape, t.dtype);
    }
    return ins.some((x, i) => x !== t.inputs[i])
      ? new Tensor(t.prim, ins, t.params, t.shape, t.dtype)
      : t;
  });
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
  // GPU kernels as the tiled dot_general's choice; CPU adapters' as the register one's
  const gpu = t.matmul === "tiled";
  const ctx: Ctx = { D, D4, T, W, scale, gpu };
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
    gpu ? `var<workgroup> ta: array<vec4f, ${T * D4}>;` : "",
    gpu ? `var<workgroup> tb: array<vec4f, ${T * D4}>;` : "",
    gpu && grad ? `var<workgroup> tr: array<vec2f, ${T}>;` : "",
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
  /**
   * GPUs: streamed rows go through workgroup-memory tiles, and rows are named vec4 registers
   * (`q_0`, `q_1`, ..: loops unrolled, no array indexed at run time, which GPUs put in local
   * memory). CPU adapters: each thread loads the streamed rows itself (the caches serve as well,
   * and llvmpipe compiles barriers slowly: a coroutine split each), and rows are arrays in loops
   * over their vec4s (unrolled, a 64-wide head takes LLVM seconds to compile).
   */
  gpu: boolean;
}

/** A vec4 of a row: a literal (unrolled) or the loop variable `c`. */
type Vc = number | string;

/** Statements `fn(k)` for every vec4 k of a row. */
function each(c: Ctx, fn: (k: Vc) => string): string {
  if (c.gpu) return Array.from({ length: c.D4 }, (_, k) => fn(k)).join("\n");
  return `for (var c = 0u; c < ${c.D4}u; c++) {\n${fn("c")}\n}`;
}

/** Vec4 k of register row `name`. */
const reg = (c: Ctx, name: string) => (k: Vc) => c.gpu ? `${name}_${k}` : `${name}[${k}]`;

/** Declares register row `name`, zero or `init(k)`. */
function declare(c: Ctx, name: string, init?: (k: Vc) => string): string {
  if (c.gpu) return each(c, (k) => `var ${name}_${k} = ${init ? init(k) : "vec4f(0.0f)"};`);
  const decl = `var ${name}: array<vec4f, ${c.D4}>;`;
  return init ? `${decl}\n${each(c, (k) => `${name}[${k}] = ${init(k)};`)}` : decl;
}

/** `var s = sum over k of dot(a(k), b(k));` */
function dotVar(c: Ctx, s: string, a: (k: Vc) => string, b: (k: Vc) => string): string {
  if (c.gpu) {
    const terms = Array.from({ length: c.D4 }, (_, k) => `dot(${a(k)}, ${b(k)})`);
    return `var ${s} = ${terms.join(" + ")};`;
  }
  return `var ${s} = 0.0f;\n${each(c, (k) => `${s} += dot(${a(k)}, ${b(k)});`)}`;
}

/**
 * The loop over the streamed side's rows j in [0, rows): `body` gets each streamed operand's
 * vec4 k at row j (`at(fn)`), and `lse_j`, `delta_j` when `terms`. On GPUs, tiles of T rows are
 * loaded cooperatively into workgroup memory between barriers; on CPU adapters each thread
 * loads the rows itself.
 */
function stream(
  c: Ctx,
  rows: number,
  operands: string[],
  terms: boolean,
  body: (at: (fn: string) => (k: Vc) => string) => string,
): string {
  const { D, D4, T, W } = c;
  const rowTerms = (r: string) =>
    `let lse_j = ld_o(bh, ${r}, ${D}u);\nlet delta_j = ld_delta(bh, ${r}, 0u);`;
  if (!c.gpu) {
    return `for (var j = 0u; j < ${rows}u; j++) {
${terms ? rowTerms("j") : ""}
${body((fn) => (k) => row4(fn, "bh", "j", k, D))}
}`;
  }
  const arr = ["ta", "tb"];
  const at = (fn: string) => (k: Vc) => `${arr[operands.indexOf(fn)]}[jt * ${D4}u + ${k}u]`;
  return `for (var t0 = 0u; t0 < ${rows}u; t0 += ${T}u) {
workgroupBarrier();
for (var e = li; e < ${T * D4}u; e += ${W}u) {
  let r = min(t0 + e / ${D4}u, ${rows - 1}u);
  let c = e % ${D4}u;
${operands.map((fn, i) => `  ${arr[i]}[e] = ${row4(fn, "bh", "r", "c", D)};`).join("\n")}
}
${
    terms
      ? `for (var e = li; e < ${T}u; e += ${W}u) {
  let r = min(t0 + e, ${rows - 1}u);
  tr[e] = vec2f(ld_o(bh, r, ${D}u), ld_delta(bh, r, 0u));
}`
      : ""
  }
workgroupBarrier();
let n = min(${T}u, ${rows}u - t0);
for (var jt = 0u; jt < n; jt++) {
${terms ? "let lse_j = tr[jt].x;\nlet delta_j = tr[jt].y;" : ""}
${body(at)}
}
}`;
}

/** One thread per query row; K and V rows streamed; online softmax. */
function forwardBody(c: Ctx, N: number, M: number, QT: number): string {
  const { D, W, scale } = c;
  const q = reg(c, "q"), acc = reg(c, "acc");
  return `
let bh = w / ${QT}u;
let i = (w % ${QT}u) * ${W}u + li;
let ic = min(i, ${N - 1}u);
${declare(c, "q", (k) => row4("ld_q", "bh", "ic", k, D))}
${declare(c, "acc")}
var m = -3.0e38f;
var l = 0.0f;
${
    stream(c, M, ["ld_k", "ld_v"], false, (at) => `
${dotVar(c, "s", q, at("ld_k"))}
s *= ${scale};
if (s > m) {
  let r = exp(m - s);
  l *= r;
${each(c, (k) => `  ${acc(k)} *= r;`)}
  m = s;
}
let p = exp(s - m);
l += p;
${each(c, (k) => `${acc(k)} = fma(vec4f(p), ${at("ld_v")(k)}, ${acc(k)});`)}`)
  }
if (i < ${N}u) {
  let base = (bh * ${N}u + i) * ${D + 1}u;
${each(c, (k) => store4("base", k, `${acc(k)} / l`, D))}
  st_buf0(base + ${D}u, m + log(l));
}`;
}

/**
 * Workgroups [0, B H QT) compute dq for W query rows each; the rest dk and dv for W key rows.
 * The branch is on the workgroup id, so the barriers in each stay in uniform control flow.
 */
function gradBody(c: Ctx, BH: number, N: number, M: number, QT: number, KT: number): string {
  const { D, W, scale } = c;
  const rows = N + 2 * M;
  const [q, dout, dq, k_, v_, dk, dv] = ["q", "dor", "dq", "kr", "vr", "dk", "dv"].map((n) =>
    reg(c, n)
  );
  return `
let dqGroups = ${BH * QT}u;
if (w < dqGroups) {
let bh = w / ${QT}u;
let i = (w % ${QT}u) * ${W}u + li;
let ic = min(i, ${N - 1}u);
${declare(c, "q", (k) => row4("ld_q", "bh", "ic", k, D))}
${declare(c, "dor", (k) => row4("ld_g", "bh", "ic", k, D))}
${declare(c, "dq")}
let lse = ld_o(bh, ic, ${D}u);
let delta = ld_delta(bh, ic, 0u);
${
    stream(c, M, ["ld_k", "ld_v"], false, (at) => `
${dotVar(c, "s", q, at("ld_k"))}
${dotVar(c, "dp", dout, at("ld_v"))}
let ds = exp(s * ${scale} - lse) * (dp - delta);
${each(c, (k) => `${dq(k)} = fma(vec4f(ds), ${at("ld_k")(k)}, ${dq(k)});`)}`)
  }
if (i < ${N}u) {
  let base = (bh * ${rows}u + i) * ${D}u;
${each(c, (k) => store4("base", k, `${dq(k)} * ${scale}`, D))}
}
} else {
let w2 = w - dqGroups;
let bh = w2 / ${KT}u;
let i = (w2 % ${KT}u) * ${W}u + li;
let ic = min(i, ${M - 1}u);
${declare(c, "kr", (k) => row4("ld_k", "bh", "ic", k, D))}
${declare(c, "vr", (k) => row4("ld_v", "bh", "ic", k, D))}
${declare(c, "dk")}
${declare(c, "dv")}
${
    stream(c, N, ["ld_q", "ld_g"], true, (at) => `
${dotVar(c, "s", at("ld_q"), k_)}
${dotVar(c, "dp", at("ld_g"), v_)}
let p = exp(s * ${scale} - lse_j);
let ds = p * (dp - delta_j);
${each(c, (k) => `${dv(k)} = fma(vec4f(p), ${at("ld_g")(k)}, ${dv(k)});`)}
${each(c, (k) => `${dk(k)} = fma(vec4f(ds), ${at("ld_q")(k)}, ${dk(k)});`)}`)
  }
if (i < ${M}u) {
  let kbase = (bh * ${rows}u + ${N}u + i) * ${D}u;
  let vbase = kbase + ${M * D}u;
${each(c, (k) => store4("kbase", k, `${dk(k)} * ${scale}`, D))}
${each(c, (k) => store4("vbase", k, dv(k), D))}
}
}`;
}

/** vec4 k (a number or a WGSL u32) of row `r` through loader `fn`; lanes past `D` are 0. */
function row4(fn: string, bh: string, r: string, k: Vc, D: number): string {
  const lanes = [0, 1, 2, 3].map((l) => {
    if (typeof k === "number") {
      const e = 4 * k + l;
      return e < D ? `${fn}(${bh}, ${r}, ${e}u)` : "0.0f";
    }
    const e = `4u * ${k} + ${l}u`;
    if (D % 4 === 0) return `${fn}(${bh}, ${r}, ${e})`;
    return `select(0.0f, ${fn}(${bh}, ${r}, min(${e}, ${D - 1}u)), ${e} < ${D}u)`;
  });
  return `vec4f(${lanes.join(", ")})`;
}

/** Stores vec4 `v` as elements 4k .. 4k + 3 (those below D) of the row at `base`. */
function store4(base: string, k: Vc, v: string, D: number): string {
  const lanes = [0, 1, 2, 3].map((l) => {
    if (typeof k === "number") {
      return 4 * k + l < D ? `st_buf0(${base} + ${4 * k + l}u, x[${l}]);` : "";
    }
    const e = `4u * ${k} + ${l}u`;
    const st = `st_buf0(${base} + ${e}, x[${l}]);`;
    return D % 4 === 0 ? st : `if (${e} < ${D}u) { ${st} }`;
  });
  return `{ let x = ${v}; ${lanes.filter((x) => x).join(" ")} }`;
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
