/**
 * dot_general kernels. The product is normalized to a batched [B, M, K] x [B, K, N] with an
 * operand access per side: a strided view (see view.ts) when the operand is a re-indexing of
 * a stored array, so the inner loop adds one stride per step and row bases are computed once;
 * otherwise a loader function evaluating the fused operand expression per element.
 */
import { numel } from "../../ir/host_tensor.ts";
import { Primitive } from "../../ir/primitive.ts";
import { paramsOf, type Tensor } from "../../ir/tensor.ts";
import { ExprBuilder, type KernelContext } from "./expr.ts";
import { emitterOf } from "./emitters.ts";
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
  /** Set when the operand is a strided view of a stored array. */
  view?: OperandView;
}

export interface OperandView {
  /** WGSL name of the binding holding the source. */
  buf: string;
  source: Tensor;
  offset: number;
  batch: Extent[];
  outer: Extent[];
  inner: Extent[];
}

export function normalizeDot(dot: Tensor): { dims: MatDims; groups: DotGroups } {
  const [lhs, rhs] = dot.inputs;
  const p = paramsOf(dot, Primitive.DotGeneral);
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
      load: (o, k) => `ld_${buf}(${sum([o, k])})`,
      helpers: new Set(),
      view: { buf, source: view.source, offset: view.offset, batch, outer, inner },
    };
  }
  // Not a view: evaluate the operand expression per element.
  const b = new ExprBuilder(ctx, emitterOf);
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
 * True when a vec4 binding can serve the view's contiguous `inner` (A: along K) or `outer`
 * (B: along N) dim: unit stride, a multiple of 4 long, every other stride and the offset
 * multiples of 4 (so each vec4 is aligned).
 */
export function vec4Able(v: OperandView, along: "inner" | "outer", len: number): boolean {
  const run = v[along];
  const others = along === "inner" ? [...v.batch, ...v.outer] : [...v.batch, ...v.inner];
  return len % 4 === 0 && (len === 0 || (run.length === 1 && run[0].stride === 1)) &&
    v.offset % 4 === 0 && others.every((e) => e.stride % 4 === 0);
}

/**
 * CPU adapters (llvmpipe): no workgroup memory (it is plain memory there and barriers are
 * costly). Each thread keeps RM rows x (4 RN4) columns in vec4 registers; lanes run along N.
 * K advances four at a time. A comes as one vec4 per row and 4 k when contiguous along K
 * (`vecA` "k"), as one vec4 per 4 rows and k when contiguous along M (`vecA` "m"), else as
 * scalars; B as vec4 rows when contiguous along N (`vecB`), else as scalars.
 */
