/**
 * Conversions between the deit3-jax Flax parameter tree and timm's VisionTransformer state dict,
 * following the original `convert_flax_to_pytorch.py` / `convert_pytorch_to_flax.py`:
 *
 * | Flax (`model/...`)                    | timm                                   |
 * |---------------------------------------|----------------------------------------|
 * | embed/cls_token [1,1,D]               | cls_token [1,1,D]                      |
 * | embed/wpe [gh,gw,D]                   | pos_embed [1,1+gh*gw,D] (zero cls row) |
 * |                                       | or [1,gh*gw,D] (`no_embed_class`)      |
 * | embed/wte/kernel [p,p,3,D], bias      | patch_embed.proj.weight [D,3,p,p], bias|
 * | layer_i/attn/w{q,k,v} [D,H,hd], [H,hd]| blocks.i.attn.qkv.weight [3D,D], bias  |
 * | layer_i/attn/wo [H,hd,D], bias        | blocks.i.attn.proj.weight [D,D], bias  |
 * | layer_i/ff/w1, w2                     | blocks.i.mlp.fc1, fc2 (transposed)     |
 * | layer_i/norm1, norm2 (scale, bias)    | blocks.i.norm1, norm2 (weight, bias)   |
 * | layer_i/scale1, scale2                | blocks.i.ls1.gamma, ls2.gamma          |
 * | norm, head                            | norm, head                             |
 *
 * The original adds `wpe` to the patches only, which is timm's `no_embed_class=True` layout (the
 * `deit3_*` models); timm's `vit_*` / `deit_*` models give the class token a position row too,
 * written as zeros. timm -> Flax folds a `pos_embed[:, :1]` row into the cls token (lossless
 * when the row is zero, as in files made by flaxToTimm; otherwise logits are kept but not the
 * bytes, see `TimmToFlaxResult.foldedClassRow`) and needs the head count to split qkv. Models the other
 * side cannot express (global average pooling, fixed sincos2d position embeddings, distillation
 * tokens, fc_norm) are refused with an error instead of producing a silently wrong file.
 */
import { bf16ToF32, f32ToBf16 } from "../ir/dtype.ts";
import { type HostTensor, isHostTensor } from "../ir/host_tensor.ts";
import type { StateDict } from "./pth.ts";
import { concatenate, reshape, sliceAxis, transpose, zeros } from "./tensor_ops.ts";
import { flattenTree, isTree, type Tree } from "./tree.ts";

export interface FlaxToTimmOptions {
  /** Leave out `head.weight` / `head.bias` (as the original's `--exclude-heads`). */
  excludeHeads?: boolean;
  /** timm's `no_embed_class=True` layout (`deit3_*`): pos_embed has no class-token row. */
  noEmbedClass?: boolean;
}

