/**
 * WGSL for one planned kernel: an elementwise map, a reduction (one thread per output, or a
 * workgroup per output when outputs are few), or a dot_general (register-blocked for CPU
 * adapters, workgroup-memory tiles for GPUs), each with its fused prologue and epilogue.
 * Binding 0 is the output; bindings 1.. are the kernel's reads in plan order.
 */
import { numel } from "../../ir/host_tensor.ts";
import { Primitive, type PrimitiveParams } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import { ExprBuilder, type KernelContext } from "./expr.ts";
import { helperSource } from "./helpers.ts";
import type { KernelPlan } from "./plan.ts";
import { literal, wgslType } from "./storage.ts";

export interface Tuning {
  /** Threads per workgroup of map and reduction kernels. */
  workgroupSize: number;
  /** dot_general strategy: per-thread register blocks (CPU adapters) or workgroup tiles. */
  matmul: "register" | "tiled";
  /** Reductions with fewer outputs than this and enough terms use a workgroup per output. */
  cooperativeBelow: number;
  /** Bytes of workgroup memory a kernel may use. */
  maxWorkgroupStorage: number;
}

export interface GeneratedKernel {
  code: string;
  /** Node written at binding 0, then the nodes read at bindings 1... */
  bindings: Tensor[];
  workgroups: [number, number, number];
  label: string;
}

const MAX_GROUPS = 65535;

export function generateKernel(k: KernelPlan, t: Tuning): GeneratedKernel {
  const core = k.core;
  if (core?.prim === Primitive.DotGeneral) return dotKernel(k, core, t);
  if (core) return reduceKernel(k, core, t);
  return mapKernel(k, t);
}

function mapKernel(k: KernelPlan, t: Tuning): GeneratedKernel {
  const { root } = k;
  const size = root.size;
  const b = new ExprBuilder(context(k));
  const wg = t.workgroupSize;
  b.emit(`let g = gid.x + gid.y * (nwg.x * ${wg}u);`);
  b.emit(`if (g >= ${size}u) { return; }`);
  const v = b.value(root, b.unflatten("g", root.shape));
  b.emit(`buf0[g] = ${v};`);
  const code = [
    header(k, b),
    `@compute @workgroup_size(${wg})`,
    `fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {`,
    b.code(),
    `}`,
  ].join("\n");
  return {
    code,
    bindings: [root, ...k.reads],
    workgroups: grid(Math.ceil(size / wg)),
    label: label(k),
  };
}

