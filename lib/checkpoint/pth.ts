/**
 * PyTorch `.pth` files as `torch.save` writes them: a zip archive holding `data.pkl` (pickle
 * protocol 2: an `OrderedDict` of tensors rebuilt by `torch._utils._rebuild_tensor_v2`), one
 * `data/<key>` entry per storage, `version`, `byteorder`. Only globals that
 * `torch.load(weights_only=True)` accepts are written, so torch 1.13 and 2.x load the files.
 *
 * Reading runs the pickle with an allow-list and never executes anything; objects it does not
 * know (e.g. `argparse.Namespace` in training checkpoints) become opaque strings, so the tensors
 * can still be taken out. Storages go straight into tensor memory when the tensor covers them.
 */
import { concat } from "./msgpack_encode.ts";
import { allocArray } from "../ir/dtype.ts";
import { type HostTensor, numel, stridesOf } from "../ir/host_tensor.ts";
import { dense, stridedCopy } from "../ir/strided.ts";
import { checkedWrite, verifyChecksum } from "./checksum.ts";
import { asCheckpointError, CheckpointError, KeyedError } from "./errors.ts";
import { PickleWriter, unpickle, weightsOnlyGlobal } from "./pickle.ts";
import { decodeInto, dtypeName, type StoredType, storedType } from "./dtypes.ts";
import { allocTensor, tensorBytes } from "./tensor_bytes.ts";
import { isTree, type Leaf, type Tree, type TreeNode } from "./tree.ts";
import {
  bytesAccess,
  fileAccess,
  type RandomAccess,
  readZipDirectory,
  readZipEntry,
  type ZipEntry,
  ZipWriter,
} from "./zip.ts";

/** An ordered state dict: timm-style dotted names to tensors. */
export type StateDict = Map<string, HostTensor>;

export interface PthWriteOptions {
  /** Folder name inside the zip; torch uses the file's stem. */
  archiveName?: string;
  /** For tests: use ZIP64 records from this size/offset on (default 4 GiB). */
  zip64Threshold?: number;
}

/** Serialises a state dict to `.pth` bytes. */
export function writePth(
  state: StateDict | Record<string, HostTensor>,
  options: PthWriteOptions = {},
): Uint8Array {
  try {
    return concat([...encodePth(state, options)]);
  } catch (e) {
    throw asCheckpointError(e, "<state dict>");
  }
}

/** Writes a state dict to `path` atomically, streaming storages from memory. */
export async function writePthFile(
  path: string,
  state: StateDict | Record<string, HostTensor>,
  options: PthWriteOptions = {},
): Promise<void> {
  const archiveName = options.archiveName ?? archiveNameFor(path);
  try {
    await checkedWrite(path, encodePth(state, { ...options, archiveName }));
  } catch (e) {
    throw asCheckpointError(e, path);
  }
}

/** The `.pth` archive as a stream of pieces. */
export function* encodePth(
  state: StateDict | Record<string, HostTensor>,
  { archiveName = "archive", zip64Threshold }: PthWriteOptions = {},
): Generator<Uint8Array> {
  const entries = state instanceof Map ? [...state] : Object.entries(state);
  const storages: Uint8Array[] = [];
  const pickle = new PickleWriter();
  pickle.global("collections", "OrderedDict").op(0x29, 0x52); // OrderedDict()
  for (let i = 0; i < entries.length; i += 1000) {
    pickle.mark();
    for (const [key, t] of entries.slice(i, i + 1000)) {
      const storageClass = dtypeName("torch", t.dtype);
      if (!storageClass) {
        throw new KeyedError(key, `torch has no ${t.dtype} tensors; convert to i32 or f32 first`);
      }
      let bytes: Uint8Array;
      try {
        bytes = tensorBytes(t, key);
      } catch (e) {
        throw new KeyedError(key, (e as Error).message);
      }
      const storageKey = String(storages.length);
      storages.push(bytes);
      pickle.str(key);
      pickle.global("torch._utils", "_rebuild_tensor_v2").mark();
      pickle.mark().str("storage").global("torch", storageClass).str(storageKey).str("cpu")
        .int(t.data.length).op(0x74, 0x51); // TUPLE, BINPERSID
      pickle.int(0).ints(t.shape).ints(stridesOf(t.shape)).op(0x89); // offset, size, stride, False
      pickle.global("collections", "OrderedDict").op(0x29, 0x52); // backward hooks
      pickle.op(0x74, 0x52); // TUPLE, REDUCE
    }
    pickle.op(0x75); // SETITEMS
  }
  const zip = new ZipWriter({ align: 64, zip64Threshold });
  const text = (s: string) => new TextEncoder().encode(s);
  yield* zip.add(`${archiveName}/data.pkl`, pickle.finish());
  yield* zip.add(`${archiveName}/.format_version`, text("1"));
  yield* zip.add(`${archiveName}/.storage_alignment`, text("64"));
  yield* zip.add(`${archiveName}/byteorder`, text("little"));
  for (let i = 0; i < storages.length; i++) yield* zip.add(`${archiveName}/data/${i}`, storages[i]);
  yield* zip.add(`${archiveName}/version`, text("3\n"));
  yield* zip.finish();
}

