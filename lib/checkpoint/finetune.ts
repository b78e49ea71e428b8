/**
 * Loading a pretrained checkpoint into a new config, as deit3-jax's `load_pretrained_params`:
 *
 * - learnable position embeddings are resized to the new grid with `jax.image.resize`'s
 *   "bicubic" (Keys cubic, a = -0.5, half-pixel centres, antialiased when shrinking);
 * - the classifier head is re-initialised (taken from the fresh params) when the pretrained one
 *   is missing or its label count differs, unless a label mapping is given;
 * - with a label mapping (`{src: [...], dst: [...]}`, as `in21k_to_in1k.json`) the head is built
 *   from the mapped pretrained rows: kernel columns `dst` = pretrained columns `src`, other
 *   columns zero; bias `dst` = pretrained bias `src`, other biases -10.
 *
 * Unlike the original, every other leaf must then match the fresh params in shape (f32/bf16 are
 * converted to the fresh dtype); a mismatch is an error naming the checkpoint and the key.
 */
import { bf16ToF32, type DType, f32ToBf16, isFloat } from "../ir/dtype.ts";
import { type HostTensor, isHostTensor, numel, stridesOf } from "../ir/host_tensor.ts";
import { readFlaxParams } from "./convert.ts";
import { CheckpointError } from "./errors.ts";
import { readInputBytes } from "./storage.ts";
import { flattenTree, type Leaf, type Tree, unflattenTree } from "./tree.ts";

export interface LabelMapping {
  src: number[];
  dst: number[];
}

export interface PretrainedOptions {
  /** Copy mapped head rows instead of re-initialising the head. */
  labelMapping?: LabelMapping;
  /** Names the checkpoint in errors. */
  name?: string;
}

/**
 * Reads a pretrained Flax checkpoint (path or gs:// URL; params or a training state) and fits it
 * to `initial`.
 */
export async function loadPretrainedFile(
  url: string,
  initial: Tree,
  { labelMappingUrl }: { labelMappingUrl?: string } = {},
): Promise<Tree> {
  const labelMapping = labelMappingUrl
    ? parseLabelMapping(
      new TextDecoder().decode(await readInputBytes(labelMappingUrl)),
      labelMappingUrl,
    )
    : undefined;
  const params = await readFlaxParams(url);
  return fitPretrained(params, initial, { labelMapping, name: url });
}

/** Parses a label-mapping JSON (`{"src": [...], "dst": [...]}`). */
export function parseLabelMapping(text: string, name = "<label mapping>"): LabelMapping {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(name, undefined, `not JSON: ${(e as Error).message}`);
  }
  const { src, dst } = (json ?? {}) as Record<string, unknown>;
  for (const [key, list] of [["src", src], ["dst", dst]] as const) {
    if (!Array.isArray(list) || !list.every((i) => Number.isSafeInteger(i) && i >= 0)) {
      throw new CheckpointError(name, key, "must be a list of non-negative label indices");
    }
  }
  if ((src as number[]).length !== (dst as number[]).length) {
    throw new CheckpointError(
      name,
      undefined,
      `src has ${(src as number[]).length} labels, dst ${(dst as number[]).length}`,
    );
  }
  return { src: src as number[], dst: dst as number[] };
}

/** Fits pretrained params to the fresh `initial` params of the new config (see module doc). */
export function fitPretrained(
  pretrained: Tree,
  initial: Tree,
  options: PretrainedOptions = {},
): Tree {
  const name = options.name ?? "<pretrained>";
  const fail = (key: string, why: string) => new CheckpointError(name, key, why);
  const pre = flattenTree(pretrained);
  const init = flattenTree(initial);
  const out = new Map<string, Leaf>(pre);

  const wpeKey = "model/embed/wpe";
  const wpe = pre.get(wpeKey), wpeInit = init.get(wpeKey);
  if (isHostTensor(wpe) && isHostTensor(wpeInit) && !sameShape(wpe.shape, wpeInit.shape)) {
    if (wpe.shape.length !== wpeInit.shape.length || wpe.shape.at(-1) !== wpeInit.shape.at(-1)) {
      throw fail(wpeKey, `shape [${wpe.shape}] cannot be resized to [${wpeInit.shape}]`);
    }
    out.set(wpeKey, resizeBicubic(toF32(wpe), wpeInit.shape));
  }

  const kernelKey = "model/head/kernel", biasKey = "model/head/bias";
  const kInit = init.get(kernelKey), bInit = init.get(biasKey);
  const k = pre.get(kernelKey), b = pre.get(biasKey);
  if (isHostTensor(kInit) && isHostTensor(bInit)) {
    if (options.labelMapping) {
      if (!isHostTensor(k) || !isHostTensor(b)) {
        throw fail(kernelKey, "a label mapping needs a head in the checkpoint");
      }
      const mapped = mapHead(toF32(k), toF32(b), kInit.shape, options.labelMapping, fail);
      out.set(kernelKey, mapped.kernel);
      out.set(biasKey, mapped.bias);
    } else if (!isHostTensor(k) || !isHostTensor(b) || !sameShape(k.shape, kInit.shape)) {
      out.set(kernelKey, kInit);
      out.set(biasKey, bInit);
    }
  }

  return matchTree(unflattenTree(out), initial, name);
}

