/**
 * The op test table, shared by every backend: each case builds a small graph from primitives
 * and states the expected values, computed independently (by hand or with plain JS loops).
 * `atol` is the tolerance on the CPU backend; other backends scale it (see their tests).
 */
import type { DType } from "../../lib/ir/dtype.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import * as ops from "../../lib/ir/ops.ts";
import { gelu } from "../../lib/ir/nn.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { randomBits, uniform } from "../../lib/ir/random.ts";
import { threefry2x32 } from "../../lib/ir/threefry.ts";
import { erf as erfRef } from "../../lib/backend/cpu/math.ts";
import { attentionGrad, attentionPacked } from "../../lib/ir/attention.ts";

export interface OpCase {
  name: string;
  inputs: HostTensor[];
  fn: (...xs: Tensor[]) => Tensor;
  expected: ArrayLike<number>;
  expectedShape: number[];
  expectedDtype?: DType;
  atol?: number;
}

const f = (shape: number[], data: number[]) => hostTensor(shape, "f32", data);
const u = (shape: number[], data: number[]) => hostTensor(shape, "u32", data);
const X = [-2, -0.5, 0, 0.25, 1, 3];
const Y = [1.5, -0.25, 2, -4, 0.5, 3];
const xs = f([2, 3], X), ys = f([2, 3], Y);
const pos = f([4], [0.1, 1, 2.5, 9]);
const m1 = Array.from({ length: 12 }, (_, i) => (i * 7) % 5 - 2); // [2,3,2]
const m2 = Array.from({ length: 12 }, (_, i) => (i * 3) % 7 - 3); // [2,2,3]

function mapRef(a: number[], fn: (v: number) => number): number[] {
  return a.map((v) => Math.fround(fn(v)));
}

/** Naive batched matmul reference: [b,m,k] x [b,k,n]. */
function bmm(a: number[], b: number[], B: number, M: number, K: number, N: number): number[] {
  const out: number[] = [];
  for (let q = 0; q < B; q++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[q * M * K + i * K + k] * b[q * K * N + k * N + j];
        out.push(s);
      }
    }
  }
  return out;
}

const ATT_Q = Array.from({ length: 12 }, (_, i) => ((i * 5) % 7) / 3 - 1);
const ATT_K = Array.from({ length: 16 }, (_, i) => ((i * 3) % 11) / 4 - 1.2);
const ATT_V = Array.from({ length: 16 }, (_, i) => ((i * 7) % 9) / 5 - 0.8);
const ATT_G = Array.from({ length: 18 }, (_, i) => ((i * 4) % 13) / 6 - 1);

/**
 * Attention of [2 heads, 3 queries, 4 keys, dim 2] by the textbook formulas: p = softmax(s),
 * and the gradient through the softmax Jacobian (ds_j = p_j (dp_j - sum_k p_k dp_k) plus the
 * lse cotangent times p_j), not the recomputation the kernels use.
 */
function attentionRef(scale: number): { forward: number[]; grads: number[] } {
  const forward: number[] = [], grads: number[] = [];
  for (let h = 0; h < 2; h++) {
    const q = (i: number, d: number) => ATT_Q[(h * 3 + i) * 2 + d];
    const k = (j: number, d: number) => ATT_K[(h * 4 + j) * 2 + d];
    const v = (j: number, d: number) => ATT_V[(h * 4 + j) * 2 + d];
    const g = (i: number, d: number) => ATT_G[(h * 3 + i) * 3 + d];
    const dq = [0, 1, 2].map(() => [0, 0]), dk = [0, 1, 2, 3].map(() => [0, 0]);
    const dv = [0, 1, 2, 3].map(() => [0, 0]);
    for (let i = 0; i < 3; i++) {
      const s = [0, 1, 2, 3].map((j) => scale * (q(i, 0) * k(j, 0) + q(i, 1) * k(j, 1)));
      const z = s.reduce((a, x) => a + Math.exp(x), 0);
      const p = s.map((x) => Math.exp(x) / z);
      for (let d = 0; d < 2; d++) forward.push(p.reduce((a, pj, j) => a + pj * v(j, d), 0));
      forward.push(Math.log(z));
      const dp = [0, 1, 2, 3].map((j) => g(i, 0) * v(j, 0) + g(i, 1) * v(j, 1));
      const mean = p.reduce((a, pj, j) => a + pj * dp[j], 0);
      for (let j = 0; j < 4; j++) {
        const ds = scale * (p[j] * (dp[j] - mean) + p[j] * g(i, 2));
        for (let d = 0; d < 2; d++) {
          dq[i][d] += ds * k(j, d);
          dk[j][d] += ds * q(i, d);
          dv[j][d] += p[j] * g(i, d);
        }
      }
    }
    grads.push(...dq.flat(), ...dk.flat(), ...dv.flat());
  }
  return { forward, grads };
}

