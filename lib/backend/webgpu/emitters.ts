/**
 * The WGSL rule table: for each primitive, the expression computing its value at an index, in
 * terms of its inputs' values (through `ExprBuilder.value`). This table is the WebGPU twin of
 * lib/backend/cpu/kernels.ts and follows its semantics: integer ops wrap, u8/bool arithmetic
 * wraps at 8 bits, shifts >= 32 give 0, integer division by zero gives -1, max/min propagate
 * NaN, convert truncates and saturates.
 *
 * At a `VecIndex` (four consecutive flat elements) elementwise rules emit the same code over
 * vec4 types; movement ops either map the vec4 to their input (reshape, broadcasts that keep
 * or drop the last dim) or fall back to four scalar lanes.
 */
import type { DType } from "../../ir/dtype.ts";
import { Primitive } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import { type ExprBuilder, FlatIndex, type Index, isFlat, isVec, VecIndex } from "./expr.ts";
import { literal, wgslType } from "./storage.ts";

/** The WGSL expression of a node of primitive P at `idx` (its params typed by P). */
export type Emitter<P extends Primitive = Primitive> = (
  b: ExprBuilder,
  n: Tensor<P>,
  idx: Index,
) => string;

export const EMITTERS: { [P in Primitive]: Emitter<P> } = {
  [Primitive.Input]: (_b, n) => {
    throw new Error(`webgpu: input ${n} has no storage binding in this kernel`);
  },
  [Primitive.Constant]: (_b, n, idx) => {
    const v = n.params.value;
    if (v.data.length !== 1) throw new Error(`webgpu: constant ${n} has no storage binding`);
    return lit(idx, v.data[0], n.dtype);
  },
  [Primitive.Iota]: (b, n, idx) => {
    if (isVec(idx)) return lanes(b, n, idx);
    const i = b.dims(idx, n.shape)[n.params.axis];
    return wgslType(n.dtype) === "u32" ? i : `${wgslType(n.dtype)}(${i})`;
  },
  [Primitive.Neg]: (b, n, idx) => {
    const x = b.value(n.inputs[0], idx);
    return wgslType(n.dtype) === "u32"
      ? narrow(idx, n.dtype, `${lit(idx, 0, n.dtype)} - ${x}`)
      : `-${x}`;
  },
  [Primitive.Exp]: float1("exp"),
  [Primitive.Log]: float1("log"),
  [Primitive.Sqrt]: float1("sqrt"),
  [Primitive.Rsqrt]: float1("inverseSqrt"),
  [Primitive.Tanh]: float1("f32_tanh"),
  [Primitive.Erf]: float1("f32_erf"),
  [Primitive.Not]: (b, n, idx) => {
    const x = b.value(n.inputs[0], idx);
    if (n.dtype === "bool") {
      return `select(${lit(idx, 0, "u32")}, ${lit(idx, 1, "u32")}, ${x} == ${lit(idx, 0, "u32")})`;
    }
    return narrow(idx, n.dtype, `~${x}`);
  },
  [Primitive.StopGradient]: (b, n, idx) => b.value(n.inputs[0], idx),
  // WebGpuBackend.compile refuses replicated programs: one device, no cross-replica sum.
  [Primitive.AllReduceSum]: () => {
    throw new Error("webgpu: all_reduce_sum has no single-device meaning");
  },
  // always their own kernels (attention.ts), never inlined into an expression
  [Primitive.Attention]: (_b, n) => {
    throw new Error(`webgpu: ${n} cannot be inlined (it runs as its own kernel)`);
  },
  [Primitive.AttentionGrad]: (_b, n) => {
    throw new Error(`webgpu: ${n} cannot be inlined (it runs as its own kernel)`);
  },
  [Primitive.Convert]: (b, n, idx) => {
    const from = n.inputs[0].dtype, to = n.dtype;
    if (isVec(idx)) {
      const v = vecConvert(idx, from, to, () => b.value(n.inputs[0], idx));
      return v ?? lanes(b, n, idx);
    }
    return convert(b, b.value(n.inputs[0], idx), from, to);
  },
  [Primitive.Add]: arith("+"),
  [Primitive.Sub]: arith("-"),
  [Primitive.Mul]: arith("*"),
  [Primitive.Div]: (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    if (n.dtype === "f32") return `${x} / ${y}`;
    const byZero = n.dtype === "i32" ? -1 : n.dtype === "u32" ? 4294967295 : 255;
    const zero = lit(idx, 0, n.dtype);
    return `select(${lit(idx, byZero, n.dtype)}, ${x} / ${y}, ${y} != ${zero})`;
  },
  [Primitive.Max]: minMax("max"),
  [Primitive.Min]: minMax("min"),
  [Primitive.Compare]: (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    const dir = n.params.direction;
    const op = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" }[dir];
    // Naga lowers f32 `!=` to SPIR-V's ordered not-equal (false when a side is NaN) on Vulkan;
    // `!(x == y)` is true for NaN everywhere, as the CPU backend's `!==`.
    const cond = dir === "ne" ? `!(${x} == ${y})` : `${x} ${op} ${y}`;
    return `select(${lit(idx, 0, "u32")}, ${lit(idx, 1, "u32")}, ${cond})`;
  },
  [Primitive.And]: bitwise("&"),
  [Primitive.Or]: bitwise("|"),
  [Primitive.Xor]: bitwise("^"),
  [Primitive.ShiftLeft]: (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    const s = shiftAmount(idx, n.dtype, y);
    const shifted = narrow(idx, n.dtype, `${x} << ${s}`);
    return `select(${lit(idx, 0, n.dtype)}, ${shifted}, ${s} < ${lit(idx, 32, "u32")})`;
  },
  [Primitive.ShiftRightLogical]: (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    const s = shiftAmount(idx, n.dtype, y);
    const u = isVec(idx) ? "vec4<u32>" : "u32", i = isVec(idx) ? "vec4<i32>" : "i32";
    const shifted = n.dtype === "i32"
      ? `bitcast<${i}>(bitcast<${u}>(${x}) >> ${s})`
      : `${x} >> ${s}`;
    return `select(${lit(idx, 0, n.dtype)}, ${shifted}, ${s} < ${lit(idx, 32, "u32")})`;
  },
  [Primitive.Select]: (b, n, idx) => {
    const p = b.value(n.inputs[0], idx);
    const x = b.value(n.inputs[1], idx);
    const y = b.value(n.inputs[2], idx);
    return `select(${y}, ${x}, ${p} != ${lit(idx, 0, "u32")})`;
  },
  [Primitive.ReduceSum]: (_b, n) => {
    throw new Error(`webgpu: reduction ${n} must be materialized or fused`);
  },
  [Primitive.ReduceMax]: (_b, n) => {
    throw new Error(`webgpu: reduction ${n} must be materialized or fused`);
  },
  [Primitive.DotGeneral]: (_b, n) => {
    throw new Error(`webgpu: dot_general ${n} must be materialized or fused`);
  },
  // A reshape keeps the flat (row-major) order, so flat and vec4 indices pass through.
  [Primitive.Reshape]: (b, n, idx) =>
    b.value(n.inputs[0], isFlat(idx) || isVec(idx) ? idx : reshapeIndex(b, idx, n)),
  [Primitive.BroadcastInDim]: (b, n, index) => {
    const x = n.inputs[0];
    const { dims } = n.params;
    if (isVec(index)) {
      const last = n.shape.length - 1, D = n.shape[last];
      if (x.size === 1) return splat(x.dtype, b.value(x, x.shape.map(() => "0u")));
      if (D % 4 !== 0) return lanes(b, n, index);
      // The four elements share every index but the last.
      const idx = b.unflatten(`4u * ${index.q}`, n.shape);
      const inIdx = x.shape.map((d, i) => (d === 1 ? "0u" : idx[dims[i]]));
      const keepsLast = dims[x.ndim - 1] === last && x.shape[x.ndim - 1] === D;
      if (keepsLast) return b.value(x, new VecIndex(b.index(`${b.linear(inIdx, x.shape)} / 4u`)));
      const dropsLast = !dims.includes(last) || x.shape[dims.indexOf(last)] === 1;
      if (dropsLast) return splat(x.dtype, b.value(x, inIdx));
      return lanes(b, n, index);
    }
    const idx = b.dims(index, n.shape);
    return b.value(x, x.shape.map((d, i) => (d === 1 ? "0u" : idx[dims[i]])));
  },
  [Primitive.Transpose]: (b, n, index) => {
    if (isVec(index)) return lanes(b, n, index);
    const idx = b.dims(index, n.shape);
    const { perm } = n.params;
    const inIdx = new Array<string>(perm.length);
    perm.forEach((p, i) => (inIdx[p] = idx[i]));
    return b.value(n.inputs[0], inIdx);
  },
  [Primitive.Slice]: (b, n, index) => {
    if (isVec(index)) return lanes(b, n, index);
    const idx = b.dims(index, n.shape);
    const { start, strides } = n.params;
    return b.value(
      n.inputs[0],
      idx.map((e, i) => {
        const scaled = strides[i] === 1 ? e : `${e} * ${strides[i]}u`;
        return b.index(start[i] === 0 ? scaled : `${scaled} + ${start[i]}u`);
      }),
    );
  },
  [Primitive.Pad]: (b, n, index) => {
    if (isVec(index)) return lanes(b, n, index);
    const idx = b.dims(index, n.shape);
    const x = n.inputs[0];
    const { low, value } = n.params;
    const conds: string[] = [];
    const inIdx = idx.map((e, i) => {
      const lo = low[i], d = x.shape[i];
      if (lo === 0 && d === n.shape[i]) return e;
      if (d === 0) {
        conds.push("false");
        return "0u";
      }
      conds.push(lo === 0 ? `${e} < ${d}u` : `${e} >= ${lo}u && ${e} < ${lo + d}u`);
      // Clamped, so the (discarded) inner value never reads out of bounds.
      return b.index(
        lo === 0 ? `min(${e}, ${d - 1}u)` : `min(max(${e}, ${lo}u) - ${lo}u, ${d - 1}u)`,
      );
    });
    const inner = b.value(x, inIdx);
    if (conds.length === 0) return inner;
    return `select(${literal(value, n.dtype)}, ${inner}, ${conds.join(" && ")})`;
  },
  [Primitive.Concatenate]: (b, n, index) => {
    if (isVec(index)) return lanes(b, n, index);
    const idx = b.dims(index, n.shape);
    // Branches, so each element computes only the operand it takes.
    const { axis } = n.params;
    const out = b.fresh("c");
    b.emit(`var ${out}: ${wgslType(n.dtype)};`);
    let offset = 0;
    n.inputs.forEach((x, k) => {
      const last = k === n.inputs.length - 1;
      const end = offset + x.shape[axis];
      const head = k === 0 ? "if" : "} else if";
      b.emit(last ? (k === 0 ? "{" : "} else {") : `${head} (${idx[axis]} < ${end}u) {`);
      const start = offset;
      b.scoped(() => {
        const inIdx = idx.map((
          e,
          i,
        ) => (i === axis && start > 0 ? b.index(`${e} - ${start}u`) : e));
        b.emit(`${out} = ${b.value(x, inIdx)};`);
      });
      offset = end;
    });
    b.emit("}");
    return out;
  },
};

