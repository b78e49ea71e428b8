/**
 * Finite-difference gradient checks, one case per differentiable primitive, shared by every
 * backend. Each case maps inputs to a scalar `sum(op(...) * w)` with fixed weights, so every
 * output element's cotangent differs.
 */
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import * as ops from "../../lib/ir/ops.ts";
import { gelu } from "../../lib/ir/nn.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import type { Backend } from "../../lib/backend/backend.ts";
import { Compiled } from "../../lib/backend/jit.ts";
import { valueAndGrad } from "../../lib/autodiff/grad.ts";
import { checkpoint } from "../../lib/autodiff/checkpoint.ts";
import { attentionPacked } from "../../lib/ir/attention.ts";

export interface GradCase {
  name: string;
  inputs: HostTensor[];
  fn: (...xs: Tensor[]) => Tensor;
}

const f = (shape: number[], data: number[]) => hostTensor(shape, "f32", data);
const A = f([2, 3], [-1.2, 0.4, 0.9, 1.7, -0.3, 0.6]);
const B = f([2, 3], [0.5, -0.8, 1.1, 0.7, 1.3, -0.6]);
const P = f([2, 3], [0.3, 1.4, 2.2, 0.8, 1.9, 0.5]);

/** sum(t * w) for fixed, distinct weights. */
function weighted(t: Tensor): Tensor {
  const w = ops.constant(
    hostTensor(
      t.shape as number[],
      "f32",
      Array.from({ length: t.size }, (_, i) => 0.5 + 0.25 * i),
    ),
  );
  return ops.sum(ops.mul(t, w));
}

