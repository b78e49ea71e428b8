/**
 * WGSL for one planned kernel: an elementwise map, a reduction (one thread per output, or a
 * workgroup per output when outputs are few), or a dot_general (register-blocked for CPU
 * adapters, workgroup-memory tiles for GPUs), each with its fused prologue and epilogue.
 * Attention kernels come from attention.ts (`kernelOf` in memory.ts picks).
 * The kernel's outputs bind first (read-write), then its reads in plan order.
 */
import { numel } from "../../ir/host_tensor.ts";
import { Primitive } from "../../ir/primitive.ts";
import { hasKind, type Tensor } from "../../ir/tensor.ts";
import { ExprBuilder, FlatIndex, indexKey, type KernelContext, VecIndex } from "./expr.ts";
import { emitterOf } from "./emitters.ts";
import { bindingSource, chunkCount, type ChunkPolicy } from "./bindings.ts";
import { helperSource } from "./helpers.ts";
import { normalizeDot, operandAccess, registerMatmul, tiledMatmul, vec4Able } from "./matmul.ts";
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
  /** Largest tile edge of the tiled dot_general (128; tests on CPU adapters use 32). */
  maxTile?: number;
  /** Bindings above the adapter's size limit are split into windows of this policy. */
  chunks: ChunkPolicy;
}

export interface GeneratedKernel {
  code: string;
  /** Nodes written at bindings 0..outputs-1, then the nodes read. */
  bindings: Tensor[];
  outputs: number;
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
  const size = k.roots[0].size;
  const wg = t.workgroupSize;
  // Four elements per thread with vec4 loads and stores when the sizes allow.
  return mapBody(k, size % 4 === 0 && size >= 4 * wg, t);
}

function mapBody(k: KernelPlan, vector: boolean, t: Tuning): GeneratedKernel {
  const { roots } = k;
  const wg = t.workgroupSize;
  const known = new Map<number, string>();
  const written = new Map<number, string>();
  const base = context(k);
  const b = new ExprBuilder({
    binding: (n) => written.get(n.id) ?? base.binding(n),
    known,
    ownKey: indexKey(vector ? new VecIndex("g") : new FlatIndex("g")),
  }, emitterOf);
  const threads = vector ? roots[0].size / 4 : roots[0].size;
  // arrayLength keeps the WGSL independent of the size (one pipeline for many shapes).
  const bound = chunkCount(roots[0].size, t.chunks) === 1 ? "arrayLength(&buf0)" : `${threads}u`;
  b.emit(`let g = gid.x + gid.y * (nwg.x * ${wg}u);`);
  b.emit(`if (g >= ${bound}) { return; }`);
  roots.forEach((root, i) => {
    const v = b.value(root, vector ? new VecIndex("g") : new FlatIndex("g"));
    b.emit(`${vector ? "st4" : "st"}_buf${i}(g, ${v});`);
    known.set(root.id, v);
    written.set(root.id, `buf${i}`);
  });
  // Outputs (vector kernels) and the reads loaded four at a time are declared as vec4 arrays.
  const vec4 = new Set(b.vecLoads);
  if (vector) roots.forEach((_, i) => vec4.add(`buf${i}`));
  const code = [
    bindingDecls(k, vec4, t.chunks),
    helperSource(b.helpers),
    `@compute @workgroup_size(${wg})`,
    `fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {`,
    b.code(),
    `}`,
  ].join("\n");
  return {
    code,
    bindings: [...roots, ...k.reads],
    outputs: roots.length,
    workgroups: grid(Math.ceil(threads / wg)),
    label: label(k) + (vector ? "/vec4" : ""),
  };
}

function reduceKernel(k: KernelPlan, core: Tensor, t: Tuning): GeneratedKernel {
  const root = k.roots[0];
  const x = core.inputs[0];
  if (!hasKind(core, "reduce")) throw new Error(`webgpu: ${core} is not a reduction`);
  const { axes } = core.params;
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
  const b = new ExprBuilder(context(k, { node: core, value: "acc" }), emitterOf);
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
  const v = root === core ? "acc" : b.value(root, new FlatIndex("g"));
  b.emit(`st_buf0(g, ${v});`);
  const code = [
    bindingDecls(k, new Set(), t.chunks) + "\n" + helperSource(b.helpers) + "\n" + decl,
    `@compute @workgroup_size(${wg})`,
    `fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u,`,
    `        @builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {`,
    b.code(),
    `}`,
  ].join("\n");
  const groups = cooperative ? outSize : Math.ceil(outSize / wg);
  return {
    code,
    bindings: [root, ...k.reads],
    outputs: 1,
    workgroups: grid(groups),
    label: label(k),
  };
}