/** Reads a `.pth` file: the pickled object as a tree (dicts are maps, tensors are leaves). */
export async function readPthFile(path: string): Promise<Tree> {
  let file: Deno.FsFile | undefined;
  try {
    await verifyChecksum(path);
    file = await Deno.open(path, { read: true });
    return await readPthFrom(fileAccess(file, (await file.stat()).size));
  } catch (e) {
    throw asCheckpointError(e, path);
  } finally {
    file?.close();
  }
}

/** Reads `.pth` bytes (see readPthFile). */
export async function readPth(bytes: Uint8Array, name = "<pth bytes>"): Promise<Tree> {
  try {
    return await readPthFrom(bytesAccess(bytes));
  } catch (e) {
    throw asCheckpointError(e, name);
  }
}

/**
 * The tensors of a model in a torch checkpoint: the top level if it holds tensors, else the first
 * of `model`, `state_dict`, `model_ema`, `module` that does. A DDP `module.` prefix is removed.
 */
export function stateDictOf(tree: Tree, name = "<pth>"): StateDict {
  const tensorsOf = (node: Tree): StateDict | undefined => {
    const out: StateDict = new Map();
    for (const [k, v] of Object.entries(node)) if (isTensor(v)) out.set(k, v);
    return out.size ? out : undefined;
  };
  let found = tensorsOf(tree);
  for (const key of ["model", "state_dict", "model_ema", "module"]) {
    if (found) break;
    const sub = tree[key];
    if (isTree(sub)) found = tensorsOf(sub);
  }
  if (!found) {
    throw new CheckpointError(
      name,
      undefined,
      `no tensors found (top-level keys: ${Object.keys(tree).join(", ")})`,
    );
  }
  if ([...found.keys()].every((k) => k.startsWith("module."))) {
    found = new Map([...found].map(([k, v]) => [k.slice(7), v]));
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Reading

interface StorageRef {
  kind: "storage";
  type: string;
  key: string;
  numel: number;
}

interface PendingTensor {
  kind: "tensor";
  storage: StorageRef;
  offset: number;
  size: number[];
  stride: number[];
}

interface Opaque {
  kind: "opaque";
  name: string;
}

/** Callables the unpickler may apply; anything else becomes an opaque placeholder. */
type Fn = { kind: "fn"; name: string };

async function readPthFrom(src: RandomAccess): Promise<Tree> {
  let entries: ZipEntry[];
  try {
    entries = await readZipDirectory(src);
  } catch (e) {
    const head = new Uint8Array(Math.min(2, src.size));
    await src.readAt(0, head);
    if (head[0] === 0x80) {
      throw new Error("legacy (pre-1.6, non-zip) torch format; re-save it with a recent torch");
    }
    throw new Error(`not a torch zip archive: ${(e as Error).message}`);
  }
  const pkl = entries.find((e) => e.name.endsWith("/data.pkl") && e.name.split("/").length === 2);
  if (!pkl) throw new Error("no data.pkl in the archive: not a torch checkpoint");
  const prefix = pkl.name.slice(0, -"data.pkl".length);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const order = byName.get(`${prefix}byteorder`);
  if (order) {
    const text = new TextDecoder().decode(await readZipEntry(src, order));
    if (text !== "little") {
      throw new Error(`byteorder "${text}" is not supported (little-endian only)`);
    }
  }
  // The pickle holds only the structure (names, shapes, storage keys; the tensors' bytes are
  // other entries), a few KiB per entry at most: a larger one is refused before it is read.
  const maxPickle = PICKLE_BASE_BYTES + PICKLE_BYTES_PER_ENTRY * entries.length;
  if (pkl.size > maxPickle) {
    throw new Error(
      `${pkl.name} is ${pkl.size} bytes, more than the ${maxPickle} a checkpoint of ` +
        `${entries.length} entries can need (its tensors are stored apart): not a torch checkpoint`,
    );
  }
  const pending: PendingTensor[] = [];
  const pickle = await readZipEntry(src, pkl);
  const root = unpickle(pickle, {
    findClass: (module, name) => ({ kind: "fn", name: weightsOnlyGlobal(module, name) }) as Fn,
    persistentLoad: (pid) => storageRef(pid),
    call: (fn, args) => apply(fn as Fn | Opaque, args, pending),
    build: (obj) => obj, // parameter/tensor state (hooks, requires_grad): ignored
  });
  const tensors = await materialize(src, prefix, byName, pending);
  // Shared references (memo) let a few bytes name a structure exponentially large when walked
  // ("billion laughs"); a checkpoint describes each value it holds with at least one opcode.
  const budget = { left: 4 * pickle.length + 1024 };
  const tree = toTree(root, tensors, "", budget);
  if (!isTree(tree)) throw new Error("the pickled object is not a dict");
  return tree;
}

function storageRef(pid: unknown): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
    throw new Error(`unexpected persistent id ${JSON.stringify(pid)}`);
  }
  const [, type, key, , count] = pid as [string, Fn, string, string, number];
  const name = type?.name?.replace(/^torch\./, "");
  if (!name || !storedType("torch", name)) {
    throw new Error(`unsupported storage type ${type?.name}`);
  }
  return { kind: "storage", type: name, key: String(key), numel: Number(count) };
}