/** The emitter of `n`'s primitive (the table, widened to any primitive at this one place). */
export function emitterOf(n: Tensor): Emitter {
  return EMITTERS[n.prim] as Emitter;
}

/** A literal, splatted to vec4 at a VecIndex. */
function lit(idx: Index, v: number, dtype: DType): string {
  const s = literal(v, dtype);
  return isVec(idx) ? `vec4<${wgslType(dtype)}>(${s})` : s;
}

function splat(dtype: DType, scalar: string): string {
  return `vec4<${wgslType(dtype)}>(${scalar})`;
}

/** Four scalar evaluations assembled into a vec4 (movement ops the vec4 path cannot map). */
function lanes(b: ExprBuilder, n: Tensor, idx: VecIndex): string {
  const vals = [0, 1, 2, 3].map((c) => b.value(n, new FlatIndex(b.index(`4u * ${idx.q} + ${c}u`))));
  return `vec4<${wgslType(n.dtype)}>(${vals.join(", ")})`;
}

/** The index into a reshape's input, matching dims group by group (splits and merges). */
function reshapeIndex(b: ExprBuilder, idx: readonly string[], n: Tensor): string[] {
  const inShape = n.inputs[0].shape, outShape = n.shape;
  const out = inShape.map(() => "0u");
  let i = 0, o = 0;
  while (i < inShape.length || o < outShape.length) {
    // Skip size-1 dims: their index is always 0.
    if (i < inShape.length && inShape[i] === 1) {
      i++;
      continue;
    }
    if (o < outShape.length && outShape[o] === 1) {
      o++;
      continue;
    }
    if (i >= inShape.length || o >= outShape.length) break;
    // Grow a group on both sides until the products match.
    const i0 = i, o0 = o;
    let pi = inShape[i++], po = outShape[o++];
    while (pi !== po) {
      if (pi < po) pi *= inShape[i++];
      else po *= outShape[o++];
    }
    const ins = range(i0, i).filter((k) => inShape[k] !== 1);
    const outs = range(o0, o).filter((k) => outShape[k] !== 1);
    if (ins.length === 1 && outs.length === 1) {
      out[ins[0]] = idx[outs[0]];
      continue;
    }
    const flat = b.linear(outs.map((k) => idx[k]), outs.map((k) => outShape[k]));
    const split = b.unflatten(flat, ins.map((k) => inShape[k]));
    ins.forEach((k, j) => (out[k] = split[j]));
  }
  return out;
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, k) => a + k);
}

