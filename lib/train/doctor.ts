/**
 * `doctor`: checks a backend against a reference directory produced by the original stack
 * (meta.json, params/io/grads/after3-*.msgpack; see tests/fixtures/reference/vit-a).
 */
import { readFlaxMsgpackFile } from "../checkpoint/flax_msgpack.ts";
import type { Backend } from "../backend/backend.ts";
import { Compiled } from "../backend/jit.ts";
import type { HostTensor } from "../ir/host_tensor.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import type { Tensor } from "../ir/tensor.ts";
import type { ViTConfig } from "../model/vit.ts";
import {
  defaultAdamW,
  initOptState,
  type OptimizerConfig,
  stepScalars,
} from "../optim/optimizer.ts";
import {
  buildGradStep,
  buildTrainStep,
  lossAndMetrics,
  noMix,
  type TrainStepConfig,
} from "./step.ts";
import { vitForward } from "../model/vit.ts";
import { normalizeImages } from "./loss.ts";

export interface DoctorReport {
  backend: string;
  device: string;
  reference: string;
  tolerance: number;
  logits_max_abs: number;
  loss_abs: number;
  grads_max_abs: number;
  /** Worst gradient leaf by the combined criterion (abs or relative). */
  grads_worst: { path: string; abs: number; rel: number };
  after3: Record<string, number>;
  seconds: number;
  pass: boolean;
}

export const TRAJECTORIES: Record<string, Partial<OptimizerConfig>> = {
  "adamw": { kind: "adamw" },
  "lamb": { kind: "lamb" },
  "adamw-clip1-lrdecay0.75": { kind: "adamw", clipGrad: 1, lrDecay: 0.75 },
};

export async function runDoctor(
  backend: Backend,
  refDir: string,
  tolerance: number,
): Promise<DoctorReport> {
  const t0 = performance.now();
  const meta = JSON.parse(await Deno.readTextFile(`${refDir}/meta.json`));
  const vit = vitConfigFromMeta(meta.config);
  const params = await readFlaxMsgpackFile(`${refDir}/params.msgpack`);
  const io = await readFlaxMsgpackFile(`${refDir}/io.msgpack`) as Record<string, HostTensor>;
  const refGrads = await readFlaxMsgpackFile(`${refDir}/grads.msgpack`);
  const base: TrainStepConfig = {
    vit,
    criterion: "ce",
    labelSmoothing: meta.label_smoothing ?? 0,
    deterministic: true,
    optimizer: defaultAdamW(vit.layers),
  };
  const batch = { images: io.images, labels: io.labels };

  // Forward: logits and loss.
  const fwd = await Compiled.create(
    backend,
    (p: unknown, b: { images: Tensor; labels: Tensor }) => ({
      logits: vitForward(vit, p, normalizeImages(b.images), { det: true }),
      loss: lossAndMetrics(base, p, b, null, undefined)[0],
    }),
    params,
    batch,
  );
  const out = await download(backend, await fwd.call([params, batch]));
  fwd.dispose();
  const logitsErr = maxAbs(out.logits, io.logits);
  const lossErr = Math.abs(out.loss.data[0] - io.loss.data[0]);

  // Gradients.
  const gradFn = await Compiled.create(
    backend,
    (p: unknown, b: { images: Tensor; labels: Tensor }) =>
      buildGradStep(base)(p, b, null, undefined).grads,
    params,
    batch,
  );
  const grads = await download(backend, await gradFn.call([params, batch]));
  gradFn.dispose();
  let gradsMax = 0;
  let worst = { path: "", abs: 0, rel: 0, excess: -Infinity };
  const refLeaves = new Map(leavesWithPaths<HostTensor>(refGrads));
  for (const [path, g] of leavesWithPaths<HostTensor>(grads)) {
    const r = refLeaves.get(path);
    if (!r) throw new Error(`doctor: reference grads lack ${path}`);
    const abs = maxAbs(g, r);
    const rel = maxRel(g, r);
    gradsMax = Math.max(gradsMax, abs);
    // A leaf passes when within tolerance absolutely or 10x tolerance relatively.
    const excess = Math.min(abs - tolerance, rel - 10 * tolerance);
    if (excess > worst.excess) worst = { path, abs, rel, excess };
  }

  // Three optimizer steps on the same batch, constant lr 1e-3.
  const after3: Record<string, number> = {};
  for (const [name, variant] of Object.entries(TRAJECTORIES)) {
    const cfg = { ...base, optimizer: { ...base.optimizer, ...variant } };
    const ref = await readFlaxMsgpackFile(`${refDir}/after3-${name}.msgpack`);
    after3[name] = maxAbsTree(await threeSteps(backend, cfg, params, batch), ref);
  }

  const pass = logitsErr <= tolerance && lossErr <= tolerance && worst.excess <= 0 &&
    Object.values(after3).every((e) => e <= tolerance);
  return {
    backend: backend.name,
    device: backend.description,
    reference: refDir,
    tolerance,
    logits_max_abs: logitsErr,
    loss_abs: lossErr,
    grads_max_abs: gradsMax,
    grads_worst: { path: worst.path, abs: worst.abs, rel: worst.rel },
    after3,
    seconds: (performance.now() - t0) / 1000,
    pass,
  };
}