export function registerMatmul(
  { B, M, N, K }: MatDims,
  a: OperandAccess,
  b: OperandAccess,
  store: (g: string, acc: string) => string,
  vecA: { buf: string; along: "k" | "m" } | undefined,
  vecB: string | undefined,
  vecOut = false,
): { code: string; groups: number } {
  const nq = Math.ceil(N / 4);
  const [WX, WY, RN4] = nq <= 4 ? [4, 8, 1] : nq <= 8 ? [8, 4, 1] : [8, 4, 2];
  const byM = vecA?.along === "m";
  // Rows come in groups of G consecutive ones (4 when A is read as vec4 along M).
  const G = byM ? 4 : 1;
  const RM = byM ? 4 * Math.min(2, Math.ceil(M / (4 * WY))) : Math.min(8, Math.ceil(M / WY));
  const TM = RM * WY, TQ = RN4 * WX;
  const tilesM = Math.ceil(M / TM), tilesN = Math.ceil(nq / TQ);
  const groups = B * tilesM * tilesN;
  const K4 = Math.floor(K / 4);
  const rows = range(RM), cols = range(RN4), lanes = range(4), rowGroups = range(RM / G);
  const rowOf = (i: number) => `${G}u * (mg + ${WY * Math.floor(i / G)}u) + ${i % G}u`;
  const L: string[] = [];
  L.push(
    `let w = wid.x + wid.y * nwg.x;`,
    `if (w >= ${groups}u) { return; }`,
    `let tn = w % ${tilesN}u;`,
    `let tm = (w / ${tilesN}u) % ${tilesM}u;`,
    `let bt = w / ${tilesN * tilesM}u;`,
    a.batchBase("bt"),
    b.batchBase("bt"),
    `let mg = tm * ${TM / G}u + lid.y;`,
    `let q0 = tn * ${TQ}u + lid.x;`,
  );
  if (byM) {
    for (const i4 of rowGroups) {
      L.push(`let rg${i4} = min(mg + ${WY * i4}u, ${M / 4 - 1}u);`);
      L.push(`let ra${i4} = ${a.outer(`4u * rg${i4}`)};`);
    }
  } else {
    for (const i of rows) {
      L.push(`let r${i} = min(${rowOf(i)}, ${M - 1}u);`);
      L.push(`let ra${i} = ${vecA ? `(${a.outer(`r${i}`)}) / 4u` : a.outer(`r${i}`)};`);
    }
  }
  for (const j of cols) {
    if (vecB) {
      L.push(`let qc${j} = min(q0 + ${WX * j}u, ${nq - 1}u);`);
      L.push(`let cq${j} = (${b.outer(`4u * qc${j}`)}) / 4u;`);
    } else {
      for (const c of lanes) {
        L.push(`let n${j}_${c} = min(4u * (q0 + ${WX * j}u) + ${c}u, ${N - 1}u);`);
        L.push(`let cb${j}_${c} = ${b.outer(`n${j}_${c}`)};`);
      }
    }
  }
  // One k step's B values as vec4 per column group, from the row offset `kb`.
  const bRow = (kb: string, j: number) =>
    vecB
      ? `ld4_${vecB}(${kb} + cq${j})`
      : `vec4f(${lanes.map((c) => b.load(`cb${j}_${c}`, kb, "bt", `n${j}_${c}`, "k")).join(", ")})`;
  const bRowOffset = (k: string) => vecB ? `(${b.inner(k)}) / 4u` : b.inner(k);
  const fma4 = (q: number, a4: string, j: number) =>
    `acc[${q}] = fma(vec4f(${a4}.x), b0_${j}, fma(vec4f(${a4}.y), b1_${j}, ` +
    `fma(vec4f(${a4}.z), b2_${j}, fma(vec4f(${a4}.w), b3_${j}, acc[${q}]))));`;
  L.push(`var acc: array<vec4f, ${RM * RN4}>;`);
  if (K4 > 0) {
    L.push(`for (var k4 = 0u; k4 < ${K4}u; k4++) {`);
    for (const kk of lanes) {
      L.push(`  let kb${kk} = ${bRowOffset(`4u * k4 + ${kk}u`)};`);
      for (const j of cols) L.push(`  let b${kk}_${j} = ${bRow(`kb${kk}`, j)};`);
      if (vecA?.along !== "k") L.push(`  let ka${kk} = ${a.inner(`4u * k4 + ${kk}u`)};`);
    }
    if (byM) {
      // a{kk}_{i4}: rows 4 i4 .. 4 i4 + 3 at k = 4 k4 + kk; transpose to per-row k vectors.
      for (const i4 of rowGroups) {
        for (const kk of lanes) {
          L.push(`  let a${kk}_${i4} = ld4_${vecA!.buf}((ra${i4} + ka${kk}) / 4u);`);
        }
        for (const r of lanes) {
          const i = 4 * i4 + r, c = "xyzw"[r];
          L.push(`  { let a = vec4f(a0_${i4}.${c}, a1_${i4}.${c}, a2_${i4}.${c}, a3_${i4}.${c});`);
          for (const j of cols) L.push(`    ${fma4(i * RN4 + j, "a", j)}`);
          L.push(`  }`);
        }
      }
    } else {
      for (const i of rows) {
        const av = vecA
          ? `ld4_${vecA.buf}(ra${i} + k4)`
          : `vec4f(${
            lanes.map((kk) => a.load(`ra${i}`, `ka${kk}`, "bt", `r${i}`, `4u * k4 + ${kk}u`))
              .join(", ")
          })`;
        L.push(`  { let a = ${av};`);
        for (const j of cols) L.push(`    ${fma4(i * RN4 + j, "a", j)}`);
        L.push(`  }`);
      }
    }
    L.push(`}`);
  }
  if (K % 4 !== 0) {
    // The K tail (never with vec4 A along K, which needs K % 4 == 0).
    L.push(`for (var k = ${4 * K4}u; k < ${K}u; k++) {`, `  let kb = ${bRowOffset("k")};`);
    L.push(`  let ka = ${a.inner("k")};`);
    for (const j of cols) L.push(`  let b_${j} = ${bRow("kb", j)};`);
    if (byM) {
      for (const i4 of rowGroups) {
        L.push(`  { let a4 = ld4_${vecA!.buf}((ra${i4} + ka) / 4u);`);
        for (const r of lanes) {
          for (const j of cols) {
            const q = (4 * i4 + r) * RN4 + j;
            L.push(`    acc[${q}] = fma(vec4f(a4.${"xyzw"[r]}), b_${j}, acc[${q}]);`);
          }
        }
        L.push(`  }`);
      }
    } else {
      for (const i of rows) {
        L.push(`  { let a = vec4f(${a.load(`ra${i}`, "ka", "bt", `r${i}`, "k")});`);
        for (const j of cols) {
          L.push(`    acc[${i * RN4 + j}] = fma(a, b_${j}, acc[${i * RN4 + j}]);`);
        }
        L.push(`  }`);
      }
    }
    L.push(`}`);
  }
  for (const i of rows) {
    for (const j of cols) {
      const m = rowOf(i), acc = `acc[${i * RN4 + j}]`;
      if (vecOut) {
        // N % 4 == 0: whole vec4 groups, stored (and run through the epilogue) at once.
        const q = `q0 + ${WX * j}u`;
        L.push(
          `if (${m} < ${M}u && ${q} < ${nq}u) { let g = (bt * ${M}u + ${m}) * ${N / 4}u + ${q}; ${
            store("g", acc)
          } }`,
        );
        continue;
      }
      for (const c of lanes) {
        const n = `4u * (${`q0 + ${WX * j}u`}) + ${c}u`;
        L.push(
          `if (${m} < ${M}u && ${n} < ${N}u) { let g = (bt * ${M}u + ${m}) * ${N}u + ${n}; ${
            store("g", `${acc}.${"xyzw"[c]}`)
          } }`,
        );
      }
    }
  }
  const code = `
@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
${L.filter((l) => l).map((l) => "  " + l).join("\n")}
}`;
  return { code, groups };
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
function offsetOf(index: string, ext: Extent[]): string {
  const v = /^[A-Za-z0-9_]+$/.test(index) ? index : `(${index})`;
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
