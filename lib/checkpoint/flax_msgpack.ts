/**
 * Flax msgpack checkpoints, compatible with `flax.serialization.msgpack_serialize/restore`:
 * nested maps whose array leaves are msgpack ext type 1 holding `[shape, dtype_name, raw_bytes]`
 * (C order, little endian). Writing sorts keys like Flax (which flattens through JAX, which sorts
 * dict keys) and encodes headers like msgpack-python, so read-then-write is byte-identical.
 *
 * dtypes: float32, int32, uint32, uint8, bool and bfloat16 (kept as raw bits, dtype "bf16")
 * round-trip exactly. float16 is read and widened to f32 (written back as float32). Arrays over
 * 1 GiB are split into Flax's `__msgpack_chunked_array__` form on write and joined on read.
 * Non-tensor leaves (Python ints, floats, str, None, lists) read as plain values.
 */
import { type HostTensor, isHostTensor, numel } from "../ir/host_tensor.ts";
import {
  type Cursor,
  type Parser,
  readBytes,
  readU16,
  readU32,
  readU8,
  runAsync,
  runSync,
} from "./byte_source.ts";
import { checkedWrite, verifyChecksum } from "./checksum.ts";
import { asCheckpointError, KeyedError } from "./errors.ts";
import {
  arrayHeader,
  binHeader,
  concat,
  encodeFloat64,
  encodeInt,
  encodeStr,
  extHeader,
  mapHeader,
} from "./msgpack_encode.ts";
import { decodeInto, dtypeName, storedNames, storedType } from "./dtypes.ts";
import { allocTensor, tensorBytes } from "./tensor_bytes.ts";
import { compareCodePoints, isTree, type PlainValue, type Tree, type TreeNode } from "./tree.ts";

/** Parses Flax msgpack bytes. `name` labels errors (a file name or URL). */
export function readFlaxMsgpack(bytes: Uint8Array, name = "<msgpack bytes>"): Tree {
  const ctx = newContext(bytes.length);
  try {
    const value = runSync(parseNode(ctx), bytes, ctx.cursor);
    if (ctx.cursor.position !== bytes.length) {
      throw new Error(
        `${bytes.length - ctx.cursor.position} bytes of garbage after the msgpack value`,
      );
    }
    return asTopTree(value);
  } catch (e) {
    throw asCheckpointError(e, name, ctx.path.join("/") || undefined);
  }
}

/** Reads a Flax msgpack file piece by piece: tensors are read straight into their storage. */
export async function readFlaxMsgpackFile(path: string): Promise<Tree> {
  let file: Deno.FsFile | undefined;
  let ctx: ReadContext | undefined;
  try {
    await verifyChecksum(path);
    file = await Deno.open(path, { read: true });
    ctx = newContext((await file.stat()).size);
    const { value, trailing } = await runAsync(parseNode(ctx), file, ctx.cursor);
    if (trailing) {
      throw new Error(`garbage after the msgpack value (at byte ${ctx.cursor.position})`);
    }
    return asTopTree(value);
  } catch (e) {
    throw asCheckpointError(e, path, ctx?.path.join("/") || undefined);
  } finally {
    file?.close();
  }
}

/** Serialises `tree` exactly as `flax.serialization.msgpack_serialize` does. */
export function writeFlaxMsgpack(tree: Tree): Uint8Array {
  try {
    return concat([...encodeFlaxMsgpack(tree)]);
  } catch (e) {
    throw asCheckpointError(e, "<tree>");
  }
}

/** Writes `tree` to `path` atomically, streaming tensor bytes from memory (no full copy). */
export async function writeFlaxMsgpackFile(path: string, tree: Tree): Promise<void> {
  try {
    await checkedWrite(path, encodeFlaxMsgpack(tree));
  } catch (e) {
    throw asCheckpointError(e, path);
  }
}

/**
 * The serialised bytes as a sequence of pieces (headers, then views of tensor storage), for
 * streaming writers. Keys are sorted by code point, as Flax writes them.
 */
export function* encodeFlaxMsgpack(
  tree: Tree,
  { maxChunkBytes = MAX_CHUNK_BYTES }: { maxChunkBytes?: number } = {},
): Generator<Uint8Array> {
  yield* encodeNode(tree, "", maxChunkBytes);
}