function apply(fn: Fn | Opaque, args: unknown[], pending: PendingTensor[]): unknown {
  const name = fn.name;
  switch (name) {
    case "collections.OrderedDict":
    case "builtins.dict":
      return new Map();
    case "torch._utils._rebuild_tensor_v2":
    case "torch._utils._rebuild_tensor": {
      const [storage, offset, size, stride] = args as [StorageRef, number, number[], number[]];
      if (storage?.kind !== "storage") throw new Error(`${name}: first argument is not a storage`);
      const t: PendingTensor = {
        kind: "tensor",
        storage,
        offset,
        size: [...size],
        stride: [...stride],
      };
      pending.push(t);
      return t;
    }
    case "torch._utils._rebuild_parameter":
    case "torch._utils._rebuild_parameter_with_state":
      return args[0];
    case "torch.Size":
      return args[0];
    case "_codecs.encode": {
      const [s] = args as [string];
      return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
    }
    default:
      return { kind: "opaque", name } as Opaque;
  }
}

async function materialize(
  src: RandomAccess,
  prefix: string,
  byName: Map<string, ZipEntry>,
  pending: PendingTensor[],
): Promise<Map<PendingTensor, HostTensor>> {
  const out = new Map<PendingTensor, HostTensor>();
  const shared = new Map<string, Uint8Array>();
  const entryOf = (ref: StorageRef) => {
    const e = byName.get(`${prefix}data/${ref.key}`);
    if (!e) {
      throw new Error(`storage ${ref.key}: no entry "${prefix}data/${ref.key}" in the archive`);
    }
    const spec = storedType("torch", ref.type)!;
    if (e.size !== ref.numel * spec.itemBytes) {
      throw new Error(`storage ${ref.key}: ${e.size} bytes for ${ref.numel} ${ref.type} elements`);
    }
    return e;
  };
  const useCount = new Map<string, number>();
  for (const t of pending) useCount.set(t.storage.key, (useCount.get(t.storage.key) ?? 0) + 1);
  for (const t of pending) {
    const spec = storedType("torch", t.storage.type)!;
    const n = numel(t.size);
    const entry = entryOf(t.storage);
    const contiguous = t.offset === 0 && n === t.storage.numel &&
      t.size.every((d, i) => d === 1 || t.stride[i] === stridesOf(t.size)[i]);
    if (contiguous && !spec.convert && useCount.get(t.storage.key) === 1) {
      const { tensor, bytes } = allocTensor(t.size, spec.dtype);
      await readZipEntry(src, entry, bytes);
      out.set(t, tensor);
      continue;
    }
    let raw = shared.get(t.storage.key);
    if (!raw) {
      raw = await readZipEntry(src, entry);
      shared.set(t.storage.key, raw);
    }
    out.set(t, gather(raw, spec, t));
  }
  return out;
}