/** dot_general as a batched [B, M, K] x [B, K, N] product (see matmul.ts). */
function dotKernel(k: KernelPlan, dot: Tensor, t: Tuning): GeneratedKernel {
  const root = k.roots[0];
  const [lhs, rhs] = dot.inputs;
  if (lhs.dtype !== "f32") {
    throw new Error(`webgpu: dot_general supports f32 only, got ${lhs.dtype}`);
  }
  const { dims, groups } = normalizeDot(dot);
  const access = (ctx: KernelContext) => [
    k.lhsLayout
      ? operandAccess("A", k.lhsLayout, { batch: [0], outer: [1], inner: [2] }, ctx)
      : operandAccess("A", lhs, groups.lhs, ctx),
    k.rhsLayout
      ? operandAccess("B", k.rhsLayout, { batch: [0], outer: [2], inner: [1] }, ctx)
      : operandAccess("B", rhs, groups.rhs, ctx),
  ];
  const register = t.matmul === "register";
  // Operand vec4 paths (register kernels): each side's source read as vec4 along a unit run.
  let vecA: { buf: string; along: "k" | "m" } | undefined, vecB: string | undefined;
  if (register) {
    const [a0, b0] = access(context(k));
    const va = a0.view, vb = b0.view;
    if (va && va.buf !== vb?.buf) {
      if (vec4Able(va, "inner", dims.K)) vecA = { buf: va.buf, along: "k" };
      else if (vec4Able(va, "outer", dims.M)) vecA = { buf: va.buf, along: "m" };
    }
    if (vb && vb.buf !== va?.buf && vec4Able(vb, "outer", dims.N)) vecB = vb.buf;
  }
  const fixed = new Set([vecA?.buf, vecB].filter((x): x is string => !!x));
  // The epilogue runs on vec4 groups of outputs when rows are multiples of 4 (register).
  const vecOut = register && dims.N % 4 === 0;
  const helpers = new Set<string>();
  let vec4 = new Set(fixed);
  let epilogue = "";
  if (root !== dot) {
    const e = new ExprBuilder(context(k, { node: dot, value: "acc" }), emitterOf);
    const v = e.value(root, vecOut ? new VecIndex("g") : new FlatIndex("g"));
    const out = vecOut ? `vec4<${wgslType(root.dtype)}>` : wgslType(root.dtype);
    const accType = vecOut ? "vec4f" : "f32";
    epilogue = `fn epilogue(g: u32, acc: ${accType}) -> ${out} {\n${e.code()}\n  return ${v};\n}`;
    for (const h of e.helpers) helpers.add(h);
    // Reads the epilogue loads four at a time are declared as vec4 arrays.
    vec4 = new Set([...e.vecLoads, ...fixed]);
  }
  const [a, b] = access(context(k));
  for (const h of [...a.helpers, ...b.helpers]) helpers.add(h);
  const store = (g: string, acc: string) =>
    `${vecOut ? "st4" : "st"}_buf0(${g}, ${root === dot ? acc : `epilogue(${g}, ${acc})`});`;
  const outDecl = vecOut ? new Set([...vec4, "buf0"]) : vec4;
  const body = register
    ? registerMatmul(dims, a, b, store, vecA, vecB, vecOut)
    : tiledMatmul(dims, a, b, store, t.maxWorkgroupStorage, t.maxTile);
  const code = [
    bindingDecls(k, outDecl, t.chunks),
    helperSource(helpers),
    a.decls,
    b.decls,
    epilogue,
    body.code,
  ]
    .join("\n");
  return {
    code,
    bindings: [root, ...k.reads],
    outputs: 1,
    workgroups: grid(body.groups),
    label: label(k) + (vecOut ? "/vec4" : ""),
  };
}

function context(
  k: KernelPlan,
  core?: { node: Tensor; value: string },
  known?: Map<number, string>,
): KernelContext {
  const names = new Map<number, string>();
  k.reads.forEach((n, i) => names.set(n.id, `buf${k.roots.length + i}`));
  return { binding: (n) => names.get(n.id), core, known };
}

function bindingDecls(k: KernelPlan, vec4: Set<string>, chunks: ChunkPolicy): string {
  const specs = [
    ...k.roots.map((node, i) => ({ name: `buf${i}`, node, output: true })),
    ...k.reads.map((node, i) => ({ name: `buf${k.roots.length + i}`, node, output: false })),
  ].map((s) => ({ ...s, vec4: vec4.has(s.name) }));
  return bindingSource(specs, chunks);
}

/** Workgroup counts over two dimensions, since each is capped at 65535. */
export function grid(groups: number): [number, number, number] {
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
  const r = k.roots[k.roots.length - 1];
  const core = k.core && k.core !== r ? `${k.core.prim}+` : "";
  const more = k.roots.length > 1 ? `(${k.roots.length} outputs)` : "";
  return `${core}${r.prim}#${r.id}[${r.shape.join(",")}]${more}`;
}
