/**
 * The original's optimizers as traced updates, in optax's order of transformations:
 *   clip_by_global_norm -> scale_by_adam -> add_decayed_weights (kernels) ->
 *   [lamb: scale_by_trust_ratio (kernels)] -> scale_by_learning_rate -> layer-wise lr decay.
 * Host-computed scalars (lr, bias corrections) come in as f32 inputs, so the schedule and the
 * step count stay on the host and one compiled step serves every step.
 */
import { type HostTensor, hostTensor } from "../ir/host_tensor.ts";
import * as ops from "../ir/ops.ts";
import { leavesWithPaths, treeMap } from "../ir/pytree.ts";
import type { Tensor } from "../ir/tensor.ts";

export interface OptimizerConfig {
  kind: "adamw" | "lamb";
  b1: number;
  b2: number;
  eps: number;
  weightDecay: number;
  /** Global-norm clipping threshold; 0 disables. */
  clipGrad: number;
  /** Layer-wise lr decay factor; 1 disables. */
  lrDecay: number;
  /** Number of ViT layers, for layer-wise decay. */
  layers: number;
}

/** AdamW with the original's defaults (b1 0.9, b2 0.999, eps 1e-8, weight decay 0.05), no clipping or decay. */
export function defaultAdamW(layers: number): OptimizerConfig {
  return {
    kind: "adamw",
    b1: 0.9,
    b2: 0.999,
    eps: 1e-8,
    weightDecay: 0.05,
    clipGrad: 0,
    lrDecay: 1,
    layers,
  };
}

/** Per-step scalars computed on the host. */
export interface StepScalars<T> {
  lr: T;
  /** 1 - b1^t and 1 - b2^t for t = step + 1. */
  bc1: T;
  bc2: T;
}

export function stepScalars(
  cfg: OptimizerConfig,
  step: number,
  lr: number,
): StepScalars<HostTensor> {
  const f = Math.fround;
  const t = step + 1;
  const s = (v: number) => hostTensor([], "f32", [v]);
  return {
    lr: s(f(lr)),
    bc1: s(f(1 - f(Math.pow(f(cfg.b1), t)))),
    bc2: s(f(1 - f(Math.pow(f(cfg.b2), t)))),
  };
}

/** Optimizer state: first and second moments with the params' structure. */
export function initOptState(params: unknown): { mu: unknown; nu: unknown } {
  const zeros = (p: HostTensor) => hostTensor(p.shape, "f32");
  return { mu: treeMap(params, zeros), nu: treeMap(params, zeros) };
}

/** One update; returns new params and state (traced). */
export function applyUpdate(
  cfg: OptimizerConfig,
  params: any,
  grads: any,
  state: { mu: any; nu: any },
  s: StepScalars<Tensor>,
): { params: any; state: { mu: any; nu: any } } {
  const paths = leavesWithPaths<Tensor>(params).map(([p]) => p);
  const ps = leavesWithPaths<Tensor>(params).map(([, t]) => t);
  let gs = leavesWithPaths<Tensor>(grads).map(([, t]) => t);
  const mus = leavesWithPaths<Tensor>(state.mu).map(([, t]) => t);
  const nus = leavesWithPaths<Tensor>(state.nu).map(([, t]) => t);
  if (gs.length !== ps.length || mus.length !== ps.length) {
    throw new Error("optimizer: params, grads and state trees differ");
  }
  if (cfg.clipGrad > 0) gs = clipByGlobalNorm(gs, cfg.clipGrad);

  const newP: Tensor[] = [], newMu: Tensor[] = [], newNu: Tensor[] = [];
  ps.forEach((p, i) => {
    const g = gs[i];
    const mu = ops.add(ops.mul(g, 1 - cfg.b1), ops.mul(mus[i], cfg.b1));
    const nu = ops.add(ops.mul(ops.mul(g, g), 1 - cfg.b2), ops.mul(nus[i], cfg.b2));
    const muHat = ops.div(mu, ops.broadcastTo(s.bc1, mu.shape));
    const nuHat = ops.div(nu, ops.broadcastTo(s.bc2, nu.shape));
    let u = ops.div(muHat, ops.add(ops.sqrt(nuHat), cfg.eps));
    const isKernel = paths[i].endsWith(".kernel") || paths[i] === "kernel";
    if (isKernel && cfg.weightDecay > 0) u = ops.add(u, ops.mul(p, cfg.weightDecay));
    if (isKernel && cfg.kind === "lamb") u = ops.mul(u, ops.broadcastTo(trustRatio(p, u), u.shape));
    u = ops.mul(u, ops.broadcastTo(ops.neg(s.lr), u.shape));
    if (cfg.lrDecay < 1) {
      u = ops.mul(u, Math.fround(cfg.lrDecay ** (cfg.layers - layerIndex(paths[i], cfg.layers))));
    }
    newP.push(ops.add(p, u));
    newMu.push(mu);
    newNu.push(nu);
  });
  let k = 0, km = 0, kn = 0;
  return {
    params: treeMap(params, () => newP[k++]),
    state: { mu: treeMap(state.mu, () => newMu[km++]), nu: treeMap(state.nu, () => newNu[kn++]) },
  };
}

/** The original's `get_layer_index_fn`: embed = 0, layer_i = i + 1, everything else = layers. */
export function layerIndex(path: string, layers: number): number {
  const parts = path.split(".");
  const i = parts[0] === "model" ? 1 : 0;
  const m = /^layer_(\d+)$/.exec(parts[i] ?? "");
  if (m) return Number(m[1]) + 1;
  if (parts[i] === "embed") return 0;
  return layers;
}

/** optax.clip_by_global_norm: g stays when ||g|| < max, else g / ||g|| * max. */
function clipByGlobalNorm(gs: Tensor[], maxNorm: number): Tensor[] {
  const sq = gs.map((g) => ops.sum(ops.mul(g, g)));
  const norm = ops.sqrt(sq.reduce((a, b) => ops.add(a, b)));
  const trigger = ops.lt(norm, maxNorm);
  return gs.map((g) => {
    const n = ops.broadcastTo(norm, g.shape);
    return ops.where(ops.broadcastTo(trigger, g.shape), g, ops.mul(ops.div(g, n), maxNorm));
  });
}

/** optax.scale_by_trust_ratio (min_norm 0, coefficient 1, eps 0). */
function trustRatio(p: Tensor, u: Tensor): Tensor {
  const pn = ops.sqrt(ops.sum(ops.mul(p, p)));
  const un = ops.sqrt(ops.sum(ops.mul(u, u)));
  const zero = ops.or(ops.eq(pn, 0), ops.eq(un, 0));
  return ops.where(zero, 1, ops.div(pn, un));
}