/** A reference leaf that has a shape and dtype but maybe no values (a `paramSpecs` leaf). */
export interface LeafSpec {
  readonly shape: readonly number[];
  dtype: DType;
}

/**
 * Checks that `tree` has exactly the leaves of `reference` with the same shapes (e.g. a resumed
 * state against the configured model) and returns it, f32/bf16 leaves cast to the reference's
 * dtype. `reference` is a tree of arrays, or `path -> spec` ("model/head/kernel") when only
 * the shapes are known. A mismatch is a CheckpointError naming `name` and the key.
 */
export function matchTree(
  tree: Tree,
  reference: Tree | ReadonlyMap<string, Leaf | LeafSpec>,
  name = "<checkpoint>",
): Tree {
  const fail = (key: string, why: string) => new CheckpointError(name, key, why);
  const out = flattenTree(tree);
  const ref: ReadonlyMap<string, Leaf | LeafSpec> = reference instanceof Map
    ? reference
    : flattenTree(reference as Tree);
  for (const [key, want] of ref) {
    const got = out.get(key);
    if (got === undefined) throw fail(key, "missing in the checkpoint (does the config match?)");
    if (!isSpec(want)) continue;
    if (!isHostTensor(got)) throw fail(key, "is not an array");
    if (!sameShape(got.shape, want.shape)) {
      throw fail(key, `shape [${got.shape}] in the checkpoint, the config expects [${want.shape}]`);
    }
    if (got.dtype !== want.dtype) {
      if (!isFloat(got.dtype) || !isFloat(want.dtype)) {
        throw fail(key, `dtype ${got.dtype} in the checkpoint, the config expects ${want.dtype}`);
      }
      out.set(key, castFloat(got, want.dtype));
    }
  }
  for (const key of out.keys()) {
    if (!ref.has(key)) {
      throw fail(key, "not a parameter of the configured model (does the config match?)");
    }
  }
  return unflattenTree(out);
}

function isSpec(x: unknown): x is LeafSpec {
  return typeof x === "object" && x !== null && Array.isArray((x as LeafSpec).shape) &&
    typeof (x as LeafSpec).dtype === "string";
}

/**
 * `jax.image.resize(x, shape, "bicubic")` for f32 arrays: each axis whose size changes is
 * resampled with the Keys cubic (a = -0.5) at half-pixel centres; when shrinking (and
 * `antialias`) the kernel is stretched by the scale. Out-of-range taps are dropped and the
 * weights renormalised, as jax's `scale_and_translate` does.
 */
export function resizeBicubic(
  x: HostTensor,
  shape: number[],
  { antialias = true } = {},
): HostTensor {
  if (x.dtype !== "f32") throw new Error(`resizeBicubic: f32 only, got ${x.dtype}`);
  if (shape.length !== x.shape.length) {
    throw new Error(`resizeBicubic: rank ${x.shape.length} -> [${shape}]`);
  }
  let cur: { shape: number[]; data: Float64Array } = {
    shape: [...x.shape],
    data: Float64Array.from(x.data),
  };
  for (let axis = 0; axis < shape.length; axis++) {
    if (cur.shape[axis] === shape[axis]) continue;
    cur = resampleAxis(cur, axis, shape[axis], antialias);
  }
  return { shape: [...shape], dtype: "f32", data: Float32Array.from(cur.data) };
}