export { NUMPY_DTYPE } from "./dtypes.ts";

/** Flax splits arrays larger than this (in bytes) into chunks (msgpack's 2 GiB object limit). */
export const MAX_CHUNK_BYTES = 2 ** 30;

// ---------------------------------------------------------------------------------------------
// Reading

interface ReadContext {
  path: string[];
  cursor: Cursor;
  size: number;
}

function newContext(size: number): ReadContext {
  return { path: [], cursor: { position: 0 }, size };
}

function asTopTree(value: TreeNode): Tree {
  if (!isTree(value)) throw new Error("the top level is not a map of named entries");
  return value;
}

function* parseNode(ctx: ReadContext): Parser<TreeNode> {
  const at = ctx.cursor.position;
  const t = yield* readU8();
  if (t <= 0x7f) return t;
  if (t >= 0xe0) return t - 0x100;
  if ((t & 0xf0) === 0x80) return yield* parseMap(ctx, t & 0x0f);
  if ((t & 0xf0) === 0x90) return yield* parseArray(ctx, t & 0x0f);
  if ((t & 0xe0) === 0xa0) return utf8(yield* readBytes(t & 0x1f));
  switch (t) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return (yield* readBytes(yield* readU8())).slice();
    case 0xc5:
      return (yield* readBytes(yield* readU16())).slice();
    case 0xc6:
      return (yield* readBytes(checkLength(ctx, yield* readU32()))).slice();
    case 0xc7:
      return yield* parseExt(ctx, yield* readU8());
    case 0xc8:
      return yield* parseExt(ctx, yield* readU16());
    case 0xc9:
      return yield* parseExt(ctx, checkLength(ctx, yield* readU32()));
    case 0xca:
      return view(yield* readBytes(4)).getFloat32(0);
    case 0xcb:
      return view(yield* readBytes(8)).getFloat64(0);
    case 0xcc:
      return yield* readU8();
    case 0xcd:
      return yield* readU16();
    case 0xce:
      return yield* readU32();
    case 0xcf:
      return safeNumber(view(yield* readBytes(8)).getBigUint64(0));
    case 0xd0:
      return view(yield* readBytes(1)).getInt8(0);
    case 0xd1:
      return view(yield* readBytes(2)).getInt16(0);
    case 0xd2:
      return view(yield* readBytes(4)).getInt32(0);
    case 0xd3:
      return safeNumber(view(yield* readBytes(8)).getBigInt64(0));
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return yield* parseExt(ctx, 1 << (t - 0xd4));
    case 0xd9:
      return utf8(yield* readBytes(yield* readU8()));
    case 0xda:
      return utf8(yield* readBytes(yield* readU16()));
    case 0xdb:
      return utf8(yield* readBytes(checkLength(ctx, yield* readU32())));
    case 0xdc:
      return yield* parseArray(ctx, yield* readU16());
    case 0xdd:
      return yield* parseArray(ctx, checkLength(ctx, yield* readU32()));
    case 0xde:
      return yield* parseMap(ctx, yield* readU16());
    case 0xdf:
      return yield* parseMap(ctx, checkLength(ctx, yield* readU32()));
  }
  throw new Error(`not msgpack: invalid format byte 0x${t.toString(16)} at byte ${at}`);
}

function* parseMap(ctx: ReadContext, n: number): Parser<TreeNode> {
  const out: Tree = {};
  for (let i = 0; i < n; i++) {
    const at = ctx.cursor.position;
    const key = yield* parseNode(ctx);
    if (typeof key !== "string") {
      throw new Error(`map key at byte ${at} is not a string (${describe(key)})`);
    }
    if (Object.hasOwn(out, key)) throw new Error(`duplicate key "${key}" at byte ${at}`);
    ctx.path.push(key);
    const value = yield* parseNode(ctx);
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
    ctx.path.pop();
  }
  if (out.__msgpack_chunked_array__ === true) return unchunk(out);
  return out;
}

function* parseArray(ctx: ReadContext, n: number): Parser<TreeNode> {
  const out: TreeNode[] = [];
  for (let i = 0; i < n; i++) {
    ctx.path.push(String(i));
    out.push(yield* parseNode(ctx));
    ctx.path.pop();
  }
  if (out.some((x) => isTree(x) || isHostTensor(x))) {
    throw new Error("lists of arrays or maps are not supported; Flax state dicts use maps");
  }
  return out as PlainValue[];
}

