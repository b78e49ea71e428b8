/**
 * The elementwise ops of the wasm fused loops, one rule per elementwise primitive (null: the
 * group stays in JS). A rule is written once for both widths: `Lanes` emits its instructions
 * either on scalars (the tail loop and loop-invariant values: one f32, masks as 0/1 i32) or on
 * f32x4 vectors (masks as all-ones lanes).
 *
 * Only plain f32 arithmetic is exact here: IEEE f32 results of add, sub, mul, div, sqrt, neg,
 * max, min, compare and select equal the reference's f64 result rounded to f32 (f64 has more
 * than 2 * 24 + 2 bits, so double rounding is innocuous); rsqrt is computed in f64 and rounded
 * once, as the reference does. exp and tanh are `transcendental`: a few f64 ulps (wasm_math.ts).
 */
import type { CompareDirection, ElementwisePrimitive } from "../../ir/primitive.ts";
import { Primitive } from "../../ir/primitive.ts";
import { hasKind, type Tensor } from "../../ir/tensor.ts";
import type { Ref } from "./fused_ir.ts";
import { type FuncBuilder, type Local, OP, SIMD } from "./wasm_emit.ts";
import { emitExp, emitTanh } from "./wasm_math.ts";

/** One instruction in its scalar form (an `OP`) and its f32x4 form (a `SIMD` opcode). */
export interface LaneOp {
  scalar: number;
  vector: number;
}

/** Emits an op's instructions at one width. */
export interface Lanes {
  readonly f: FuncBuilder;
  /** Pushes an operand. */
  ref(r: Ref): void;
  /** Applies one instruction to the values on the stack. */
  op(op: LaneOp): void;
  /**
   * Widens the f32 value(s) on the stack to f64x2 (lanes 0,1 then 2,3 for vectors), stores each
   * pair in `x`, runs `body` (which leaves an f64x2 on the stack) and rounds back to f32 once.
   */
  viaF64(body: (x: Local) => void): void;
  /** exp or tanh (wasm_math.ts) of the f64x2 in `x`, left on the stack. */
  math(fn: typeof emitExp, x: Local): void;
}

/** The dtypes an op is fused for (f32 values, bool masks). */
export type Signature =
  /** f32 operands, f32 result */
  | "f32"
  /** f32 operands, a mask */
  | "compare"
  /** a mask, a mask */
  | "not"
  /** (mask, f32, f32) -> f32 */
  | "select";

export interface WasmOp<P extends ElementwisePrimitive> {
  sig: Signature;
  /** Accurate to a few f64 ulps, not bit-identical: fused only with `fastMath`. */
  transcendental?: boolean;
  /** Pushes the op's value for operands `args` of node `t`. */
  emit(l: Lanes, args: readonly Ref[], t: Tensor<P>): void;
}

export const LANE = {
  add: { scalar: OP.f32Add, vector: SIMD.f32x4Add },
  sub: { scalar: OP.f32Sub, vector: SIMD.f32x4Sub },
  mul: { scalar: OP.f32Mul, vector: SIMD.f32x4Mul },
  div: { scalar: OP.f32Div, vector: SIMD.f32x4Div },
  neg: { scalar: OP.f32Neg, vector: SIMD.f32x4Neg },
  sqrt: { scalar: OP.f32Sqrt, vector: SIMD.f32x4Sqrt },
  or: { scalar: OP.i32Or, vector: SIMD.v128Or },
  not: { scalar: OP.i32Eqz, vector: SIMD.v128Not },
  /** (a, b, mask) -> mask ? a : b */
  select: { scalar: OP.select, vector: SIMD.v128Bitselect },
} satisfies Record<string, LaneOp>;

export const COMPARE: Record<CompareDirection, LaneOp> = {
  eq: { scalar: OP.f32Eq, vector: SIMD.f32x4Eq },
  ne: { scalar: OP.f32Ne, vector: SIMD.f32x4Ne },
  lt: { scalar: OP.f32Lt, vector: SIMD.f32x4Lt },
  gt: { scalar: OP.f32Gt, vector: SIMD.f32x4Gt },
  le: { scalar: OP.f32Le, vector: SIMD.f32x4Le },
  ge: { scalar: OP.f32Ge, vector: SIMD.f32x4Ge },
};