function reduceKernel(k: KernelPlan, core: Tensor, t: Tuning): GeneratedKernel {
  const { root } = k;
  const x = core.inputs[0];
  const { axes } = core.params as PrimitiveParams[Primitive.ReduceSum];
  const outSize = root.size;
  const redShape = axes.map((a) => x.shape[a]);
  const terms = numel(redShape);
  const isMax = core.prim === Primitive.ReduceMax;
  const ty = wgslType(core.dtype);
  const init = isMax ? maxInit(core) : literal(0, core.dtype);
  const combine = (acc: string, v: string) =>
    isMax
      ? (ty === "f32" ? `f32_max(${acc}, ${v})` : `max(${acc}, ${v})`)
      : narrowSum(core, `${acc} + ${v}`);
  const cooperative = outSize < t.cooperativeBelow && terms >= 4 * t.workgroupSize;
  const b = new ExprBuilder(context(k, { node: core, value: "acc" }));
  if (isMax && ty === "f32") b.helpers.add("f32_max");
  const wg = t.workgroupSize;
  if (cooperative) b.emit(`let g = wid.x + wid.y * nwg.x;`);
  else b.emit(`let g = gid.x + gid.y * (nwg.x * ${wg}u);`);
  // Cooperative threads must all reach the barriers, so out-of-range groups exit as a whole.
  b.emit(`if (g >= ${outSize}u) { return; }`);
  const kept = b.unflatten("g", core.shape);
  b.emit(`var acc: ${ty} = ${init};`);
  const loop = cooperative
    ? `for (var r = lid.x; r < ${terms}u; r += ${wg}u) {`
    : `for (var r = 0u; r < ${terms}u; r++) {`;
  b.emit(loop);
  b.scoped(() => {
    const red = b.unflatten("r", redShape);
    const full: string[] = [];
    let ki = 0, ri = 0;
    for (let d = 0; d < x.shape.length; d++) full.push(axes.includes(d) ? red[ri++] : kept[ki++]);
    b.emit(`acc = ${combine("acc", b.value(x, full))};`);
  });
  b.emit(`}`);
  let decl = "";
  if (cooperative) {
    decl = `var<workgroup> partial: array<${ty}, ${wg}>;\n`;
    b.emit(`partial[lid.x] = acc;`);
    b.emit(`workgroupBarrier();`);
    for (let s = wg / 2; s >= 1; s /= 2) {
      b.emit(
        `if (lid.x < ${s}u) { partial[lid.x] = ${
          combine("partial[lid.x]", `partial[lid.x + ${s}u]`)
        }; }`,
      );
      b.emit(`workgroupBarrier();`);
    }
    b.emit(`if (lid.x != 0u) { return; }`);
    b.emit(`acc = partial[0];`);
  }
  const v = root === core ? "acc" : b.value(root, kept);
  b.emit(`buf0[g] = ${v};`);
  const code = [
    header(k, b) + decl,
    `@compute @workgroup_size(${wg})`,
    `fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u,`,
    `        @builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {`,
    b.code(),
    `}`,
  ].join("\n");
  const groups = cooperative ? outSize : Math.ceil(outSize / wg);
  return { code, bindings: [root, ...k.reads], workgroups: grid(groups), label: label(k) };
}

/** dot_general as a batched [B, M, K] x [B, K, N] product over index-mapped operand loads. */
function dotKernel(k: KernelPlan, dot: Tensor, t: Tuning): GeneratedKernel {
  const { root } = k;
  const [lhs, rhs] = dot.inputs;
  const p = dot.params as PrimitiveParams[Primitive.DotGeneral];
  if (lhs.dtype !== "f32") {
    throw new Error(`webgpu: dot_general supports f32 only, got ${lhs.dtype}`);
  }
  const lhsFree = freeDims(lhs, p.lhsBatch, p.lhsContract);
  const rhsFree = freeDims(rhs, p.rhsBatch, p.rhsContract);
  const batchShape = p.lhsBatch.map((d) => lhs.shape[d]);
  const mShape = lhsFree.map((d) => lhs.shape[d]);
  const nShape = rhsFree.map((d) => rhs.shape[d]);
  const kShape = p.lhsContract.map((d) => lhs.shape[d]);
  const B = numel(batchShape), M = numel(mShape), N = numel(nShape), K = numel(kShape);
  const ctx = context(k, { node: dot, value: "acc" });
  const helpers = new Set<string>();
  const loader = (
    name: string,
    x: Tensor,
    groups: [string, number[], number[]][],
  ): string => {
    const b = new ExprBuilder(ctx);
    const idx = x.shape.map(() => "0u");
    for (const [v, dims, shape] of groups) {
      const parts = b.unflatten(v, shape);
      dims.forEach((d, i) => (idx[d] = parts[i]));
    }
    const v = b.value(x, idx);
    for (const h of b.helpers) helpers.add(h);
    return `fn ${name}(bt: u32, m: u32, k: u32) -> f32 {\n${b.code()}\n  return ${v};\n}`;
  };
  const loadA = loader("loadA", lhs, [
    ["bt", p.lhsBatch, batchShape],
    ["m", lhsFree, mShape],
    ["k", p.lhsContract, kShape],
  ]);
  // loadB takes (bt, n, k) in its (bt, m, k) slots.
  const loadB = loader("loadB", rhs, [
    ["bt", p.rhsBatch, batchShape],
    ["m", rhsFree, nShape],
    ["k", p.rhsContract, kShape],
  ]);
  let epilogue = "";
  if (root !== dot) {
    const b = new ExprBuilder(ctx);
    const v = b.value(root, b.unflatten("g", root.shape));
    for (const h of b.helpers) helpers.add(h);
    epilogue = `fn epilogue(g: u32, acc: f32) -> ${
      wgslType(root.dtype)
    } {\n${b.code()}\n  return ${v};\n}`;
  }
  const store = (g: string, acc: string) =>
    `buf0[${g}] = ${root === dot ? acc : `epilogue(${g}, ${acc})`};`;
  const dims = { B, M, N, K };
  const body = t.matmul === "register" ? registerMatmul(dims, store) : tiledMatmul(dims, store, t);
  const code = [
    bindingDecls(k),
    helperSource(helpers),
    loadA,
    loadB,
    epilogue,
    body.code,
  ].join("\n");
  return { code, bindings: [root, ...k.reads], workgroups: grid(body.groups), label: label(k) };
}