/** Ext type 1 (ndarray) and 3 (numpy scalar, read as a shape [] tensor). */
function* parseExt(ctx: ReadContext, length: number): Parser<TreeNode> {
  const type = yield* readU8();
  if (type !== 1 && type !== 3) {
    throw new Error(`unsupported msgpack ext type ${type} (Flax arrays use type 1)`);
  }
  const start = ctx.cursor.position;
  const tensor = yield* parseNdarray(ctx, length);
  const used = ctx.cursor.position - start;
  if (used !== length) {
    throw new Error(`array record is ${length} bytes but its content is ${used} bytes (corrupt)`);
  }
  return tensor;
}

function* parseNdarray(ctx: ReadContext, length: number): Parser<HostTensor> {
  const bad = (why: string) => new Error(`corrupt array record (${length} bytes): ${why}`);
  if ((yield* readU8()) !== 0x93) throw bad("not a [shape, dtype, bytes] triple");
  const shape = yield* parseNode(ctx);
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw bad(`shape ${describe(shape)} is not a list of sizes`);
  }
  let name = yield* parseNode(ctx);
  if (name instanceof Uint8Array) name = utf8(name);
  if (typeof name !== "string") throw bad(`dtype ${describe(name)} is not a name`);
  const kind = storedType("numpy", name);
  if (kind === undefined) {
    throw new Error(
      `unsupported dtype "${name}" (supported: ${storedNames("numpy").join(", ")})`,
    );
  }
  const binType = yield* readU8();
  const n = binType === 0xc4
    ? yield* readU8()
    : binType === 0xc5
    ? yield* readU16()
    : binType === 0xc6
    ? yield* readU32()
    : -1;
  if (n < 0) throw bad("the data is not a byte string");
  const dims = shape as number[];
  const expected = numel(dims) * kind.itemBytes;
  if (n !== expected) {
    throw bad(`shape [${dims}] ${name} needs ${expected} bytes, the record holds ${n}`);
  }
  checkLength(ctx, n);
  const { tensor, bytes } = allocTensor(dims, kind.dtype);
  const into = kind.convert ? new Uint8Array(n) : bytes; // float16: widened to f32 below
  if (n > 0) yield { into };
  if (kind.convert) decodeInto(kind, into, tensor.data);
  return tensor;
}

/** Refuses a length that runs past the end of the input before allocating for it. */
function checkLength(ctx: ReadContext, n: number): number {
  const left = ctx.size - ctx.cursor.position;
  if (n > left) {
    throw new Error(
      `a ${n}-byte item at byte ${ctx.cursor.position} runs past the end of the data (${left} bytes left): truncated file?`,
    );
  }
  return n;
}

function unchunk(node: Tree): HostTensor {
  const shapeMap = node.shape, chunkMap = node.chunks;
  if (!isTree(shapeMap) || !isTree(chunkMap)) {
    throw new Error("corrupt chunked array: no shape or chunks");
  }
  const shape = indexed(shapeMap).map((d) => {
    if (typeof d !== "number") throw new Error("corrupt chunked array: bad shape");
    return d;
  });
  const chunks = indexed(chunkMap).map((c) => {
    if (!isHostTensor(c)) throw new Error("corrupt chunked array: a chunk is not an array");
    return c;
  });
  const dtype = chunks[0]?.dtype ?? "f32";
  const { tensor, bytes } = allocTensor(shape, dtype);
  let off = 0;
  for (const c of chunks) {
    const b = new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength);
    if (c.dtype !== dtype || off + b.length > bytes.length) {
      throw new Error("corrupt chunked array: chunks do not match the shape");
    }
    bytes.set(b, off);
    off += b.length;
  }
  if (off !== bytes.length) throw new Error("corrupt chunked array: chunks do not fill the shape");
  return tensor;
}

/** Values of a {"0": a, "1": b, ...} map in index order (Flax's tuple encoding). */
function indexed(node: Tree): TreeNode[] {
  const n = Object.keys(node).length;
  return Array.from({ length: n }, (_, i) => {
    if (!Object.hasOwn(node, String(i))) throw new Error(`corrupt chunked array: no entry "${i}"`);
    return node[String(i)];
  });
}

