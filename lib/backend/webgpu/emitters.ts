/**
 * The WGSL rule table: for each primitive, the expression computing one element at a
 * multi-dim index, in terms of its inputs' values (through `ExprBuilder.value`). This table is
 * the WebGPU twin of lib/backend/cpu/kernels.ts and follows its semantics: integer ops wrap,
 * u8/bool arithmetic wraps at 8 bits, shifts >= 32 give 0, integer division by zero gives -1,
 * max/min propagate NaN, convert truncates and saturates.
 */
import type { DType } from "../../ir/dtype.ts";
import { Primitive, type PrimitiveParams } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";
import { type ExprBuilder, type Index, isFlat } from "./expr.ts";
import { literal, wgslType } from "./storage.ts";

export type Emitter = (b: ExprBuilder, n: Tensor, idx: Index) => string;

type P<K extends Primitive> = PrimitiveParams[K];

export const EMITTERS: { [K in Primitive]: Emitter } = {
  [Primitive.Input]: (_b, n) => {
    throw new Error(`webgpu: input ${n} has no storage binding in this kernel`);
  },
  [Primitive.Constant]: (_b, n) => {
    const v = (n.params as P<Primitive.Constant>).value;
    if (v.data.length !== 1) throw new Error(`webgpu: constant ${n} has no storage binding`);
    return literal(v.data[0], n.dtype);
  },
  [Primitive.Iota]: (b, n, idx) => {
    const i = b.dims(idx, n.shape)[(n.params as P<Primitive.Iota>).axis];
    return wgslType(n.dtype) === "u32" ? i : `${wgslType(n.dtype)}(${i})`;
  },
  [Primitive.Neg]: (b, n, idx) => {
    const x = b.value(n.inputs[0], idx);
    return wgslType(n.dtype) === "u32" ? narrow(n.dtype, `0u - ${x}`) : `-${x}`;
  },
  [Primitive.Exp]: float1("exp"),
  [Primitive.Log]: float1("log"),
  [Primitive.Sqrt]: float1("sqrt"),
  [Primitive.Rsqrt]: float1("inverseSqrt"),
  [Primitive.Tanh]: float1("f32_tanh"),
  [Primitive.Erf]: float1("f32_erf"),
  [Primitive.Not]: (b, n, idx) => {
    const x = b.value(n.inputs[0], idx);
    if (n.dtype === "bool") return `select(0u, 1u, ${x} == 0u)`;
    return narrow(n.dtype, `~${x}`);
  },
  [Primitive.StopGradient]: (b, n, idx) => b.value(n.inputs[0], idx),
  [Primitive.AllReduceSum]: (b, n, idx) => b.value(n.inputs[0], idx), // one replica
  [Primitive.Convert]: (b, n, idx) =>
    convert(b, b.value(n.inputs[0], idx), n.inputs[0].dtype, n.dtype),
  [Primitive.Add]: arith("+"),
  [Primitive.Sub]: arith("-"),
  [Primitive.Mul]: arith("*"),
  [Primitive.Div]: (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    switch (n.dtype) {
      case "f32":
        return `${x} / ${y}`;
      case "i32":
        return `select(-1i, ${x} / ${y}, ${y} != 0i)`;
      case "u32":
        return `select(4294967295u, ${x} / ${y}, ${y} != 0u)`;
      default:
        return `select(255u, ${x} / ${y}, ${y} != 0u)`;
    }
  },
  [Primitive.Max]: minMax("max"),
  [Primitive.Min]: minMax("min"),
  [Primitive.Compare]: (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    const op = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" }[
      (n.params as P<Primitive.Compare>).direction
    ];
    return `select(0u, 1u, ${x} ${op} ${y})`;
  },
  [Primitive.And]: bitwise("&"),
  [Primitive.Or]: bitwise("|"),
  [Primitive.Xor]: bitwise("^"),
  [Primitive.ShiftLeft]: (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    const s = shiftAmount(n.dtype, y);
    const zero = literal(0, n.dtype);
    return `select(${zero}, ${narrow(n.dtype, `${x} << ${s}`)}, ${s} < 32u)`;
  },
  [Primitive.ShiftRightLogical]: (b, n, idx) => {
    const [x, y] = operands(b, n, idx);
    const s = shiftAmount(n.dtype, y);
    const zero = literal(0, n.dtype);
    const shifted = n.dtype === "i32" ? `bitcast<i32>(bitcast<u32>(${x}) >> ${s})` : `${x} >> ${s}`;
    return `select(${zero}, ${shifted}, ${s} < 32u)`;
  },
  [Primitive.Select]: (b, n, idx) => {
    const p = b.value(n.inputs[0], idx);
    const x = b.value(n.inputs[1], idx);
    const y = b.value(n.inputs[2], idx);
    return `select(${y}, ${x}, ${p} != 0u)`;
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
  // A reshape keeps the flat (row-major) order, so a flat index passes through unchanged.
  [Primitive.Reshape]: (b, n, idx) =>
    b.value(n.inputs[0], isFlat(idx) ? idx : reshapeIndex(b, idx, n)),
  [Primitive.BroadcastInDim]: (b, n, index) => {
    const idx = b.dims(index, n.shape);
    const x = n.inputs[0];
    const { dims } = n.params as P<Primitive.BroadcastInDim>;
    return b.value(x, x.shape.map((d, i) => (d === 1 ? "0u" : idx[dims[i]])));
  },
  [Primitive.Transpose]: (b, n, index) => {
    const idx = b.dims(index, n.shape);
    const { perm } = n.params as P<Primitive.Transpose>;
    const inIdx = new Array<string>(perm.length);
    perm.forEach((p, i) => (inIdx[p] = idx[i]));
    return b.value(n.inputs[0], inIdx);
  },
  [Primitive.Slice]: (b, n, index) => {
    const idx = b.dims(index, n.shape);
    const { start, strides } = n.params as P<Primitive.Slice>;
    return b.value(
      n.inputs[0],
      idx.map((e, i) => {
        const scaled = strides[i] === 1 ? e : `${e} * ${strides[i]}u`;
        return b.index(start[i] === 0 ? scaled : `${scaled} + ${start[i]}u`);
      }),
    );
  },
  [Primitive.Pad]: (b, n, index) => {
    const idx = b.dims(index, n.shape);
    const x = n.inputs[0];
    const { low, value } = n.params as P<Primitive.Pad>;
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
    const idx = b.dims(index, n.shape);
    // Branches, so each element computes only the operand it takes.
    const { axis } = n.params as P<Primitive.Concatenate>;
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
    if (fn.startsWith("f32_")) b.helpers.add(fn);
    return `${fn}(${b.value(n.inputs[0], idx)})`;
  };
}