interface MatDims {
  B: number;
  M: number;
  N: number;
  K: number;
}

/**
 * CPU adapters (llvmpipe): no workgroup memory (it is plain memory there, and barriers are
 * expensive); each thread accumulates an RM x RN block in registers, lanes along N.
 */
function registerMatmul(
  { B, M, N, K }: MatDims,
  store: (g: string, acc: string) => string,
): { code: string; groups: number } {
  const RM = 8, RN = 8, WX = 16, WY = 2;
  const TM = RM * WY, TN = RN * WX;
  const tilesM = Math.ceil(M / TM), tilesN = Math.ceil(N / TN);
  const groups = B * tilesM * tilesN;
  const code = `
@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= ${groups}u) { return; }
  let tn = w % ${tilesN}u;
  let tm = (w / ${tilesN}u) % ${tilesM}u;
  let bt = w / ${tilesN * tilesM}u;
  let m0 = tm * ${TM}u + lid.y;
  let n0 = tn * ${TN}u + lid.x;
  var rows: array<u32, ${RM}>;
  var cols: array<u32, ${RN}>;
  for (var i = 0u; i < ${RM}u; i++) { rows[i] = min(m0 + ${WY}u * i, ${M - 1}u); }
  for (var j = 0u; j < ${RN}u; j++) { cols[j] = min(n0 + ${WX}u * j, ${N - 1}u); }
  var acc: array<f32, ${RM * RN}>;
  for (var k = 0u; k < ${K}u; k++) {
    var bv: array<f32, ${RN}>;
    for (var j = 0u; j < ${RN}u; j++) { bv[j] = loadB(bt, cols[j], k); }
    for (var i = 0u; i < ${RM}u; i++) {
      let a = loadA(bt, rows[i], k);
      for (var j = 0u; j < ${RN}u; j++) { acc[i * ${RN}u + j] = fma(a, bv[j], acc[i * ${RN}u + j]); }
    }
  }
  for (var i = 0u; i < ${RM}u; i++) {
    let m = m0 + ${WY}u * i;
    for (var j = 0u; j < ${RN}u; j++) {
      let n = n0 + ${WX}u * j;
      if (m < ${M}u && n < ${N}u) {
        let g = (bt * ${M}u + m) * ${N}u + n;
        ${store("g", `acc[i * ${RN}u + j]`)}
      }
    }
  }
}`;
  return { code, groups };
}