export const OP_CASES: OpCase[] = [
  {
    name: "neg",
    inputs: [xs],
    fn: (x) => ops.neg(x),
    expected: mapRef(X, (v) => -v),
    expectedShape: [2, 3],
  },
  {
    name: "exp",
    inputs: [xs],
    fn: (x) => ops.exp(x),
    expected: mapRef(X, Math.exp),
    expectedShape: [2, 3],
    atol: 1e-6,
  },
  {
    name: "log",
    inputs: [pos],
    fn: (x) => ops.log(x),
    expected: mapRef([0.1, 1, 2.5, 9], Math.log),
    expectedShape: [4],
    atol: 1e-6,
  },
  {
    name: "sqrt",
    inputs: [pos],
    fn: (x) => ops.sqrt(x),
    expected: mapRef([0.1, 1, 2.5, 9], Math.sqrt),
    expectedShape: [4],
    atol: 1e-6,
  },
  {
    name: "rsqrt",
    inputs: [pos],
    fn: (x) => ops.rsqrt(x),
    expected: mapRef([0.1, 1, 2.5, 9], (v) => 1 / Math.sqrt(v)),
    expectedShape: [4],
    atol: 1e-6,
  },
  {
    name: "tanh",
    inputs: [xs],
    fn: (x) => ops.tanh(x),
    expected: mapRef(X, Math.tanh),
    expectedShape: [2, 3],
    atol: 1e-6,
  },
  {
    name: "erf",
    inputs: [f([7], [-3, -1.2, -0.3, 0, 0.05, 0.9, 2.2])],
    fn: (x) => ops.erf(x),
    // erf(0.9) = 0.7969082124, erf(2.2) = 0.9981371537, erf(0.05) = 0.0563719777
    expected: [
      -0.9999779095,
      -0.9103139782,
      -0.3286267595,
      0,
      0.0563719777,
      0.7969082124,
      0.9981371537,
    ],
    expectedShape: [7],
    atol: 2e-7,
  },
  // The model's two activations (composites over tanh / erf): torch.nn.functional.gelu in float64
  // with approximate="none" (timm's nn.GELU, `--gelu exact`) and "tanh" (flax's default).
  {
    name: "gelu exact (erf)",
    inputs: [f([7], [-3, -1.2, -0.3, 0, 0.05, 0.9, 2.2])],
    fn: (x) => gelu(x, false),
    expected: [
      -0.0040496941,
      -0.1380836043,
      -0.1146265733,
      0,
      0.0259969403,
      0.7343458872,
      2.1694124155,
    ],
    expectedShape: [7],
    atol: 4e-7,
  },
  {
    name: "gelu tanh",
    inputs: [f([7], [-3, -1.2, -0.3, 0, 0.05, 0.9, 2.2])],
    fn: (x) => gelu(x, true),
    expected: [
      -0.0036373921,
      -0.1382972309,
      -0.1146290765,
      0,
      0.0259969382,
      0.7342284887,
      2.169678527,
    ],
    expectedShape: [7],
    atol: 4e-7,
  },
  {
    name: "add",
    inputs: [xs, ys],
    fn: (a, b) => ops.add(a, b),
    expected: X.map((v, i) => v + Y[i]),
    expectedShape: [2, 3],
  },
  {
    name: "sub",
    inputs: [xs, ys],
    fn: (a, b) => ops.sub(a, b),
    expected: X.map((v, i) => v - Y[i]),
    expectedShape: [2, 3],
  },
  {
    name: "mul",
    inputs: [xs, ys],
    fn: (a, b) => ops.mul(a, b),
    expected: X.map((v, i) => v * Y[i]),
    expectedShape: [2, 3],
  },
  {
    name: "div",
    inputs: [xs, ys],
    fn: (a, b) => ops.div(a, b),
    expected: mapRef(X, (v) => v).map((v, i) => Math.fround(v / Y[i])),
    expectedShape: [2, 3],
    atol: 1e-7,
  },
  {
    name: "max",
    inputs: [xs, ys],
    fn: (a, b) => ops.maximum(a, b),
    expected: X.map((v, i) => Math.max(v, Y[i])),
    expectedShape: [2, 3],
  },
  {
    name: "min",
    inputs: [xs, ys],
    fn: (a, b) => ops.minimum(a, b),
    expected: X.map((v, i) => Math.min(v, Y[i])),
    expectedShape: [2, 3],
  },
  {
    name: "compare+select",
    inputs: [xs, ys],
    fn: (a, b) => ops.where(ops.lt(a, b), a, b),
    expected: X.map((v, i) => (v < Y[i] ? v : Y[i])),
    expectedShape: [2, 3],
  },
  {
    name: "compare eq -> bool",
    inputs: [f([4], [1, 2, 3, 4]), f([4], [1, 0, 3, 5])],
    fn: (a, b) => ops.eq(a, b),
    expected: [1, 0, 1, 0],
    expectedShape: [4],
    expectedDtype: "bool",
  },
  {
    name: "convert f32->i32 truncates",
    inputs: [f([4], [-1.7, -0.2, 0.9, 2.5])],
    fn: (a) => ops.convert(a, "i32"),
    expected: [-1, 0, 0, 2],
    expectedShape: [4],
    expectedDtype: "i32",
  },
  {
    name: "u32 xor/and/or/shifts",
    inputs: [u([3], [0xdeadbeef, 0x80000001, 7]), u([3], [0x0f0f0f0f, 3, 31])],
    fn: (a, b) => ops.xor(ops.or(ops.and(a, b), ops.shiftLeft(a, 1)), ops.shiftRightLogical(a, 4)),
    expected: [0xdeadbeef, 0x80000001, 7].map((a, i) => {
      const b = [0x0f0f0f0f, 3, 31][i];
      return ((((a & b) | (a << 1)) ^ (a >>> 4)) >>> 0);
    }),
    expectedShape: [3],
    expectedDtype: "u32",
  },
  {
    name: "u32 add wraps",
    inputs: [u([2], [0xffffffff, 5]), u([2], [2, 7])],
    fn: (a, b) => ops.add(a, b),
    expected: [1, 12],
    expectedShape: [2],
    expectedDtype: "u32",
  },
  {
    name: "reduce_sum all",
    inputs: [xs],
    fn: (x) => ops.sum(x),
    expected: [X.reduce((a, b) => a + b)],
    expectedShape: [],
  },
  {
    name: "reduce_sum axis 0",
    inputs: [xs],
    fn: (x) => ops.sum(x, 0),
    expected: [X[0] + X[3], X[1] + X[4], X[2] + X[5]],
    expectedShape: [3],
  },
  {
    name: "reduce_max axis 1 of [2,3,2]",
    inputs: [f([2, 3, 2], m1)],
    fn: (x) => ops.max(x, 1),
    expected: [0, 1].flatMap((a) =>
      [0, 1].map((c) => Math.max(...[0, 1, 2].map((b) => m1[a * 6 + b * 2 + c])))
    ),
    expectedShape: [2, 2],
  },
  {
    name: "reshape",
    inputs: [xs],
    fn: (x) => ops.reshape(x, [3, 2]),
    expected: X,
    expectedShape: [3, 2],
  },
  {
    name: "broadcast_in_dim",
    inputs: [f([3], [1, 2, 3])],
    fn: (x) => ops.broadcastInDim(x, [2, 3], [1]),
    expected: [1, 2, 3, 1, 2, 3],
    expectedShape: [2, 3],
  },
  {
    name: "broadcast_in_dim size-1 dim",
    inputs: [f([2, 1], [5, 6])],
    fn: (x) => ops.broadcastInDim(x, [2, 3], [0, 1]),
    expected: [5, 5, 5, 6, 6, 6],
    expectedShape: [2, 3],
  },
  {
    name: "transpose",
    inputs: [f([2, 3, 2], m1)],
    fn: (x) => ops.transpose(x, [2, 0, 1]),
    expected: [0, 1].flatMap((c) =>
      [0, 1].flatMap((a) => [0, 1, 2].map((b) => m1[a * 6 + b * 2 + c]))
    ),
    expectedShape: [2, 2, 3],
  },
  {
    name: "slice strided",
    inputs: [f([2, 3, 2], m1)],
    fn: (x) => ops.slice(x, [0, 0, 1], [2, 3, 2], [1, 2, 1]),
    expected: [0, 1].flatMap((a) => [0, 2].map((b) => m1[a * 6 + b * 2 + 1])),
    expectedShape: [2, 2, 1],
  },
  {
    name: "pad",
    inputs: [f([2, 2], [1, 2, 3, 4])],
    fn: (x) => ops.pad(x, [1, 0], [0, 2], -1),
    expected: [-1, -1, -1, -1, 1, 2, -1, -1, 3, 4, -1, -1],
    expectedShape: [3, 4],
  },
  {
    name: "concatenate axis 1",
    inputs: [f([2, 1], [1, 2]), f([2, 2], [3, 4, 5, 6])],
    fn: (a, b) => ops.concatenate([a, b], 1),
    expected: [1, 3, 4, 2, 5, 6],
    expectedShape: [2, 3],
  },
  {
    name: "iota axis 1",
    inputs: [],
    fn: () => ops.convert(ops.iota([2, 3], 1), "f32"),
    expected: [0, 1, 2, 0, 1, 2],
    expectedShape: [2, 3],
  },
  {
    name: "dot_general batched [2,3,2]x[2,2,3]",
    inputs: [f([2, 3, 2], m1), f([2, 2, 3], m2)],
    fn: (a, b) =>
      ops.dotGeneral(a, b, { lhsBatch: [0], rhsBatch: [0], lhsContract: [2], rhsContract: [1] }),
    expected: bmm(m1, m2, 2, 3, 2, 3),
    expectedShape: [2, 3, 3],
  },
  {
    name: "dot_general contracting non-last dims",
    // lhs [k=2, m=3] (contract dim 0), rhs [n=2, k=2] (contract dim 1) -> [m, n]
    inputs: [f([2, 3], X), f([2, 2], [1, 2, 3, 4])],
    fn: (a, b) =>
      ops.dotGeneral(a, b, { lhsBatch: [], rhsBatch: [], lhsContract: [0], rhsContract: [1] }),
    expected: [0, 1, 2].flatMap((m) =>
      [0, 1].map((n) => X[m] * [1, 2, 3, 4][n * 2] + X[3 + m] * [1, 2, 3, 4][n * 2 + 1])
    ),
    expectedShape: [3, 2],
  },
  {
    name: "threefry random bits",
    inputs: [u([2], [0x13198a2e, 0x03707344])],
    fn: (k) => randomBits(k, [2]),
    // counts (0, 1) split into halves x0 = [0], x1 = [1]
    expected: threefry2x32(0x13198a2e, 0x03707344, 0, 1),
    expectedShape: [2],
    expectedDtype: "u32",
  },
  {
    name: "uniform in [0,1)",
    inputs: [u([2], [0, 42])],
    fn: (k) => uniform(k, [3]),
    expected: (() => {
      const [a0, b0] = threefry2x32(0, 42, 0, 2);
      const [a1] = threefry2x32(0, 42, 1, 0);
      // counts [0,1,2] padded with a zero (as JAX) -> x0 = [0,1], x1 = [2,0]
      return [a0, a1, b0].map((b) => (b >>> 9) * 2 ** -23);
    })(),
    expectedShape: [3],
  },
  {
    name: "attention [1,2,3,2] x [1,2,4,2]: output and lse per row",
    inputs: [f([1, 2, 3, 2], ATT_Q), f([1, 2, 4, 2], ATT_K), f([1, 2, 4, 2], ATT_V)],
    fn: (q, k, v) => attentionPacked(q, k, v, 0.7),
    expected: attentionRef(0.7).forward,
    expectedShape: [1, 2, 3, 3],
    atol: 2e-6,
  },
  {
    name: "attention_grad: dq, dk, dv through the softmax Jacobian",
    inputs: [
      f([1, 2, 3, 2], ATT_Q),
      f([1, 2, 4, 2], ATT_K),
      f([1, 2, 4, 2], ATT_V),
      f([1, 2, 3, 3], ATT_G),
    ],
    fn: (q, k, v, g) => attentionGrad(q, k, v, attentionPacked(q, k, v, 0.7), g, 0.7),
    expected: attentionRef(0.7).grads,
    expectedShape: [1, 2, 11, 2],
    atol: 1e-5,
  },
];

export { erfRef };
