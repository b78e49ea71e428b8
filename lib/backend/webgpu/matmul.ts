/**
 * dot_general kernels. The product is normalized to a batched [B, M, K] x [B, K, N] with an
 * operand access per side: a strided view (see view.ts) when the operand is a re-indexing of
 * a stored array, so the inner loop adds one stride per step and row bases are computed once;
 * otherwise a loader function evaluating the fused operand expression per element.
 */
import { numel } from "../../ir/host_tensor.ts";
import type { Primitive, PrimitiveParams } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import { ExprBuilder, type KernelContext } from "./expr.ts";
import { type Extent, mergeExtents, stridedView } from "./view.ts";

export interface MatDims {
  B: number;
  M: number;
  N: number;
  K: number;
}

/** How a kernel reads one operand at (batch, row-or-column, k). */
export interface OperandAccess {
  /** WGSL functions the access needs (a loader), if any. */
  decls: string;
  /** Statements once per workgroup, given the batch index variable. */
  batchBase(bt: string): string;
  /** Expression: offset part for an outer (m or n) index, computed once per row. */
  outer(v: string): string;
  /** Expression: offset part for k, computed once per loop step. */
  inner(k: string): string;
  /** Load expression from the parts above (`o` outer, `k` inner part, both names). */
  load(o: string, k: string, bt: string, outerIdx: string, kIdx: string): string;
  helpers: Set<string>;
}

export function normalizeDot(dot: Tensor): { dims: MatDims; groups: DotGroups } {
  const [lhs, rhs] = dot.inputs;
  const p = dot.params as PrimitiveParams[Primitive.DotGeneral];
  const lhsFree = freeDims(lhs, p.lhsBatch, p.lhsContract);
  const rhsFree = freeDims(rhs, p.rhsBatch, p.rhsContract);
  const groups: DotGroups = {
    lhs: { batch: p.lhsBatch, outer: lhsFree, inner: p.lhsContract },
    rhs: { batch: p.rhsBatch, outer: rhsFree, inner: p.rhsContract },
  };
  const size = (t: Tensor, dims: number[]) => numel(dims.map((d) => t.shape[d]));
  return {
    dims: {
      B: size(lhs, p.lhsBatch),
      M: size(lhs, lhsFree),
      N: size(rhs, rhsFree),
      K: size(lhs, p.lhsContract),
    },
    groups,
  };
}

export interface DimGroups {
  batch: number[];
  outer: number[];
  inner: number[];
}

export interface DotGroups {
  lhs: DimGroups;
  rhs: DimGroups;
}

/** The access for operand `x` read as `name` (A or B). */
export function operandAccess(
  name: string,
  x: Tensor,
  g: DimGroups,
  ctx: KernelContext,
): OperandAccess {
  const view = stridedView(x, (t) => ctx.binding(t) !== undefined);
  if (view) {
    const buf = ctx.binding(view.source)!;
    const ext = (dims: number[]): Extent[] =>
      mergeExtents(dims.map((d) => ({ size: x.shape[d], stride: view.strides[d] })));
    const batch = ext(g.batch), outer = ext(g.outer), inner = ext(g.inner);
    const base = `${name}base`;
    return {
      decls: "",
      batchBase: (bt) => `let ${base} = ${sum([`${view.offset}u`, offsetOf(bt, batch)])};`,
      outer: (v) => sum([base, offsetOf(v, outer)]),
      inner: (k) => offsetOf(k, inner),
      load: (o, k) => `${buf}[${sum([o, k])}]`,
      helpers: new Set(),
    };
  }
  // Not a view: evaluate the operand expression per element.
  const b = new ExprBuilder(ctx);
  const idx = x.shape.map(() => "0u");
  for (const [v, dims] of [["bt", g.batch], ["m", g.outer], ["k", g.inner]] as const) {
    const parts = b.unflatten(v, dims.map((d) => x.shape[d]));
    dims.forEach((d, i) => (idx[d] = parts[i]));
  }
  const value = b.value(x, idx);
  const fn = `load${name}`;
  return {
    decls: `fn ${fn}(bt: u32, m: u32, k: u32) -> f32 {\n${b.code()}\n  return ${value};\n}`,
    batchBase: () => "",
    outer: (v) => v,
    inner: (k) => k,
    load: (_o, _k, bt, outerIdx, kIdx) => `${fn}(${bt}, ${outerIdx}, ${kIdx})`,
    helpers: b.helpers,
  };
}