function arith(op: string): Emitter {
  return (b, n, idx) => {
    checkNotBf16(n);
    const [x, y] = operands(b, n, idx);
    return narrow(n.dtype, `${x} ${op} ${y}`);
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
    b.helpers.add(`f32_${fn}`);
    return `f32_${fn}(${x}, ${y})`;
  };
}

function shiftAmount(dtype: DType, y: string): string {
  return dtype === "i32" ? `bitcast<u32>(${y})` : y;
}

/** u8 and bool results wrap at 8 bits, as the CPU backend's Uint8Array stores do. */
function narrow(dtype: DType, expr: string): string {
  return dtype === "u8" || dtype === "bool" ? `(${expr}) & 0xffu` : expr;
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

/** Convert with the CPU backend's rules: truncate toward zero, saturate, NaN -> 0. */
function convert(b: ExprBuilder, x: string, from: DType, to: DType): string {
  if (from === to) return x;
  if (from === "bf16") return convert(b, `bitcast<f32>(${x} << 16u)`, "f32", to);
  if (to === "bf16") {
    b.helpers.add("cvt_f32_bf16");
    return `cvt_f32_bf16(${from === "f32" ? x : `f32(${x})`})`;
  }
  if (to === "f32") return `f32(${x})`;
  if (to === "bool") return `select(0u, 1u, ${x} != ${literal(0, from)})`;
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