function operands(b: ExprBuilder, n: Tensor, idx: Index): [string, string] {
  return [b.value(n.inputs[0], idx), b.value(n.inputs[1], idx)];
}

function float1(fn: string): Emitter {
  return (b, n, idx) => {
    checkFloat(n);
    let name = fn;
    if (fn.startsWith("f32_")) {
      name = isVec(idx) ? `${fn}4` : fn;
      b.helpers.add(name);
    }
    return `${name}(${b.value(n.inputs[0], idx)})`;
  };
}

function arith(op: string): Emitter {
  return (b, n, idx) => {
    checkNotBf16(n);
    const [x, y] = operands(b, n, idx);
    return narrow(idx, n.dtype, `${x} ${op} ${y}`);
  };
}

function bitwise(op: string): Emitter {
  return (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    return `${x} ${op} ${y}`;
  };
}

function minMax(fn: "max" | "min"): Emitter {
  return (b, n, idx) => {
    checkNotBf16(n);
    const [x, y] = operands(b, n, idx);
    if (n.dtype !== "f32") return `${fn}(${x}, ${y})`;
    const name = isVec(idx) ? `f32_${fn}4` : `f32_${fn}`;
    b.helpers.add(name);
    return `${name}(${x}, ${y})`;
  };
}

function shiftAmount(idx: Index, dtype: DType, y: string): string {
  return dtype === "i32" ? `bitcast<${isVec(idx) ? "vec4<u32>" : "u32"}>(${y})` : y;
}