/**
 * CPU adapters (llvmpipe): no workgroup memory (it is plain memory there and barriers are
 * costly). Each thread keeps an RM x RN block in registers; lanes run along N, so the B loads
 * of neighbouring lanes are neighbours in memory when N is contiguous.
 */
export function registerMatmul(
  { B, M, N, K }: MatDims,
  a: OperandAccess,
  b: OperandAccess,
  store: (g: string, acc: string) => string,
): { code: string; groups: number } {
  const { RM, RN, WX, WY } = registerBlock(M, N);
  const TM = RM * WY, TN = RN * WX;
  const tilesM = Math.ceil(M / TM), tilesN = Math.ceil(N / TN);
  const groups = B * tilesM * tilesN;
  const rows = range(RM), cols = range(RN);
  const lines: string[] = [];
  lines.push(
    `let w = wid.x + wid.y * nwg.x;`,
    `if (w >= ${groups}u) { return; }`,
    `let tn = w % ${tilesN}u;`,
    `let tm = (w / ${tilesN}u) % ${tilesM}u;`,
    `let bt = w / ${tilesN * tilesM}u;`,
    a.batchBase("bt"),
    b.batchBase("bt"),
    `let m0 = tm * ${TM}u + lid.y;`,
    `let n0 = tn * ${TN}u + lid.x;`,
  );
  for (const i of rows) {
    lines.push(`let r${i} = min(m0 + ${WY * i}u, ${M - 1}u);`, `let ra${i} = ${a.outer(`r${i}`)};`);
  }
  for (const j of cols) {
    lines.push(`let c${j} = min(n0 + ${WX * j}u, ${N - 1}u);`, `let cb${j} = ${b.outer(`c${j}`)};`);
  }
  lines.push(`var acc: array<f32, ${RM * RN}>;`, `for (var k = 0u; k < ${K}u; k++) {`);
  lines.push(`  let ka = ${a.inner("k")};`, `  let kb = ${b.inner("k")};`);
  for (const j of cols) lines.push(`  let b${j} = ${b.load(`cb${j}`, "kb", "bt", `c${j}`, "k")};`);
  for (const i of rows) {
    lines.push(`  { let a = ${a.load(`ra${i}`, "ka", "bt", `r${i}`, "k")};`);
    lines.push(
      `    ${
        cols.map((j) => `acc[${i * RN + j}] = fma(a, b${j}, acc[${i * RN + j}]);`).join(" ")
      } }`,
    );
  }
  lines.push(`}`);
  for (const i of rows) {
    for (const j of cols) {
      const m = `m0 + ${WY * i}u`, n = `n0 + ${WX * j}u`;
      lines.push(
        `if (${m} < ${M}u && ${n} < ${N}u) { let g = (bt * ${M}u + ${m}) * ${N}u + ${n}; ${
          store("g", `acc[${i * RN + j}]`)
        } }`,
      );
    }
  }
  const code = `
@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
${lines.filter((l) => l).map((l) => "  " + l).join("\n")}
}`;
  return { code, groups };
}

/**
 * Block shape for the register kernel: 8 lanes along N (one 256-bit SIMD row on llvmpipe), as
 * many columns per thread as N needs (up to 8), 8 rows per thread, 32 threads per workgroup.
 */
export function registerBlock(
  M: number,
  N: number,
): { RM: number; RN: number; WX: number; WY: number } {
  const WX = 8;
  const RN = Math.min(8, Math.max(1, Math.ceil(N / WX)));
  const WY = 4;
  const RM = Math.min(8, Math.max(1, Math.ceil(M / WY)));
  return { RM, RN, WX, WY };
}