/** Flax params (`{model: {...}}` or the model tree itself) to a timm state dict. */
export function flaxToTimm(
  params: Tree,
  { excludeHeads = false, noEmbedClass = false }: FlaxToTimmOptions = {},
): StateDict {
  const model = isTree(params.model) ? params.model : params;
  const leaves = new Map(
    [...flattenTree(model)].map(([k, v]) => {
      if (!isHostTensor(v)) throw new Error(`model/${k}: not an array`);
      return [k, v];
    }),
  );
  const used = new Set<string>();
  const get = (key: string, rank?: number): HostTensor => {
    const t = leaves.get(key);
    if (!t) throw new Error(`model/${key}: missing`);
    if (rank !== undefined && t.shape.length !== rank) {
      throw new Error(`model/${key}: expected a rank-${rank} array, got shape [${t.shape}]`);
    }
    used.add(key);
    return t;
  };
  const has = (key: string) => leaves.has(key);

  if (!has("embed/cls_token")) {
    throw new Error(
      "model/embed/cls_token: missing - a model with global average pooling ('gap') cannot be " +
        "expressed in timm's class-token layout",
    );
  }
  if (!has("embed/wpe")) {
    throw new Error(
      "model/embed/wpe: missing - fixed sincos2d position embeddings are not parameters and " +
        "cannot be expressed in timm's learnable pos_embed layout",
    );
  }
  const sd: StateDict = new Map();
  const cls = get("embed/cls_token", 3);
  const dim = cls.shape[2];
  const wpe = get("embed/wpe", 3);
  const grid = reshape(wpe, [1, -1, dim]);
  sd.set("cls_token", cls);
  sd.set(
    "pos_embed",
    noEmbedClass ? grid : concatenate([zeros([1, 1, dim], wpe.dtype), grid], 1),
  );
  sd.set("patch_embed.proj.weight", transpose(get("embed/wte/kernel", 4), [3, 2, 0, 1]));
  sd.set("patch_embed.proj.bias", get("embed/wte/bias", 1));
  if (has("norm/scale")) {
    sd.set("norm.weight", get("norm/scale", 1));
    sd.set("norm.bias", get("norm/bias", 1));
  }
  if (has("head/kernel")) {
    if (!excludeHeads) {
      sd.set("head.weight", transpose(get("head/kernel", 2), [1, 0]));
      sd.set("head.bias", get("head/bias", 1));
    } else {
      used.add("head/kernel").add("head/bias");
    }
  }
  for (const i of layerIndices(model)) {
    const l = `layer_${i}`, b = `blocks.${i}`;
    const flat = (key: string) => {
      const t = get(`${l}/attn/${key}/kernel`, 3);
      return reshape(t, [t.shape[0], -1]);
    };
    const qkv = concatenate([flat("wq"), flat("wk"), flat("wv")], 1);
    sd.set(`${b}.attn.qkv.weight`, transpose(qkv, [1, 0]));
    sd.set(
      `${b}.attn.qkv.bias`,
      concatenate(["wq", "wk", "wv"].map((w) => reshape(get(`${l}/attn/${w}/bias`, 2), [-1])), 0),
    );
    const wo = get(`${l}/attn/wo/kernel`, 3);
    sd.set(`${b}.attn.proj.weight`, transpose(reshape(wo, [-1, wo.shape[2]]), [1, 0]));
    sd.set(`${b}.attn.proj.bias`, get(`${l}/attn/wo/bias`, 1));
    sd.set(`${b}.mlp.fc1.weight`, transpose(get(`${l}/ff/w1/kernel`, 2), [1, 0]));
    sd.set(`${b}.mlp.fc1.bias`, get(`${l}/ff/w1/bias`, 1));
    sd.set(`${b}.mlp.fc2.weight`, transpose(get(`${l}/ff/w2/kernel`, 2), [1, 0]));
    sd.set(`${b}.mlp.fc2.bias`, get(`${l}/ff/w2/bias`, 1));
    for (const n of ["norm1", "norm2"]) {
      sd.set(`${b}.${n}.weight`, get(`${l}/${n}/scale`, 1));
      sd.set(`${b}.${n}.bias`, get(`${l}/${n}/bias`, 1));
    }
    if (has(`${l}/scale1`)) sd.set(`${b}.ls1.gamma`, get(`${l}/scale1`, 1));
    if (has(`${l}/scale2`)) sd.set(`${b}.ls2.gamma`, get(`${l}/scale2`, 1));
  }
  const unused = [...leaves.keys()].filter((k) => !used.has(k));
  if (unused.length) {
    throw new Error(`model/${unused[0]}: no timm equivalent (unmapped: ${unused.join(", ")})`);
  }
  return sd;
}

export interface TimmToFlaxOptions {
  /** Attention heads; inferred from the width for the DeiT sizes (192/384/768/1024/1280). */
  numHeads?: number;
  /** Leave out the classifier head. */
  excludeHeads?: boolean;
  /** Receives a line for each thing the conversion could not keep bit for bit. */
  notes?: string[];
}

/** Heads of the original's presets by width (Ti, S, B, L, H). */
export const HEADS_BY_DIM: Record<number, number> = { 192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16 };