export const WASM_OPS: { [P in ElementwisePrimitive]: WasmOp<P> | null } = {
  [Primitive.Neg]: unary(LANE.neg),
  [Primitive.Exp]: transcendental(emitExp),
  [Primitive.Log]: null,
  [Primitive.Sqrt]: unary(LANE.sqrt),
  [Primitive.Rsqrt]: {
    sig: "f32",
    // 1 / sqrt in f64, rounded once to f32: as the reference
    emit: (l, [a]) => {
      l.ref(a);
      l.viaF64((x) => {
        l.f.f64(1).simd(SIMD.f64x2Splat).get(x).simd(SIMD.f64x2Sqrt).simd(SIMD.f64x2Div);
      });
    },
  },
  [Primitive.Tanh]: transcendental(emitTanh),
  [Primitive.Erf]: null,
  [Primitive.Not]: {
    sig: "not",
    emit: (l, [a]) => {
      l.ref(a);
      l.op(LANE.not);
    },
  },
  [Primitive.Add]: binary(LANE.add),
  [Primitive.Sub]: binary(LANE.sub),
  [Primitive.Mul]: binary(LANE.mul),
  [Primitive.Div]: binary(LANE.div),
  [Primitive.Max]: minMax(COMPARE.gt),
  [Primitive.Min]: minMax(COMPARE.lt),
  [Primitive.Compare]: {
    sig: "compare",
    emit: (l, [a, b], t) => {
      l.ref(a);
      l.ref(b);
      l.op(COMPARE[t.params.direction]);
    },
  },
  [Primitive.And]: null,
  [Primitive.Or]: null,
  [Primitive.Xor]: null,
  [Primitive.ShiftLeft]: null,
  [Primitive.ShiftRightLogical]: null,
  [Primitive.Select]: {
    sig: "select",
    emit: (l, [p, x, y]) => {
      l.ref(x);
      l.ref(y);
      l.ref(p);
      l.op(LANE.select);
    },
  },
  [Primitive.Convert]: null,
  // an alias of its operand in the CPU plan: never an op of a loop
  [Primitive.StopGradient]: null,
};

/** The wasm rule of an elementwise node, or null when it is not fused in wasm. */
export function wasmOp(t: Tensor): WasmOp<ElementwisePrimitive> | null {
  if (!hasKind(t, "elementwise")) return null;
  return WASM_OPS[t.prim] as WasmOp<ElementwisePrimitive> | null;
}

function unary(op: LaneOp): WasmOp<ElementwisePrimitive> {
  return {
    sig: "f32",
    emit: (l, [a]) => {
      l.ref(a);
      l.op(op);
    },
  };
}

function binary(op: LaneOp): WasmOp<ElementwisePrimitive> {
  return {
    sig: "f32",
    emit: (l, [a, b]) => {
      l.ref(a);
      l.ref(b);
      l.op(op);
    },
  };
}

/** The reference's max / min: isNaN(a) || a > b (a < b for min) ? a : b. */
function minMax(cmp: LaneOp): WasmOp<ElementwisePrimitive> {
  return {
    sig: "f32",
    emit: (l, [a, b]) => {
      l.ref(a);
      l.ref(b);
      l.ref(a);
      l.ref(a);
      l.op(COMPARE.ne);
      l.ref(a);
      l.ref(b);
      l.op(cmp);
      l.op(LANE.or);
      l.op(LANE.select);
    },
  };
}

function transcendental(fn: typeof emitExp): WasmOp<ElementwisePrimitive> {
  return {
    sig: "f32",
    transcendental: true,
    emit: (l, [a]) => {
      l.ref(a);
      l.viaF64((x) => l.math(fn, x));
    },
  };
}
