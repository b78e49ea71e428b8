/** A small MLP training step (valueAndGrad + SGD, gradients averaged over replicas) for tests. */
import { valueAndGrad } from "../../../lib/autodiff/grad.ts";
import type { ShapeSpec } from "../../../lib/ir/graph.ts";
import * as ops from "../../../lib/ir/ops.ts";
import { leavesWithPaths, treeMap } from "../../../lib/ir/pytree.ts";
import { type HostTensor, hostTensor, numel } from "../../../lib/ir/host_tensor.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";

export interface Mlp<T> {
  w1: T;
  b1: T;
  w2: T;
  b2: T;
}

const f32 = (...shape: number[]): ShapeSpec => ({ shape, dtype: "f32" });

/** (params, x [5,4], labels i32 [5], lr []) */
export function mlpSpecs(): unknown[] {
  return [{ w1: f32(4, 8), b1: f32(8), w2: f32(8, 3), b2: f32(3) }, f32(5, 4), {
    shape: [5],
    dtype: "i32",
  }, f32()];
}

/** The step's inputs of one replica: parameters alike on every replica, data its own. */
export function mlpInputs(replica: number): HostTensor[] {
  return mlpSpecs().flatMap((s) =>
    leavesWithPaths<{ shape: number[]; dtype: "f32" | "i32" }>(s).map(([path, t], k) =>
      hostTensor(
        t.shape,
        t.dtype,
        Array.from({ length: numel(t.shape) }, (_, i) => {
          if (t.dtype === "i32") return (i * 7 + replica) % 3;
          const varies = path === "" && t.shape.length === 2 && t.shape[0] === 5 ? replica : 0;
          return Math.sin(i * 1.3 + k + varies) * (t.shape.length === 0 ? 0.1 : 1);
        }),
      )
    )
  );
}

export function mlpLoss(p: Mlp<Tensor>, x: Tensor, labels: Tensor): Tensor {
  const h = ops.tanh(ops.add(ops.matmul(x, p.w1), p.b1));
  const logits = ops.add(ops.matmul(h, p.w2), p.b2);
  const m = ops.max(logits, 1, true);
  const lse = ops.add(ops.log(ops.sum(ops.exp(ops.sub(logits, m)), 1, true)), m);
  const onehot = ops.convert(
    ops.eq(ops.broadcastInDim(labels, [5, 3], [0]), ops.iota([5, 3], 1, "i32")),
    "f32",
  );
  return ops.mean(ops.sum(ops.mul(onehot, ops.sub(lse, logits)), 1));
}

/** One SGD step; gradients are summed over `replicas` and averaged. */
export function mlpTrainStep(replicas: number) {
  return (p: Mlp<Tensor>, x: Tensor, labels: Tensor, lr: Tensor) => {
    const [loss, grads] = valueAndGrad(mlpLoss)(p, x, labels);
    const next = treeMap(p, (w: Tensor, path: string) => {
      const g = ops.div(
        ops.allReduceSum((grads as Record<string, Tensor>)[path], replicas),
        replicas,
      );
      return ops.sub(w, ops.mul(g, ops.broadcastTo(lr, g.shape)));
    });
    return { loss, params: next };
  };
}