/**
 * Copies a strided view out of a storage: the span of elements it reaches is decoded (converted
 * if the storage type is not ours), then the view copied out of it.
 */
function gather(raw: Uint8Array, spec: StoredType, t: PendingTensor): HostTensor {
  const ints = [t.offset, ...t.size, ...t.stride];
  if (t.size.length !== t.stride.length || !ints.every(Number.isSafeInteger)) {
    throw new Error(
      `tensor view of storage ${t.storage.key}: offset ${t.offset}, size [${t.size}], ` +
        `stride [${t.stride}] are not a view`,
    );
  }
  const { tensor } = allocTensor(t.size, spec.dtype);
  if (tensor.data.length === 0) return tensor;
  let lo = t.offset, hi = t.offset;
  t.size.forEach((n, d) => {
    const reach = t.stride[d] * (n - 1);
    if (reach < 0) lo += reach;
    else hi += reach;
  });
  if (lo < 0 || hi >= t.storage.numel) {
    throw new Error(`tensor view reaches outside storage ${t.storage.key}`);
  }
  const span = allocArray(spec.dtype, hi - lo + 1);
  decodeInto(spec, raw.subarray(lo * spec.itemBytes, (hi + 1) * spec.itemBytes), span);
  const from = { data: span, offset: t.offset - lo, strides: t.stride };
  stridedCopy(t.size, from, dense(tensor.data, t.size));
  return tensor;
}

/** Bytes a data.pkl may take: the fixed part and the part per archive entry. */
const PICKLE_BASE_BYTES = 1 << 16;
const PICKLE_BYTES_PER_ENTRY = 1 << 12;

function toTree(
  x: unknown,
  tensors: Map<PendingTensor, HostTensor>,
  path: string,
  budget: { left: number },
): TreeNode {
  if (--budget.left < 0) {
    throw new Error(
      `the pickle's shared references describe more values than the file can hold (at ` +
        `${path || "the top"}): a "billion laughs" pickle, not a checkpoint`,
    );
  }
  if (x instanceof Map) {
    const out: Tree = {};
    for (const [k, v] of x) {
      const key = String(k);
      Object.defineProperty(out, key, {
        value: toTree(v, tensors, path ? `${path}/${key}` : key, budget),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  if (Array.isArray(x)) {
    const items = x.map((v, i) => toTree(v, tensors, `${path}/${i}`, budget));
    if (items.every((v) => !isTree(v) && !isTensor(v))) return items as Leaf;
    return Object.fromEntries(items.map((v, i) => [String(i), v]));
  }
  if (x && typeof x === "object") {
    const o = x as PendingTensor | Opaque | Fn;
    if (o.kind === "tensor") return tensors.get(o)!;
    if (o.kind === "opaque" || o.kind === "fn") return `<python object ${o.name}>`;
    if (x instanceof Uint8Array) return x;
  }
  if (x === undefined) return null;
  return x as Leaf;
}

function isTensor(x: unknown): x is HostTensor {
  return !!x && typeof x === "object" && "shape" in x && "dtype" in x &&
    ArrayBuffer.isView((x as HostTensor).data);
}

function archiveNameFor(path: string): string {
  const base = path.split(/[\\/]/).pop() ?? "archive";
  const stem = base.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_.-]/g, "_");
  return stem || "archive";
}
