/**
 * Fused elementwise groups as WebAssembly SIMD: four f32 lanes per instruction, no rounding
 * calls. Only groups of plain f32 arithmetic qualify (the ops of `WASM_OPS` in wasm_ops.ts,
 * whose results are bit-identical to kernels.ts; exp and tanh with `transcendentals`).
 * Integer groups, log, erf and converts stay in JS (codegen.ts).
 */
import { Primitive } from "../../ir/primitive.ts";
import { hasKind } from "../../ir/tensor.ts";
import type { GroupIR, Ref } from "./fused_ir.ts";
import { buildModule, FuncBuilder, type Local, OP, SIMD } from "./wasm_emit.ts";
import { type MathTemps, mathTemps } from "./wasm_math.ts";
import { type Lanes, type Signature, wasmOp } from "./wasm_ops.ts";

/** A compiled group: `(out, ...leaves, [acc,] lo, hi)`, byte addresses then a split range. */
export type WasmGroupFn = (...args: number[]) => void;

export interface WasmGroups {
  module: WebAssembly.Module | null;
  /** Per group: its function, export name and the extent of its split dim (see below). */
  fns: Map<GroupIR, { fn: WasmGroupFn; name: string; extent: number }>;
}

/**
 * Whether a group is plain f32 arithmetic (with bool masks from compares feeding selects);
 * with `transcendentals`, exp and tanh qualify too.
 */
export function wasmEligible(ir: GroupIR, transcendentals = false): boolean {
  if (ir.root.dtype !== "f32") return false;
  // the output (or, for reductions, the accumulator) is walked contiguously by the inner loop,
  // or the reduction is over the inner loop alone (a row sum: one accumulator per row)
  const inner = ir.dims.length - 1;
  if (ir.lins[ir.outLin].c[inner] !== 1 && ir.dims[inner] !== 1 && !rowReduction(ir)) {
    return false;
  }
  if (ir.reduce && ir.root.inputs[0].dtype !== "f32") return false;
  if (ir.leafDtypes.some((d) => d !== "f32")) return false;
  const litOk = (r: Ref) => "stmt" in r || r.dtype === "f32";
  if (!litOk(ir.value)) return false;
  for (const s of ir.stmts) {
    if (s.kind === "index") return false;
    if (s.kind === "load") continue;
    const n = s.node;
    const rule = wasmOp(n);
    if (!rule || (rule.transcendental && !transcendentals)) return false;
    if (!s.args.every(litOk) || !SIGNATURE_OK[rule.sig](n)) return false;
  }
  return true;
}

/**
 * A reduction over the inner loop dim only (softmax, layer norm and loss rows): each outer
 * index owns one output, summed in a local in the reference's order and stored once, so the
 * loop needs no accumulator buffer and may be cut along its first dim across threads.
 */
export function rowReduction(ir: GroupIR): boolean {
  if (!ir.reduce) return false;
  const inner = ir.dims.length - 1;
  if (ir.lins[ir.outLin].c[inner] !== 0) return false;
  const rows = ir.dims.slice(0, inner).reduce((a, b) => a * b, 1);
  return rows === ir.root.size;
}

/**
 * A reduction over every dim but the inner one, which the output is (bias and scale gradients,
 * [rows, C] -> [C]): its function takes a range of the inner dim (columns) instead, so that
 * it may be cut across threads by columns, each summed over all rows in order.
 */
export function columnReduction(ir: GroupIR): boolean {
  if (!ir.reduce || ir.dims.length < 2) return false;
  const inner = ir.dims.length - 1;
  const out = ir.lins[ir.outLin];
  return out.c[inner] === 1 && out.k === 0 && ir.root.size === ir.dims[inner];
}

/** The extent of the range a group's function takes (see buildWasmGroups). */
export function splitExtent(ir: GroupIR): number {
  return columnReduction(ir) ? ir.dims[ir.dims.length - 1] : ir.dims[0];
}