/** A timm ViT state dict to the Flax tree `{model: {...}}`. */
export function timmToFlax(
  sd: StateDict,
  { numHeads, excludeHeads = false, notes }: TimmToFlaxOptions = {},
): Tree {
  const used = new Set<string>();
  const get = (key: string, rank?: number): HostTensor => {
    const t = sd.get(key);
    if (!t) throw new Error(`${key}: missing`);
    if (rank !== undefined && t.shape.length !== rank) {
      throw new Error(`${key}: expected a rank-${rank} tensor, got shape [${t.shape}]`);
    }
    used.add(key);
    return t;
  };
  for (const k of ["dist_token", "head_dist.weight", "fc_norm.weight", "attn_pool.latent"]) {
    if (sd.has(k)) throw new Error(`${k}: this timm model variant has no deit3-jax equivalent`);
  }
  if (!sd.has("cls_token")) {
    throw new Error("cls_token: missing - deit3-jax's timm layout needs a class token");
  }
  if (!sd.has("norm.weight")) {
    throw new Error("norm.weight: missing (a model with fc_norm / no final norm?)");
  }
  const clsToken = get("cls_token", 3);
  const dim = clsToken.shape[2];
  const heads = numHeads ?? HEADS_BY_DIM[dim];
  if (!heads) throw new Error(`--num-heads is needed: width ${dim} is not a DeiT preset size`);
  if (dim % heads !== 0) throw new Error(`width ${dim} is not divisible by ${heads} heads`);
  const hd = dim / heads;

  const pos = get("pos_embed", 3);
  const tokens = pos.shape[1];
  let cls = clsToken, patches: HostTensor;
  if (isSquare(tokens - 1)) {
    const row = sliceAxis(pos, 1, 0, 1);
    cls = addF(clsToken, row);
    patches = sliceAxis(pos, 1, 1, tokens);
    if (row.data.some((x) => x !== 0)) {
      notes?.push(
        "pos_embed has a class-token row (timm's vit_*/deit_* layout, no_embed_class=False); " +
          "the original's tree has no place for it, so it was added into cls_token: the " +
          "model's logits are the same, but converting back writes cls_token + pos_embed[:, 0] " +
          "and a zero row, not the original bytes",
      );
    }
  } else if (isSquare(tokens)) {
    patches = pos; // no_embed_class: pos_embed has no class-token row
  } else {
    throw new Error(
      `pos_embed: ${tokens} positions are not a square grid (with or without a class row)`,
    );
  }
  const side = Math.round(Math.sqrt(patches.shape[1]));
  const model: Tree = {
    embed: {
      cls_token: cls,
      wpe: reshape(patches, [side, side, dim]),
      wte: {
        kernel: transpose(get("patch_embed.proj.weight", 4), [2, 3, 1, 0]),
        bias: get("patch_embed.proj.bias", 1),
      },
    },
    norm: { scale: get("norm.weight", 1), bias: get("norm.bias", 1) },
  };
  if (sd.has("head.weight")) {
    if (!excludeHeads) {
      model.head = { kernel: transpose(get("head.weight", 2), [1, 0]), bias: get("head.bias", 1) };
    } else {
      used.add("head.weight").add("head.bias");
    }
  }
  for (let i = 0; sd.has(`blocks.${i}.norm1.weight`); i++) {
    const b = `blocks.${i}`;
    const wqkv = transpose(get(`${b}.attn.qkv.weight`, 2), [1, 0]); // [D, 3D]
    if (wqkv.shape[0] !== dim || wqkv.shape[1] !== 3 * dim) {
      throw new Error(
        `${b}.attn.qkv.weight: expected [${3 * dim}, ${dim}], got [${wqkv.shape[1]}, ${
          wqkv.shape[0]
        }]`,
      );
    }
    const split = transpose(reshape(wqkv, [dim, 3, heads, hd]), [1, 0, 2, 3]);
    const bqkv = reshape(get(`${b}.attn.qkv.bias`, 1), [3, heads, hd]);
    const part = (t: HostTensor, j: number) => reshape(sliceAxis(t, 0, j, j + 1), t.shape.slice(1));
    const wo = transpose(get(`${b}.attn.proj.weight`, 2), [1, 0]);
    const layer: Tree = {
      attn: {
        wq: { kernel: part(split, 0), bias: part(bqkv, 0) },
        wk: { kernel: part(split, 1), bias: part(bqkv, 1) },
        wv: { kernel: part(split, 2), bias: part(bqkv, 2) },
        wo: { kernel: reshape(wo, [heads, hd, dim]), bias: get(`${b}.attn.proj.bias`, 1) },
      },
      ff: {
        w1: {
          kernel: transpose(get(`${b}.mlp.fc1.weight`, 2), [1, 0]),
          bias: get(`${b}.mlp.fc1.bias`, 1),
        },
        w2: {
          kernel: transpose(get(`${b}.mlp.fc2.weight`, 2), [1, 0]),
          bias: get(`${b}.mlp.fc2.bias`, 1),
        },
      },
      norm1: { scale: get(`${b}.norm1.weight`, 1), bias: get(`${b}.norm1.bias`, 1) },
      norm2: { scale: get(`${b}.norm2.weight`, 1), bias: get(`${b}.norm2.bias`, 1) },
    };
    if (sd.has(`${b}.ls1.gamma`)) layer.scale1 = get(`${b}.ls1.gamma`, 1);
    if (sd.has(`${b}.ls2.gamma`)) layer.scale2 = get(`${b}.ls2.gamma`, 1);
    model[`layer_${i}`] = layer;
  }
  const unused = [...sd.keys()].filter((k) => !used.has(k));
  if (unused.length) {
    throw new Error(`${unused[0]}: no deit3-jax equivalent (unmapped: ${unused.join(", ")})`);
  }
  return { model };
}

/** `layer_<i>` indices present in the model tree, in numeric order. */
function layerIndices(model: Tree): number[] {
  return Object.keys(model)
    .filter((k) => /^layer_\d+$/.test(k))
    .map((k) => Number(k.slice(6)))
    .sort((a, b) => a - b);
}

function isSquare(n: number): boolean {
  const s = Math.round(Math.sqrt(n));
  return n > 0 && s * s === n;
}

/** Elementwise a + b for f32 or bf16 tensors of one shape (rounded like torch). */
function addF(a: HostTensor, b: HostTensor): HostTensor {
  if (a.dtype !== b.dtype || a.data.length !== b.data.length) {
    throw new Error(
      `cls_token + pos_embed[:, :1]: [${a.shape}] ${a.dtype} vs [${b.shape}] ${b.dtype}`,
    );
  }
  const out = zeros([...a.shape], a.dtype);
  for (let i = 0; i < a.data.length; i++) {
    out.data[i] = a.dtype === "bf16"
      ? f32ToBf16(Math.fround(bf16ToF32(a.data[i]) + bf16ToF32(b.data[i])))
      : a.data[i] + b.data[i];
  }
  return out;
}