/** Keys' cubic convolution kernel with a = -0.5 (as jax's `_keys_cubic_kernel`). */
export function keysCubic(t: number): number {
  const x = Math.abs(t);
  if (x >= 2) return 0;
  if (x >= 1) return ((-0.5 * x + 2.5) * x - 4) * x + 2;
  return (1.5 * x - 2.5) * x * x + 1;
}

/** Weights [out][in] of one resampled axis. */
export function resizeWeights(inSize: number, outSize: number, antialias = true): Float64Array[] {
  const scale = outSize / inSize;
  const inv = 1 / scale;
  const kernelScale = antialias ? Math.max(inv, 1) : 1;
  const rows: Float64Array[] = [];
  for (let j = 0; j < outSize; j++) {
    const sample = (j + 0.5) * inv - 0.5;
    const w = new Float64Array(inSize);
    let sum = 0;
    for (let i = 0; i < inSize; i++) sum += w[i] = keysCubic((sample - i) / kernelScale);
    const inside = sample >= -0.5 && sample <= inSize - 0.5;
    for (let i = 0; i < inSize; i++) {
      w[i] = inside && Math.abs(sum) > 1000 * 2 ** -23 ? w[i] / sum : 0;
    }
    rows.push(w);
  }
  return rows;
}

function resampleAxis(
  x: { shape: number[]; data: Float64Array },
  axis: number,
  outSize: number,
  antialias: boolean,
): { shape: number[]; data: Float64Array } {
  const inSize = x.shape[axis];
  const weights = resizeWeights(inSize, outSize, antialias);
  const shape = [...x.shape];
  shape[axis] = outSize;
  const outer = numel(x.shape.slice(0, axis)), inner = stridesOf(x.shape)[axis];
  const out = new Float64Array(numel(shape));
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < outSize; j++) {
      const w = weights[j];
      const dst = (o * outSize + j) * inner;
      for (let i = 0; i < inSize; i++) {
        if (w[i] === 0) continue;
        const src = (o * inSize + i) * inner;
        for (let c = 0; c < inner; c++) out[dst + c] += w[i] * x.data[src + c];
      }
    }
  }
  return { shape, data: out };
}

function mapHead(
  k: HostTensor,
  b: HostTensor,
  shape: number[],
  { src, dst }: LabelMapping,
  fail: (key: string, why: string) => Error,
): { kernel: HostTensor; bias: HostTensor } {
  const [dim, labels] = shape;
  const [preDim, preLabels] = k.shape;
  if (preDim !== dim) {
    throw fail("model/head/kernel", `width ${preDim} in the checkpoint, the config has ${dim}`);
  }
  const badSrc = src.find((i) => i >= preLabels), badDst = dst.find((i) => i >= labels);
  if (badSrc !== undefined) {
    throw fail(
      "model/head/kernel",
      `label mapping src ${badSrc} >= ${preLabels} pretrained labels`,
    );
  }
  if (badDst !== undefined) {
    throw fail("model/head/kernel", `label mapping dst ${badDst} >= ${labels} labels`);
  }
  const kernel = new Float32Array(dim * labels);
  const bias = new Float32Array(labels).fill(-10);
  for (let m = 0; m < src.length; m++) {
    for (let r = 0; r < dim; r++) kernel[r * labels + dst[m]] = k.data[r * preLabels + src[m]];
    bias[dst[m]] = b.data[src[m]];
  }
  return {
    kernel: { shape: [dim, labels], dtype: "f32", data: kernel },
    bias: { shape: [labels], dtype: "f32", data: bias },
  };
}

function toF32(t: HostTensor): HostTensor {
  return t.dtype === "f32" ? t : castFloat(t, "f32");
}

function castFloat(t: HostTensor, dtype: DType): HostTensor {
  if (t.dtype === dtype) return t;
  if (t.dtype === "bf16" && dtype === "f32") {
    return { shape: t.shape, dtype: "f32", data: Float32Array.from(t.data, (x) => bf16ToF32(x)) };
  }
  if (t.dtype === "f32" && dtype === "bf16") {
    return { shape: t.shape, dtype: "bf16", data: Uint16Array.from(t.data, (x) => f32ToBf16(x)) };
  }
  throw new Error(`cannot cast ${t.dtype} to ${dtype}`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