// ---------------------------------------------------------------------------------------------
// Writing

function* encodeNode(node: TreeNode, path: string, maxChunk: number): Generator<Uint8Array> {
  if (isHostTensor(node)) {
    yield* encodeTensor(node, path, maxChunk);
  } else if (isTree(node)) {
    const keys = Object.keys(node).sort(compareCodePoints);
    yield mapHeader(keys.length);
    for (const k of keys) {
      yield encodeStr(k);
      yield* encodeNode(node[k], path ? `${path}/${k}` : k, maxChunk);
    }
  } else {
    yield encodePlain(node, path);
  }
}

function* encodeTensor(t: HostTensor, path: string, maxChunk: number): Generator<Uint8Array> {
  let data: Uint8Array;
  try {
    data = tensorBytes(t, path);
  } catch (e) {
    throw new KeyedError(path, (e as Error).message);
  }
  if (data.length > maxChunk) {
    yield* encodeChunked(t, data, maxChunk);
    return;
  }
  yield* encodeNdarray(t.shape, numpyName(t), data);
}

/** numpy's name for `t`'s dtype (every DType has one; tensorBytes has checked the dtype). */
function numpyName(t: HostTensor): string {
  return dtypeName("numpy", t.dtype)!;
}

function* encodeNdarray(
  shape: number[],
  dtypeName: string,
  data: Uint8Array,
): Generator<Uint8Array> {
  const prefix = concat([
    arrayHeader(3),
    arrayHeader(shape.length),
    ...shape.map(encodeInt),
    encodeStr(dtypeName),
    binHeader(data.length),
  ]);
  yield extHeader(1, prefix.length + data.length);
  yield prefix;
  yield data;
}

/** Flax's layout: {__msgpack_chunked_array__: true, shape: {"0": ..}, chunks: {"0": ..}}, unsorted. */
function* encodeChunked(t: HostTensor, data: Uint8Array, maxChunk: number): Generator<Uint8Array> {
  const itemBytes = data.length / t.data.length;
  const chunkBytes = Math.max(1, Math.floor(maxChunk / itemBytes)) * itemBytes;
  const nChunks = Math.ceil(data.length / chunkBytes);
  yield mapHeader(3);
  yield encodeStr("__msgpack_chunked_array__");
  yield Uint8Array.of(0xc3);
  yield encodeStr("shape");
  yield mapHeader(t.shape.length);
  for (let i = 0; i < t.shape.length; i++) {
    yield encodeStr(String(i));
    yield encodeInt(t.shape[i]);
  }
  yield encodeStr("chunks");
  yield mapHeader(nChunks);
  for (let i = 0; i < nChunks; i++) {
    const part = data.subarray(i * chunkBytes, Math.min(data.length, (i + 1) * chunkBytes));
    yield encodeStr(String(i));
    yield* encodeNdarray([part.length / itemBytes], numpyName(t), part);
  }
}

function encodePlain(v: PlainValue, path: string): Uint8Array {
  if (v === null) return Uint8Array.of(0xc0);
  if (typeof v === "boolean") return Uint8Array.of(v ? 0xc3 : 0xc2);
  if (typeof v === "bigint") return encodeInt(v);
  if (typeof v === "number") return Number.isInteger(v) ? encodeInt(v) : encodeFloat64(v);
  if (typeof v === "string") return encodeStr(v);
  if (v instanceof Uint8Array) return concat([binHeader(v.length), v]);
  if (Array.isArray(v)) {
    return concat([arrayHeader(v.length), ...v.map((x, i) => encodePlain(x, `${path}/${i}`))]);
  }
  throw new KeyedError(path, `cannot serialise a ${describe(v)}`);
}

// ---------------------------------------------------------------------------------------------

const DECODER = new TextDecoder("utf-8", { fatal: true });

function utf8(b: Uint8Array): string {
  return DECODER.decode(b);
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function safeNumber(x: bigint): number | bigint {
  return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(x)
    : x;
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "list";
  if (x instanceof Uint8Array) return "bytes";
  return typeof x === "object" ? (isHostTensor(x) ? "array" : "map") : `${typeof x} ${String(x)}`;
}