export const GRAD_CASES: GradCase[] = [
  { name: "neg", inputs: [A], fn: (x) => weighted(ops.neg(x)) },
  { name: "exp", inputs: [A], fn: (x) => weighted(ops.exp(x)) },
  { name: "log", inputs: [P], fn: (x) => weighted(ops.log(x)) },
  { name: "sqrt", inputs: [P], fn: (x) => weighted(ops.sqrt(x)) },
  { name: "rsqrt", inputs: [P], fn: (x) => weighted(ops.rsqrt(x)) },
  { name: "tanh", inputs: [A], fn: (x) => weighted(ops.tanh(x)) },
  { name: "erf", inputs: [A], fn: (x) => weighted(ops.erf(x)) },
  { name: "gelu exact", inputs: [A], fn: (x) => weighted(gelu(x, false)) },
  { name: "gelu tanh", inputs: [A], fn: (x) => weighted(gelu(x, true)) },
  { name: "add", inputs: [A, B], fn: (x, y) => weighted(ops.add(x, y)) },
  { name: "sub", inputs: [A, B], fn: (x, y) => weighted(ops.sub(x, y)) },
  { name: "mul", inputs: [A, B], fn: (x, y) => weighted(ops.mul(x, y)) },
  { name: "div", inputs: [A, P], fn: (x, y) => weighted(ops.div(x, y)) },
  { name: "max", inputs: [A, B], fn: (x, y) => weighted(ops.maximum(x, y)) },
  { name: "min", inputs: [A, B], fn: (x, y) => weighted(ops.minimum(x, y)) },
  {
    name: "select",
    inputs: [A, B],
    fn: (x, y) => weighted(ops.where(ops.gt(x, 0), ops.mul(x, y), ops.exp(y))),
  },
  { name: "reduce_sum", inputs: [A], fn: (x) => weighted(ops.sum(ops.mul(x, x), 1)) },
  { name: "reduce_max", inputs: [A], fn: (x) => weighted(ops.max(x, 0)) },
  { name: "reshape", inputs: [A], fn: (x) => weighted(ops.reshape(ops.exp(x), [3, 2])) },
  {
    name: "broadcast_in_dim",
    inputs: [f([3], [0.2, -0.4, 0.9])],
    fn: (x) => weighted(ops.broadcastInDim(ops.tanh(x), [2, 3, 2], [1])),
  },
  { name: "transpose", inputs: [A], fn: (x) => weighted(ops.transpose(ops.mul(x, x), [1, 0])) },
  {
    name: "slice strided",
    inputs: [A],
    fn: (x) => weighted(ops.slice(ops.exp(x), [0, 0], [2, 3], [1, 2])),
  },
  { name: "pad", inputs: [A], fn: (x) => weighted(ops.pad(ops.mul(x, x), [1, 0], [0, 2], 0.5)) },
  {
    name: "concatenate",
    inputs: [A, B],
    fn: (x, y) => weighted(ops.concatenate([ops.exp(x), ops.mul(y, y)], 0)),
  },
  {
    name: "dot_general",
    inputs: [
      f([2, 2, 3], [0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 1.1, 1.2]),
      f([2, 3, 2], [0.3, 0.1, -0.5, 0.2, 0.9, -0.4, 0.6, 0.2, 0.1, -0.7, 0.5, 0.3]),
    ],
    fn: (x, y) =>
      weighted(
        ops.dotGeneral(x, y, { lhsBatch: [0], rhsBatch: [0], lhsContract: [2], rhsContract: [1] }),
      ),
  },
  {
    name: "dot_general odd dims",
    inputs: [A, f([2, 2], [0.3, -1.1, 0.7, 0.4])],
    fn: (x, y) =>
      weighted(
        ops.dotGeneral(x, y, { lhsBatch: [], rhsBatch: [], lhsContract: [0], rhsContract: [1] }),
      ),
  },
  {
    name: "checkpoint (remat)",
    inputs: [A, B],
    fn: (x, y) =>
      weighted(checkpoint((a: Tensor, b: Tensor) => ops.tanh(ops.mul(ops.exp(a), b)))(x, y)),
  },
  {
    // output and lse both weighted, so the lse cotangent is checked too
    name: "attention (output and lse)",
    inputs: [
      f([1, 2, 3, 2], [0.3, -0.6, 0.9, 0.1, -0.4, 0.7, 0.2, 0.5, -0.8, 0.6, 0.1, -0.3]),
      f([1, 2, 2, 2], [0.5, 0.2, -0.7, 0.4, 0.1, -0.9, 0.8, 0.3]),
      f([1, 2, 2, 2], [1.1, -0.5, 0.4, 0.9, -0.2, 0.6, 0.7, -1.0]),
    ],
    fn: (q, k, v) => weighted(attentionPacked(q, k, v, 0.8)),
  },
];

/**
 * Max relative error |analytic - numeric| / max(1, |numeric|) over all inputs of a case, with
 * central differences of step `eps` computed on the same backend.
 */
export async function gradError(backend: Backend, c: GradCase, eps = 1e-2): Promise<number> {
  const gradFn = await Compiled.create(
    backend,
    (xs: Tensor[]) => valueAndGrad((ps: Tensor[]) => c.fn(...ps))(xs)[1],
    c.inputs,
  );
  const valueFn = await Compiled.create(backend, (...xs: Tensor[]) => c.fn(...xs), ...c.inputs);
  const grads: HostTensor[] = await Promise.all(
    (await gradFn.call([c.inputs]) as unknown[]).map((g) => backend.toHost(g as never)),
  );
  let worst = 0;
  for (let k = 0; k < c.inputs.length; k++) {
    for (let i = 0; i < c.inputs[k].data.length; i++) {
      const at = async (delta: number) => {
        const xs = c.inputs.map((t, j) => {
          if (j !== k) return t;
          const data = t.data.slice() as Float32Array;
          data[i] += delta;
          return { ...t, data };
        });
        const out = await backend.toHost(await valueFn.call(xs));
        return out.data[0];
      };
      const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
      const analytic = grads[k].data[i];
      worst = Math.max(worst, Math.abs(analytic - numeric) / Math.max(1, Math.abs(numeric)));
    }
  }
  gradFn.dispose();
  valueFn.dispose();
  return worst;
}