const SIGNATURE_OK: Record<Signature, (n: GroupIR["root"]) => boolean> = {
  f32: (n) => n.dtype === "f32" && n.inputs.every((x) => x.dtype === "f32"),
  compare: (n) => n.inputs.every((x) => x.dtype === "f32"),
  not: (n) => n.dtype === "bool",
  select: (n) => n.dtype === "f32" && n.inputs[0].dtype === "bool",
};

/**
 * Compiles the groups into one module over `memory`; each function takes the byte addresses
 * of its output and leaves (and, for reductions, of an f64 accumulator), then a range
 * [lo, hi) of the split dim: the first loop dim, or the only one. Elementwise groups may be
 * cut along it across threads; reductions always take the whole range. Identical loop bodies
 * share one function.
 */
export function buildWasmGroups(
  irs: GroupIR[],
  memory: WebAssembly.Memory,
  expTable: number,
  shared = false,
): WasmGroups {
  const fns = new Map<GroupIR, { fn: WasmGroupFn; name: string; extent: number }>();
  if (irs.length === 0) return { module: null, fns };
  const funcs: FuncBuilder[] = [];
  const byBody = new Map<string, number>();
  const index = irs.map((ir) => {
    const f = groupFunc(ir, `g${funcs.length}`, expTable);
    const key = `${ir.leaves.length}|${f.encode().join(",")}`;
    let i = byBody.get(key);
    if (i === undefined) {
      i = funcs.length;
      funcs.push(f);
      byBody.set(key, i);
    }
    return i;
  });
  const module = new WebAssembly.Module(
    buildModule(funcs, { minPages: 1, maxPages: 65536, shared }),
  );
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  irs.forEach((ir, k) => {
    const name = funcs[index[k]].name;
    fns.set(ir, { fn: inst.exports[name] as WasmGroupFn, name, extent: splitExtent(ir) });
  });
  return { module, fns };
}