/** u8 and bool results wrap at 8 bits, as the CPU backend's Uint8Array stores do. */
function narrow(idx: Index, dtype: DType, expr: string): string {
  return dtype === "u8" || dtype === "bool" ? `(${expr}) & ${lit(idx, 255, "u32")}` : expr;
}

function checkFloat(n: Tensor): void {
  if (n.dtype !== "f32") {
    throw new Error(`webgpu: ${n.prim} needs f32 (convert ${n.dtype} first)`);
  }
}

function checkNotBf16(n: Tensor): void {
  if (n.dtype === "bf16") {
    throw new Error(`webgpu: bf16 arithmetic is not supported (convert to f32 first): ${n}`);
  }
}

/** The vec4 conversions that need no per-lane helper; undefined for the others. */
function vecConvert(
  idx: Index,
  from: DType,
  to: DType,
  x: () => string,
): string | undefined {
  if (from === "bf16" || to === "bf16") return undefined;
  if (to === "f32") return from === "f32" ? x() : `vec4<f32>(${x()})`;
  if (to === "bool") {
    return `select(${lit(idx, 0, "u32")}, ${lit(idx, 1, "u32")}, !(${x()} == ${
      lit(idx, 0, from)
    }))`;
  }
  if (from === "f32") return undefined;
  if (to === "i32") {
    return from === "u32"
      ? `vec4<i32>(min(${x()}, ${lit(idx, 2147483647, "u32")}))`
      : `vec4<i32>(${x()})`;
  }
  if (to === "u32") return from === "i32" ? `vec4<u32>(max(${x()}, ${lit(idx, 0, "i32")}))` : x();
  if (from === "i32") {
    return `vec4<u32>(clamp(${x()}, ${lit(idx, 0, "i32")}, ${lit(idx, 255, "i32")}))`;
  }
  return from === "u32" ? `min(${x()}, ${lit(idx, 255, "u32")})` : x();
}

/** Convert with the CPU backend's rules: truncate toward zero, saturate, NaN -> 0. */
function convert(b: ExprBuilder, x: string, from: DType, to: DType): string {
  if (from === to) return x;
  if (from === "bf16") return convert(b, `bitcast<f32>(${x} << 16u)`, "f32", to);
  if (to === "bf16") {
    b.helpers.add("cvt_f32_bf16");
    return `cvt_f32_bf16(${from === "f32" ? x : `f32(${x})`})`;
  }
  if (to === "f32") return `f32(${x})`;
  // NaN is true, as on the CPU backend (`!=` is ordered, so false for NaN, on Vulkan).
  if (to === "bool") return `select(0u, 1u, !(${x} == ${literal(0, from)}))`;
  if (from === "f32") {
    const fn = to === "i32" ? "cvt_f32_i32" : to === "u32" ? "cvt_f32_u32" : "cvt_f32_u8";
    b.helpers.add(fn);
    return `${fn}(${x})`;
  }
  // Integer to integer: saturate into the target range.
  if (to === "i32") return from === "u32" ? `i32(min(${x}, 2147483647u))` : `i32(${x})`;
  if (to === "u32") return from === "i32" ? `u32(max(${x}, 0i))` : x;
  // to u8
  if (from === "i32") return `u32(clamp(${x}, 0i, 255i))`;
  return from === "u32" ? `min(${x}, 255u)` : x;
}