export function vitConfigFromMeta(m: Record<string, unknown>): ViTConfig {
  return {
    layers: m.layers as number,
    dim: m.dim as number,
    heads: m.heads as number,
    labels: (m.labels ?? null) as number | null,
    layerscale: !!m.layerscale,
    patchSize: (m.patch_size ?? m["patch-size"]) as number,
    imageSize: (m.image_size ?? m["image-size"]) as number,
    posemb: (m.posemb ?? "learnable") as ViTConfig["posemb"],
    pooling: (m.pooling ?? "cls") as ViTConfig["pooling"],
    dropout: 0,
    droppath: 0,
    gradCkpt: false,
  };
}

async function threeSteps(
  backend: Backend,
  cfg: TrainStepConfig,
  params: unknown,
  batch: Record<string, HostTensor>,
) {
  const step = buildTrainStep(cfg);
  const mix = noMix(batch.labels.shape[0]);
  const key = { shape: [2], dtype: "u32" as const, data: new Uint32Array([0, 0]) };
  let opt = initOptState(params);
  let p = params;
  const compiled = await Compiled.create(
    backend,
    (pp: unknown, o: { mu: unknown; nu: unknown }, b: never, s: never, k: Tensor) =>
      step(pp, o, b, null, s, k),
    p,
    opt,
    batch,
    stepScalars(cfg.optimizer, 0, 1e-3),
    key,
  );
  void mix;
  for (let i = 0; i < 3; i++) {
    const out = await compiled.call([p, opt, batch, stepScalars(cfg.optimizer, i, 1e-3), key]);
    p = out.params;
    opt = out.opt;
  }
  const host = await download(backend, p);
  compiled.dispose();
  return host;
}

async function download(backend: Backend, tree: any): Promise<any> {
  const leaves = leavesWithPaths<any>(tree);
  const host = await Promise.all(leaves.map(([, l]) => backend.toHost(l)));
  const out: any = {};
  leaves.forEach(([path], i) => {
    const parts = path.split(".");
    let o = out;
    for (const k of parts.slice(0, -1)) o = o[k] ??= {};
    o[parts[parts.length - 1]] = host[i];
  });
  return out;
}

function maxAbs(a: HostTensor, b: HostTensor): number {
  if (a.data.length !== b.data.length) {
    throw new Error(`doctor: shapes [${a.shape}] and [${b.shape}] differ`);
  }
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
}

function maxRel(a: HostTensor, b: HostTensor): number {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    if (d > 0) m = Math.max(m, d / Math.max(Math.abs(b.data[i]), 1e-12));
  }
  return m;
}

function maxAbsTree(a: unknown, b: unknown): number {
  const ref = new Map(leavesWithPaths<HostTensor>(b));
  let m = 0;
  for (const [path, t] of leavesWithPaths<HostTensor>(a)) {
    const r = ref.get(path);
    if (!r) throw new Error(`doctor: reference lacks ${path}`);
    m = Math.max(m, maxAbs(t, r));
  }
  return m;
}
