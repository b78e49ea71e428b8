/**
 * Checkpoint conversion between Flax msgpack (deit3-jax names), PyTorch .pth and safetensors
 * (timm names), for local paths and gs:// URLs. Used by `deno task convert`.
 */
import type { HostTensor } from "../ir/host_tensor.ts";
import { CheckpointError } from "./errors.ts";
import { encodeFlaxMsgpack, readFlaxMsgpackFile } from "./flax_msgpack.ts";
import { encodePth, readPthFile, type StateDict, stateDictOf } from "./pth.ts";
import { encodeSafetensors, readSafetensorsFile } from "./safetensors.ts";
import { withLocalInput, writeOutput } from "./storage.ts";
import { flaxToTimm, timmToFlax } from "./timm.ts";
import { checkTimmModel, geluNote, type TimmModel, timmModel } from "./timm_models.ts";
import { isTree, tensorLeaves, type Tree, unflattenTree } from "./tree.ts";

export type Format = "msgpack" | "pth" | "safetensors";

export interface ConvertOptions {
  input: string;
  to?: Format;
  out?: string;
  excludeHeads?: boolean;
  numHeads?: number;
  /** Write the layout of this timm model (`deit3_small_patch16_224`), checked against it. */
  timmModel?: string;
}

export interface ConvertResult {
  out: string;
  from: Format;
  to: Format;
  tensors: number;
  bytes: number;
  /** What the user should know: values not kept bit for bit, timm arguments, the GELU. */
  notes: string[];
}

/** Converts `input` and writes the result (atomically; nothing is written on failure). */
export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertResult> {
  const { input, excludeHeads = false, numHeads } = options;
  const target = options.timmModel === undefined ? undefined : timmModel(options.timmModel);
  return await withLocalInput(input, async (local) => {
    const from = await detectFormat(input, local);
    const to = options.to ?? (from === "msgpack" ? "pth" : "msgpack");
    if (target && to === "msgpack") {
      throw new CheckpointError(
        input,
        undefined,
        "--timm-model names the layout of a .pth or safetensors output, not of --to msgpack",
      );
    }
    const notes: string[] = [];
    const out = options.out ?? replaceExtension(input, EXTENSION[to]);
    if (out === input) {
      throw new CheckpointError(
        input,
        undefined,
        "the output would overwrite the input; pass --out",
      );
    }
    const fail = (e: unknown) => {
      if (e instanceof CheckpointError) {
        return e.file === local ? new CheckpointError(input, e.key, e.problem) : e;
      }
      return new CheckpointError(input, undefined, (e as Error).message);
    };
    let pieces: Iterable<Uint8Array>;
    let tensors: number;
    try {
      if (to === "msgpack") {
        const tree = await readAsFlax(local, from, { excludeHeads, numHeads, notes });
        tensors = tensorLeaves(tree).size;
        pieces = encodeFlaxMsgpack(tree);
      } else {
        const sd = await readAsTimm(local, from, { excludeHeads, numHeads, target, notes });
        tensors = sd.size;
        pieces = to === "pth"
          ? encodePth(sd, { archiveName: archiveName(out) })
          : encodeSafetensors(sd, { format: "pt" });
      }
    } catch (e) {
      throw fail(e);
    }
    let bytes = 0;
    const counted = (function* () {
      for (const p of pieces) {
        bytes += p.length;
        yield p;
      }
    })();
    try {
      await writeOutput(out, counted);
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(out, (e as { key?: string }).key, (e as Error).message);
    }
    return { out, from, to, tensors, bytes, notes };
  });
}

/** Format from the extension, else from the first bytes. */
export async function detectFormat(name: string, local: string): Promise<Format> {
  const ext = name.toLowerCase().match(/\.([a-z0-9]+)$/)?.[1] ?? "";
  if (ext === "msgpack") return "msgpack";
  if (ext === "pth" || ext === "pt" || ext === "bin" || ext === "ckpt") return "pth";
  if (ext === "safetensors") return "safetensors";
  let head: Uint8Array;
  try {
    const file = await Deno.open(local);
    head = new Uint8Array(9);
    const n = (await file.read(head)) ?? 0;
    file.close();
    head = head.subarray(0, n);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CheckpointError(name, undefined, "file not found");
    }
    throw e;
  }
  if (head[0] === 0x50 && head[1] === 0x4b) return "pth"; // "PK": a zip archive
  if (head.length === 9 && head[8] === 0x7b) return "safetensors"; // length, then "{"
  return "msgpack";
}