/** GPUs: square workgroup-memory tiles, S x S threads, each an R x R register block. */
export function tiledMatmul(
  { B, M, N, K }: MatDims,
  a: OperandAccess,
  b: OperandAccess,
  store: (g: string, acc: string) => string,
  maxWorkgroupStorage: number,
  maxTile = 128,
): { code: string; groups: number } {
  // 128x128 tiles (8x8 per thread) for large products, 64x64 (4x4) otherwise.
  let T = Math.min(maxTile, M >= 128 && N >= 128 ? 128 : 64);
  let TK = T === 128 ? 8 : 16;
  while (2 * T * TK * 4 > maxWorkgroupStorage && TK > 1) TK /= 2;
  if (2 * T * TK * 4 > maxWorkgroupStorage) T = 32;
  // 16x16 threads; small tiles (tests on CPU adapters) use 8x8, which compiles far faster.
  const S = T >= 64 ? 16 : 8;
  const R = T / S;
  const tilesM = Math.ceil(M / T), tilesN = Math.ceil(N / T);
  const groups = B * tilesM * tilesN;
  const code = `
var<workgroup> As: array<f32, ${T * TK}>;
var<workgroup> Bs: array<f32, ${T * TK}>;
@compute @workgroup_size(${S}, ${S})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= ${groups}u) { return; }
  let tn = w % ${tilesN}u;
  let tm = (w / ${tilesN}u) % ${tilesM}u;
  let bt = w / ${tilesN * tilesM}u;
  ${a.batchBase("bt")}
  ${b.batchBase("bt")}
  let mBase = tm * ${T}u;
  let nBase = tn * ${T}u;
  var acc: array<f32, ${R * R}>;
  for (var k0 = 0u; k0 < ${K}u; k0 += ${TK}u) {
    for (var e = li; e < ${T * TK}u; e += ${S * S}u) {
      let kk = e / ${T}u;
      let mm = e % ${T}u;
      let inK = k0 + kk < ${K}u;
      let kc = min(k0 + kk, ${Math.max(K - 1, 0)}u);
      let mr = min(mBase + mm, ${M - 1}u);
      let nc = min(nBase + mm, ${N - 1}u);
      let oa = ${a.outer("mr")};
      let ka = ${a.inner("kc")};
      let ob = ${b.outer("nc")};
      let kb = ${b.inner("kc")};
      As[e] = select(0.0f, ${a.load("oa", "ka", "bt", "mr", "kc")}, inK);
      Bs[e] = select(0.0f, ${b.load("ob", "kb", "bt", "nc", "kc")}, inK);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      var av: array<f32, ${R}>;
      var bv: array<f32, ${R}>;
      for (var i = 0u; i < ${R}u; i++) {
        av[i] = As[kk * ${T}u + lid.y + ${S}u * i];
        bv[i] = Bs[kk * ${T}u + lid.x + ${S}u * i];
      }
      for (var i = 0u; i < ${R}u; i++) {
        for (var j = 0u; j < ${R}u; j++) { acc[i * ${R}u + j] = fma(av[i], bv[j], acc[i * ${R}u + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${R}u; i++) {
    let m = mBase + lid.y + ${S}u * i;
    for (var j = 0u; j < ${R}u; j++) {
      let n = nBase + lid.x + ${S}u * j;
      if (m < ${M}u && n < ${N}u) {
        let g = (bt * ${M}u + m) * ${N}u + n;
        ${store("g", `acc[i * ${R}u + j]`)}
      }
    }
  }
}`;
  return { code, groups };
}

/** Offset of flat index `v` over extents (outermost first). */
function offsetOf(v: string, ext: Extent[]): string {
  const terms: string[] = [];
  let inner = 1;
  for (let d = ext.length - 1; d >= 0; d--) {
    const { size, stride } = ext[d];
    let digit = inner === 1 ? v : `(${v} / ${inner}u)`;
    if (d > 0) digit = `(${digit} % ${size}u)`;
    if (stride !== 0) terms.push(stride === 1 ? digit : `${digit} * ${stride}u`);
    inner *= size;
  }
  return sum(terms);
}

function sum(terms: string[]): string {
  const t = terms.filter((x) => x !== "0u" && x !== "");
  return t.length === 0 ? "0u" : t.join(" + ");
}

function freeDims(x: Tensor, batch: number[], contract: number[]): number[] {
  return x.shape.map((_, i) => i).filter((i) => !batch.includes(i) && !contract.includes(i));
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
