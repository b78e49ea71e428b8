/**
 * timm's ViT model names (`deit3_small_patch16_224`, `vit_base_patch16_224.augreg_in21k`,
 * `deit_tiny_patch16_224`) and the state-dict layout each one loads strictly, checked against a
 * Flax parameter tree before `convert --to pth --timm-model NAME` writes it.
 *
 * | family   | pos_embed                          | layer scale (ls1/ls2.gamma)          |
 * |----------|------------------------------------|--------------------------------------|
 * | deit3_*  | [1, gh*gw, D] (no_embed_class)     | always (init_values=1e-6)            |
 * | vit_*    | [1, 1+gh*gw, D] (class row zero)   | only when created with init_values   |
 * | deit_*   | as vit_*                           | as vit_*                             |
 *
 * Every timm ViT here computes exact (erf) GELU, unlike the original's tanh approximation.
 */
import { isHostTensor } from "../ir/host_tensor.ts";
import { isTree, type Tree } from "./tree.ts";

export interface TimmModel {
  name: string;
  family: "deit3" | "vit" | "deit";
  dim: number;
  depth: number;
  heads: number;
  patch: number;
  imageSize: number;
  /** pos_embed without a class-token row. */
  noEmbedClass: boolean;
  /** ls1/ls2 always present (deit3); otherwise only with `init_values`. */
  layerScale: boolean;
}

/** timm's size names: embed_dim, depth, num_heads. */
const SIZES: Record<string, [number, number, number]> = {
  tiny: [192, 12, 3],
  small: [384, 12, 6],
  medium: [512, 12, 8],
  base: [768, 12, 12],
  large: [1024, 24, 16],
  huge: [1280, 32, 16],
};

/** The model behind a timm name (a `.tag` suffix is ignored); throws for names it does not know. */
export function timmModel(name: string): TimmModel {
  const arch = name.split(".")[0];
  const m = /^(deit3|vit|deit)_([a-z]+)_patch(\d+)_(\d+)$/.exec(arch);
  const size = m && SIZES[m[2]];
  if (!m || !size) {
    throw new Error(
      `--timm-model ${name}: not a timm ViT this converter knows; names look like ` +
        "deit3_{small,medium,base,large}_patch16_{224,384}, deit3_huge_patch14_224, " +
        "vit_{tiny,small,base,large}_patch16_{224,384} or deit_{tiny,small,base}_patch16_224 " +
        "(distilled models have a distillation token the original has no place for)",
    );
  }
  const family = m[1] as TimmModel["family"];
  const [dim, depth, heads] = size;
  return {
    name,
    family,
    dim,
    depth,
    heads,
    patch: Number(m[3]),
    imageSize: Number(m[4]),
    noEmbedClass: family === "deit3",
    layerScale: family === "deit3",
  };
}

/**
 * Checks a Flax model tree against `model`: throws naming the first thing timm's model cannot
 * hold (width, depth, patch size, missing layer scale); returns notes for the `timm.create_model`
 * arguments the checkpoint needs (img_size, num_classes, init_values) and the GELU.
 */
export function checkTimmModel(params: Tree, model: TimmModel, excludeHeads = false): string[] {
  const tree = isTree(params.model) ? params.model : params;
  const shape = (path: string[]): number[] | undefined => {
    let node: unknown = tree;
    for (const k of path) node = isTree(node) ? node[k] : undefined;
    return isHostTensor(node) ? [...node.shape] : undefined;
  };
  const fail = (what: string) => {
    throw new Error(`--timm-model ${model.name}: ${what}`);
  };
  const kernel = shape(["embed", "wte", "kernel"]);
  const wpe = shape(["embed", "wpe"]);
  if (!kernel || !wpe) return []; // flaxToTimm names what is missing
  const depth = Object.keys(tree).filter((k) => /^layer_\d+$/.test(k)).length;
  if (kernel[3] !== model.dim) fail(`width ${kernel[3]}, the timm model has ${model.dim}`);
  if (depth !== model.depth) fail(`${depth} blocks, the timm model has ${model.depth}`);
  if (kernel[0] !== model.patch) {
    fail(`patch size ${kernel[0]}, the timm model has ${model.patch}`);
  }
  const heads = shape(["layer_0", "attn", "wq", "kernel"])?.[1];
  if (heads !== undefined && heads !== model.heads) {
    fail(`${heads} attention heads, the timm model has ${model.heads}`);
  }
  const scaled = shape(["layer_0", "scale1"]) !== undefined;
  if (model.layerScale && !scaled) {
    fail(
      `the checkpoint has no layer scale (layerscale: false), which every deit3_* model has; ` +
        `use a vit_* or deit_* name (e.g. ${model.name.split(".")[0].replace(/^deit3_/, "vit_")})`,
    );
  }
  const args: string[] = [];
  const size = wpe[0] * model.patch;
  if (wpe[0] !== wpe[1]) fail(`a ${wpe[0]}x${wpe[1]} patch grid; timm's models are square`);
  if (size !== model.imageSize) args.push(`img_size=${size}`);
  const head = shape(["head", "kernel"]);
  if (excludeHeads || !head) args.push("num_classes=0");
  else if (head[1] !== 1000) args.push(`num_classes=${head[1]}`);
  if (scaled && !model.layerScale) args.push("init_values=1e-6");
  const notes: string[] = [];
  notes.push(
    `timm.create_model("${model.name}"${args.map((a) => `, ${a}`).join("")}) loads it ` +
      "strictly" +
      (args.includes("init_values=1e-6")
        ? " (init_values gives its blocks the layer scale the checkpoint has; any value works)"
        : ""),
  );
  return notes;
}

/**
 * The timm model that holds a checkpoint of this shape, and the `timm.create_model` arguments it
 * needs: DeiT-III (layer scale) -> `deit3_*`, DeiT -> `deit_*`. Undefined for widths timm has
 * no name for. Used for the README's table of the original's checkpoints.
 */
export function timmModelFor(
  m: { dim: number; layers: number; patchSize: number; imageSize: number; labels: number },
  layerscale: boolean,
): { name: string; args: string[] } | undefined {
  const size = Object.entries(SIZES).find(([, [d, depth]]) => d === m.dim && depth === m.layers)
    ?.[0];
  if (!size) return undefined;
  const name = `${layerscale ? "deit3" : "deit"}_${size}_patch${m.patchSize}_224`;
  const args: string[] = [];
  if (m.imageSize !== 224) args.push(`img_size=${m.imageSize}`);
  if (m.labels !== 1000) args.push(`num_classes=${m.labels}`);
  return { name, args };
}

/** The GELU note `convert` prints for a target format. */
export function geluNote(to: "timm" | "flax"): string {
  return to === "timm"
    ? "GELU: timm's ViTs compute exact (erf) GELU; the original trained with the tanh " +
      "approximation (this project's default, --gelu tanh), so in timm the logits move by 1e-4 to 1e-3"
    : "GELU: weights trained with timm expect exact (erf) GELU: evaluate or fine-tune them " +
      "here with --gelu exact (the default, tanh, moves logits by 1e-4 to 1e-3)";
}