/** GPUs: square workgroup-memory tiles, 16x16 threads, each an R x R register block. */
function tiledMatmul(
  { B, M, N, K }: MatDims,
  store: (g: string, acc: string) => string,
  t: Tuning,
): { code: string; groups: number } {
  // 128x128 tiles (8x8 per thread) for large products, 64x64 (4x4) otherwise.
  let T = M >= 128 && N >= 128 ? 128 : 64;
  let TK = T === 128 ? 8 : 16;
  while (2 * T * TK * 4 > t.maxWorkgroupStorage && TK > 1) TK /= 2;
  if (2 * T * TK * 4 > t.maxWorkgroupStorage) T = 32;
  const R = T / 16;
  const tilesM = Math.ceil(M / T), tilesN = Math.ceil(N / T);
  const groups = B * tilesM * tilesN;
  const code = `
var<workgroup> As: array<f32, ${T * TK}>;
var<workgroup> Bs: array<f32, ${T * TK}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= ${groups}u) { return; }
  let tn = w % ${tilesN}u;
  let tm = (w / ${tilesN}u) % ${tilesM}u;
  let bt = w / ${tilesN * tilesM}u;
  let mBase = tm * ${T}u;
  let nBase = tn * ${T}u;
  var acc: array<f32, ${R * R}>;
  for (var k0 = 0u; k0 < ${K}u; k0 += ${TK}u) {
    for (var e = li; e < ${T * TK}u; e += 256u) {
      let kk = e / ${T}u;
      let mm = e % ${T}u;
      let k = k0 + kk;
      let inK = k < ${K}u;
      let kc = min(k, ${Math.max(K - 1, 0)}u);
      As[e] = select(0.0f, loadA(bt, min(mBase + mm, ${M - 1}u), kc), inK);
      Bs[e] = select(0.0f, loadB(bt, min(nBase + mm, ${N - 1}u), kc), inK);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      var av: array<f32, ${R}>;
      var bv: array<f32, ${R}>;
      for (var i = 0u; i < ${R}u; i++) {
        av[i] = As[kk * ${T}u + lid.y + 16u * i];
        bv[i] = Bs[kk * ${T}u + lid.x + 16u * i];
      }
      for (var i = 0u; i < ${R}u; i++) {
        for (var j = 0u; j < ${R}u; j++) { acc[i * ${R}u + j] = fma(av[i], bv[j], acc[i * ${R}u + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${R}u; i++) {
    let m = mBase + lid.y + 16u * i;
    for (var j = 0u; j < ${R}u; j++) {
      let n = nBase + lid.x + 16u * j;
      if (m < ${M}u && n < ${N}u) {
        let g = (bt * ${M}u + m) * ${N}u + n;
        ${store("g", `acc[i * ${R}u + j]`)}
      }
    }
  }
}`;
  return { code, groups };
}

function freeDims(x: Tensor, batch: number[], contract: number[]): number[] {
  return x.shape.map((_, i) => i).filter((i) => !batch.includes(i) && !contract.includes(i));
}

function context(k: KernelPlan, core?: { node: Tensor; value: string }): KernelContext {
  const names = new Map<number, string>();
  k.reads.forEach((n, i) => names.set(n.id, `buf${i + 1}`));
  return { binding: (n) => (n === k.root ? undefined : names.get(n.id)), core };
}

function bindingDecls(k: KernelPlan): string {
  const lines = [
    `@group(0) @binding(0) var<storage, read_write> buf0: array<${wgslType(k.root.dtype)}>;`,
  ];
  k.reads.forEach((n, i) =>
    lines.push(
      `@group(0) @binding(${i + 1}) var<storage, read> buf${i + 1}: array<${wgslType(n.dtype)}>;`,
    )
  );
  return lines.join("\n");
}

function header(k: KernelPlan, b: ExprBuilder): string {
  return bindingDecls(k) + "\n" + helperSource(b.helpers) + "\n";
}

/** Workgroup counts over two dimensions, since each is capped at 65535. */
function grid(groups: number): [number, number, number] {
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_GROUPS);
  if (y > MAX_GROUPS) throw new Error(`webgpu: ${groups} workgroups exceed a 65535^2 grid`);
  return [MAX_GROUPS, y, 1];
}

function maxInit(n: Tensor): string {
  switch (wgslType(n.dtype)) {
    case "f32":
      return "bitcast<f32>(0xff800000u)";
    case "i32":
      return "i32(-2147483647 - 1)";
    case "u32":
      return "0u";
  }
}

function narrowSum(n: Tensor, expr: string): string {
  return n.dtype === "u8" || n.dtype === "bool" ? `(${expr}) & 0xffu` : expr;
}

function label(k: KernelPlan): string {
  const core = k.core && k.core !== k.root ? `${k.core.prim}+` : "";
  return `${core}${k.root.prim}#${k.root.id}[${k.root.shape.join(",")}]`;
}