function groupFunc(ir: GroupIR, name: string, expTable: number): FuncBuilder {
  const f = new FuncBuilder(name, [
    "i32",
    ...ir.leaves.map(() => "i32" as const),
    ...(ir.reduce ? ["i32" as const] : []),
    "i32",
    "i32",
  ]);
  const [outAddr, ...leafAddr] = f.params;
  const lo = f.params[f.params.length - 2], hi = f.params[f.params.length - 1];
  const { dims, lins, stmts, invariant } = ir;
  const inner = dims.length - 1;
  const n = dims[inner];
  const counters = dims.slice(0, inner).map(() => f.local("i32"));
  const j = f.local("i32"), j4 = f.local("i32");
  const isMask = stmts.map((s) => s.kind === "op" && s.node.dtype === "bool");
  // per statement: a scalar local (f32, or i32 for masks) and a vector local
  const scalar = stmts.map((_, i) => f.local(isMask[i] ? "i32" : "f32"));
  const vector = stmts.map(() => f.local("v128"));
  // per load: its pointer (leaf address + base offset of its lin) for the current outer index
  const ptr = stmts.map((s) => (s.kind === "load" ? f.local("i32") : null));
  const outPtr = f.local("i32");
  const t0 = f.local("v128"), t1 = f.local("v128");
  let math: { t: MathTemps; y: Local } | null = null;
  const lanesMath: Lanes["math"] = (fn, x) => {
    const m = math ??= { t: mathTemps(f), y: f.local("v128") };
    fn(f, x, m.y, m.t, expTable);
    f.get(m.y);
  };
  // the f64x2 operand of Lanes.viaF64
  let wideLocal: Local | null = null;
  const wide = () => (wideLocal ??= f.local("v128"));
  /** Scalar width: one f32 per value, masks as 0/1 i32; f64 work on lane 0 of an f64x2. */
  const scalarLanes: Lanes = {
    f,
    ref: scalarRef,
    op: (op) => void f.op(op.scalar),
    viaF64: (body) => {
      const x = wide();
      f.op(OP.f64PromoteF32).simd(SIMD.f64x2Splat).set(x);
      body(x);
      f.simd(F64X2_EXTRACT_LANE, 0).op(OP.f32DemoteF64);
    },
    math: lanesMath,
  };
  /** Vector width: four f32 lanes, masks as all-ones lanes; f64 work on lanes 0,1 then 2,3. */
  const vectorLanes: Lanes = {
    f,
    ref: vectorRef,
    op: (op) => void f.simd(op.vector),
    viaF64: (body) => {
      const x = wide();
      f.set(t0);
      f.get(t0).simd(SIMD.f64x2PromoteLowF32x4).set(x);
      body(x);
      f.simd(SIMD.f32x4DemoteF64x2Zero).set(t1);
      f.get(t0).get(t0).simd(SIMD.i8x16Shuffle, ...HIGH_TO_LOW);
      f.simd(SIMD.f64x2PromoteLowF32x4).set(x);
      body(x);
      f.simd(SIMD.f32x4DemoteF64x2Zero).set(t0);
      f.get(t1).get(t0).simd(SIMD.i8x16Shuffle, ...LOW_PAIR_CONCAT);
    },
    math: lanesMath,
  };

  /** Pushes `4 * (k + sum c[d] * i_d)` for lin `id` over the outer counters. */
  const baseBytes = (id: number, bytes = 4) => {
    const l = lins[id];
    f.i32(bytes * l.k);
    for (let d = 0; d < inner; d++) {
      if (l.c[d] === 0) continue;
      f.get(counters[d]).i32(bytes * l.c[d]).op(OP.i32Mul).op(OP.i32Add);
    }
  };
  // Reductions accumulate in f64 (as the reference) in a scratch buffer, one lane per output,
  // in the domain's row-major order: each output sums its inputs in the reference's order.
  const reduce = ir.reduce;
  const accAddr = reduce ? f.params[f.params.length - 3] : null;
  const isMax = ir.root.prim === Primitive.ReduceMax;
  const accI = f.local("i32"), accV = f.local("v128"), accS = f.local("f64");
  const row = rowReduction(ir), column = columnReduction(ir);
  const rowAcc = f.local("f64"), rowVal = f.local("f64");
  const combineVector = () => {
    // stack: acc, v (f64x2) -> combined
    if (!isMax) return void f.simd(F64X2_ADD);
    f.set(accV).set(t1);
    f.get(t1).get(accV).get(t1).get(t1).simd(F64X2_NE).get(t1).get(accV).simd(F64X2_GT);
    f.simd(SIMD.v128Or).simd(SIMD.v128Bitselect);
  };
  const combineScalar = () => {
    if (!isMax) return void f.op(OP.f64Add);
    f.set(accS);
    const a = f.local("f64");
    f.set(a).get(a).get(accS).get(a).get(a).op(F64_NE).get(a).get(accS).op(F64_GT);
    f.op(OP.i32Or).op(OP.select);
  };

  const body = () => {
    // outer-index dependent pointers, then the statements that do not depend on j
    stmts.forEach((s, i) => {
      if (s.kind !== "load") return;
      f.get(leafAddr[s.leaf]);
      baseBytes(s.lin);
      f.op(OP.i32Add).set(ptr[i]!);
    });
    if (accAddr && !row) f.get(accAddr);
    else f.get(outAddr);
    baseBytes(ir.outLin, reduce && !row ? 8 : 4);
    f.op(OP.i32Add).set(outPtr);
    if (row) f.f64(isMax ? -Infinity : 0).set(rowAcc);
    stmts.forEach((_, i) => {
      if (!invariant[i]) return;
      scalarStmt(i);
      // masks are all-ones lanes in vectors, 0/1 in scalars
      if (isMask[i]) f.i32(0).get(scalar[i]).op(OP.i32Sub).simd(SIMD.i32x4Splat);
      else f.get(scalar[i]).simd(SIMD.f32x4Splat);
      f.set(vector[i]);
    });
    // vector loop over whole groups of 4, then a scalar tail
    // the split dim is the inner loop when there is only one
    const split = (inner === 0 && !reduce) || column;
    const rowAdd = () => {
      // stack: an f64 value; rowAcc = combine(rowAcc, value)
      f.set(rowVal);
      f.get(rowAcc).get(rowVal);
      combineScalar();
      f.set(rowAcc);
    };
    const end = () => (split ? f.get(hi) : f.i32(n));
    if (split) f.get(lo).set(j);
    else f.i32(0).set(j);
    f.block(() => {
      f.get(j).i32(4).op(OP.i32Add);
      end();
      f.op(OP.i32GtS).emit(OP.brIf, 0);
      f.loop(() => {
        f.get(j).i32(2).op(OP.i32Shl).set(j4);
        stmts.forEach((_, i) => invariant[i] || vectorStmt(i));
        if (row) {
          // lanes in order into the row's f64 sum
          vectorRef(ir.value);
          f.set(t0);
          for (let lane = 0; lane < 4; lane++) {
            f.get(t0).simd(SIMD.f32x4ExtractLane, lane).op(OP.f64PromoteF32);
            rowAdd();
          }
        } else if (reduce) {
          // acc[j..j+1] and acc[j+2..j+3] (f64) with the promoted lanes
          f.get(outPtr).get(j4).get(j4).op(OP.i32Add).op(OP.i32Add).set(accI);
          vectorRef(ir.value);
          f.set(t0);
          for (const half of [0, 1]) {
            f.get(accI).get(accI).simdMem(SIMD.v128Load, 0, 16 * half);
            f.get(t0);
            if (half === 1) f.get(t0).simd(SIMD.i8x16Shuffle, ...HIGH_TO_LOW);
            f.simd(SIMD.f64x2PromoteLowF32x4);
            combineVector();
            f.simdMem(SIMD.v128Store, 0, 16 * half);
          }
        } else {
          f.get(outPtr).get(j4).op(OP.i32Add);
          vectorRef(ir.value);
          f.simdMem(SIMD.v128Store, 0);
        }
        f.addTo(j, 4);
        f.get(j).i32(4).op(OP.i32Add);
        end();
        f.op(OP.i32LeS).emit(OP.brIf, 0);
      });
    });
    f.block(() => {
      f.get(j);
      end();
      f.op(OP.i32GeS).emit(OP.brIf, 0);
      f.loop(() => {
        f.get(j).i32(2).op(OP.i32Shl).set(j4);
        stmts.forEach((_, i) => invariant[i] || scalarStmt(i));
        if (row) {
          scalarRef(ir.value);
          f.op(OP.f64PromoteF32);
          rowAdd();
        } else if (reduce) {
          f.get(outPtr).get(j4).get(j4).op(OP.i32Add).op(OP.i32Add).set(accI);
          f.get(accI).get(accI).mem(OP.f64Load, 3);
          scalarRef(ir.value);
          f.op(OP.f64PromoteF32);
          combineScalar();
          f.mem(OP.f64Store, 3);
        } else {
          f.get(outPtr).get(j4).op(OP.i32Add);
          scalarRef(ir.value);
          f.mem(OP.f32Store, 2);
        }
        f.addTo(j, 1);
        f.get(j);
        end();
        f.op(OP.i32LtS).emit(OP.brIf, 0);
      });
    });
    if (row) f.get(outPtr).get(rowAcc).op(OP.f32DemoteF64).mem(OP.f32Store, 2);
  };

  const nest = (d: number) => {
    if (d === inner) return body();
    if (d === 0 && (!reduce || row)) f.forRange(counters[d], lo, hi, 1, () => nest(d + 1));
    else f.forRange(counters[d], 0, dims[d], 1, () => nest(d + 1));
  };
  const outSize = ir.root.size;
  if (reduce && !row) {
    // acc = init (for a column range: its columns)
    const init = () => {
      f.get(accI).i32(3).op(OP.i32Shl).get(accAddr!).op(OP.i32Add);
      f.f64(isMax ? -Infinity : 0).mem(OP.f64Store, 3);
    };
    if (column) f.forRange(accI, lo, hi, 1, init);
    else f.forRange(accI, 0, outSize, 1, init);
  }
  nest(0);
  if (reduce && !row) {
    // out = f32(acc)
    const store = () => {
      f.get(accI).i32(2).op(OP.i32Shl).get(outAddr).op(OP.i32Add);
      f.get(accI).i32(3).op(OP.i32Shl).get(accAddr!).op(OP.i32Add).mem(OP.f64Load, 3);
      f.op(OP.f32DemoteF64).mem(OP.f32Store, 2);
    };
    if (column) f.forRange(accI, lo, hi, 1, store);
    else f.forRange(accI, 0, outSize, 1, store);
  }
  return f;

  // ------------------------------------------------------------ statements

  function scalarRef(r: Ref) {
    if ("stmt" in r) f.get(scalar[r.stmt]);
    else f.f32(r.lit);
  }

  function vectorRef(r: Ref) {
    if ("stmt" in r) f.get(vector[r.stmt]);
    else f.f32x4(r.lit);
  }

  /** Pushes the address of element j (+ lane) of load statement i. */
  function loadAddress(i: number, lane: number) {
    const s = stmts[i] as { lin: number };
    const c = lins[s.lin].c[inner];
    f.get(ptr[i]!);
    if (c !== 0) {
      f.get(j4);
      if (c !== 1) f.i32(c).op(OP.i32Mul);
      f.op(OP.i32Add);
    }
    return 4 * c * lane;
  }

  function scalarStmt(i: number) {
    const s = stmts[i];
    if (s.kind === "load") {
      const off = loadAddress(i, 0);
      f.mem(OP.f32Load, 2, off).set(scalar[i]);
      return;
    }
    opStmt(i, scalarLanes);
    f.set(scalar[i]);
  }

  function vectorStmt(i: number) {
    const s = stmts[i];
    if (s.kind === "load") {
      const c = lins[s.lin].c[inner];
      if (c === 1) {
        loadAddress(i, 0);
        f.simdMem(SIMD.v128Load, 0).set(vector[i]);
        return;
      }
      // strided: one lane at a time
      for (let lane = 0; lane < 4; lane++) {
        if (lane > 0) f.get(vector[i]);
        const off = loadAddress(i, lane);
        f.mem(OP.f32Load, 2, off);
        if (lane === 0) f.simd(SIMD.f32x4Splat);
        else f.simd(SIMD.f32x4ReplaceLane, lane);
        f.set(vector[i]);
      }
      return;
    }
    opStmt(i, vectorLanes);
    f.set(vector[i]);
  }

  /** Pushes the value of op statement i at the width of `l`. */
  function opStmt(i: number, l: Lanes) {
    const s = stmts[i];
    if (s.kind !== "op") throw new Error("wasm fused: index statements are not supported");
    const n = s.node;
    const rule = wasmOp(n);
    if (!rule || !hasKind(n, "elementwise")) {
      throw new Error(`wasm fused: ${n.prim} is not supported`);
    }
    rule.emit(l, s.args, n);
  }
}

const F64X2_EXTRACT_LANE = 0x21;
const F64X2_NE = 0x48;
const F64X2_GT = 0x4a;
const F64X2_ADD = 0xf0;
const F64_NE = 0x62;
const F64_GT = 0x64;

/** i8x16.shuffle lanes moving f32 lanes 2,3 of the first operand to lanes 0,1. */
const HIGH_TO_LOW = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
/** f32 lanes 0,1 of the first operand then lanes 0,1 of the second. */
const LOW_PAIR_CONCAT = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