/**
 * Refuses a checkpoint that is not Flax msgpack (a `.pth` or safetensors file given where a Flax
 * checkpoint is read), naming the format and the `convert` command that makes one.
 */
export async function requireFlaxFormat(name: string, local: string): Promise<void> {
  const format = await detectFormat(name, local);
  if (format === "msgpack") return;
  const what = format === "pth" ? "a PyTorch .pth file" : "a safetensors file";
  throw new CheckpointError(
    name,
    undefined,
    `${what}, not a Flax msgpack checkpoint: convert it first with ` +
      `\`deno task convert ${name} --to msgpack\``,
  );
}

const EXTENSION: Record<Format, string> = {
  msgpack: ".msgpack",
  pth: ".pth",
  safetensors: ".safetensors",
};

async function readAsFlax(
  local: string,
  from: Format,
  { excludeHeads, numHeads, notes }: { excludeHeads: boolean; numHeads?: number; notes: string[] },
): Promise<Tree> {
  if (from === "msgpack") {
    const tree = paramsOf(await readFlaxMsgpackFile(local));
    if (excludeHeads && isTree(tree.model)) {
      const model = { ...tree.model };
      delete model.head;
      return { ...tree, model };
    }
    return tree;
  }
  const sd = from === "pth"
    ? stateDictOf(await readPthFile(local), local)
    : (await readSafetensorsFile(local)).tensors;
  if ([...sd.keys()].every((k) => k.startsWith("model."))) {
    // Flax names flattened with "." (e.g. a safetensors export of the Flax tree)
    const tree = unflattenTree(sd as Map<string, HostTensor>, { sep: "." });
    if (excludeHeads) delete (tree.model as Tree).head;
    return tree;
  }
  const tree = timmToFlax(sd, { numHeads, excludeHeads, notes });
  notes.push(geluNote("flax"));
  return tree;
}

async function readAsTimm(
  local: string,
  from: Format,
  { excludeHeads, numHeads, target, notes }: {
    excludeHeads: boolean;
    numHeads?: number;
    target?: TimmModel;
    notes: string[];
  },
): Promise<StateDict> {
  let tree: Tree;
  if (from === "msgpack") {
    tree = paramsOf(await readFlaxMsgpackFile(local));
  } else {
    let sd = from === "pth"
      ? stateDictOf(await readPthFile(local), local)
      : (await readSafetensorsFile(local)).tensors;
    if ([...sd.keys()].every((k) => k.startsWith("model."))) {
      tree = unflattenTree(sd as Map<string, HostTensor>, { sep: "." });
    } else if (target) {
      // timm names already: rewritten through the Flax tree into the named model's layout.
      tree = timmToFlax(sd, { numHeads: numHeads ?? target.heads, notes });
    } else {
      if (excludeHeads) sd = new Map([...sd].filter(([k]) => !k.startsWith("head.")));
      return sd;
    }
  }
  if (target) notes.push(...checkTimmModel(tree, target, excludeHeads));
  notes.push(geluNote("timm"));
  return flaxToTimm(tree, { excludeHeads, noEmbedClass: target?.noEmbedClass ?? false });
}

/**
 * The parameters in a Flax checkpoint (path or gs:// URL): a params file, or a training state's
 * params. A `.pth` or safetensors file is refused with the `convert` command to use; errors name
 * `url`.
 */
export async function readFlaxParams(url: string): Promise<Tree> {
  return await withLocalInput(url, async (path) => {
    await requireFlaxFormat(url, path);
    try {
      return paramsOf(await readFlaxMsgpackFile(path));
    } catch (e) {
      if (e instanceof CheckpointError) throw new CheckpointError(url, e.key, e.problem);
      throw e;
    }
  });
}

/** The params of a training-state file ({params: {model}}), or the tree itself. */
function paramsOf(tree: Tree): Tree {
  return !isTree(tree.model) && isTree(tree.params) && isTree(tree.params.model)
    ? tree.params
    : tree;
}

function replaceExtension(url: string, ext: string): string {
  const slash = url.lastIndexOf("/");
  const dot = url.lastIndexOf(".");
  return (dot > slash ? url.slice(0, dot) : url) + ext;
}

function archiveName(out: string): string {
  const base = out.split("/").pop() ?? "archive";
  return base.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_.-]/g, "_") || "archive";
}
