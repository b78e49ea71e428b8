/**
 * safetensors files: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}` padded with
 * spaces to a multiple of 8, then the tensor bytes. Written like the reference library does:
 * tensors ordered by element size (largest first) then name, so every tensor stays aligned.
 *
 * dtypes: F32, BF16, I32, U32, U8, BOOL round-trip; F16 and F64 read as f32, I64/I16/I8 read as
 * i32 (I64 values must fit).
 */
import { concat } from "./msgpack_encode.ts";
import { byteSize } from "../ir/dtype.ts";
import { type HostTensor, numel } from "../ir/host_tensor.ts";
import { checkedWrite, verifyChecksum } from "./checksum.ts";
import { asCheckpointError, KeyedError } from "./errors.ts";
import { decodeInto, dtypeName, storedType } from "./dtypes.ts";
import { allocTensor, tensorBytes } from "./tensor_bytes.ts";
import { bytesAccess, fileAccess, type RandomAccess } from "./zip.ts";

export interface Safetensors {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

/** Serialises tensors (and optional string metadata) to safetensors bytes. */
export function writeSafetensors(
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  try {
    return concat([...encodeSafetensors(tensors, metadata)]);
  } catch (e) {
    throw asCheckpointError(e, "<tensors>");
  }
}

/** Writes a safetensors file atomically, streaming tensor bytes from memory. */
export async function writeSafetensorsFile(
  path: string,
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  try {
    await checkedWrite(path, encodeSafetensors(tensors, metadata));
  } catch (e) {
    throw asCheckpointError(e, path);
  }
}

/** The file as a stream of pieces: length, header, then each tensor's bytes. */
export function* encodeSafetensors(
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Generator<Uint8Array> {
  const entries = [...(tensors instanceof Map ? tensors : Object.entries(tensors))];
  const items = entries.map(([name, t]) => {
    if (name === "__metadata__") throw new KeyedError(name, "reserved name");
    let bytes: Uint8Array;
    try {
      bytes = tensorBytes(t, name);
    } catch (e) {
      throw new KeyedError(name, (e as Error).message);
    }
    return { name, t, dtype: dtypeName("safetensors", t.dtype)!, bytes };
  });
  items.sort((a, b) =>
    byteSize(b.t.dtype) - byteSize(a.t.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new KeyedError(`__metadata__/${k}`, "metadata values must be strings");
      }
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const it of items) {
    header[it.name] = {
      dtype: it.dtype,
      shape: it.t.shape,
      data_offsets: [offset, offset + it.bytes.length],
    };
    offset += it.bytes.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
  yield len;
  yield json;
  for (const it of items) yield it.bytes;
}

/** Reads a safetensors file; each tensor goes straight from the file into its storage. */
export async function readSafetensorsFile(path: string): Promise<Safetensors> {
  let file: Deno.FsFile | undefined;
  try {
    await verifyChecksum(path);
    file = await Deno.open(path, { read: true });
    return await readFrom(fileAccess(file, (await file.stat()).size));
  } catch (e) {
    throw asCheckpointError(e, path, (e as { key?: string }).key);
  } finally {
    file?.close();
  }
}

/** Reads safetensors bytes. */
export async function readSafetensors(
  bytes: Uint8Array,
  name = "<safetensors bytes>",
): Promise<Safetensors> {
  try {
    return await readFrom(bytesAccess(bytes));
  } catch (e) {
    throw asCheckpointError(e, name, (e as { key?: string }).key);
  }
}

async function readFrom(src: RandomAccess): Promise<Safetensors> {
  if (src.size < 8) throw new Error(`${src.size} bytes: too short for a safetensors file`);
  const lenBytes = new Uint8Array(8);
  await src.readAt(0, lenBytes);
  const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
  if (headerLen > src.size - 8 || headerLen > 100_000_000) {
    throw new Error(
      `header length ${headerLen} does not fit in a ${src.size}-byte file: truncated or not safetensors`,
    );
  }
  const headerBytes = new Uint8Array(headerLen);
  await src.readAt(8, headerBytes);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new Error(`header is not valid JSON (${(e as Error).message}): not a safetensors file?`);
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) {
    throw new Error("header is not a JSON object");
  }
  const dataStart = 8 + headerLen;
  const dataSize = src.size - dataStart;
  const metadata: Record<string, string> = {};
  const specs: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      for (const [k, v] of Object.entries((info ?? {}) as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw new KeyedError(`__metadata__/${k}`, "metadata value is not a string");
        }
        metadata[k] = v;
      }
      continue;
    }
    const { dtype, shape, data_offsets } = (info ?? {}) as Record<string, unknown>;
    const kind = storedType("safetensors", dtype as string);
    if (!kind) throw new KeyedError(name, `unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new KeyedError(name, `bad shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(data_offsets) || data_offsets.length !== 2 ||
      !data_offsets.every(Number.isSafeInteger)
    ) {
      throw new KeyedError(name, `bad data_offsets ${JSON.stringify(data_offsets)}`);
    }
    const [begin, end] = data_offsets as number[];
    if (end - begin !== numel(shape) * kind.itemBytes) {
      throw new KeyedError(
        name,
        `data_offsets [${begin}, ${end}] hold ${
          end - begin
        } bytes, shape [${shape}] ${dtype} needs ${numel(shape) * kind.itemBytes}`,
      );
    }
    if (begin < 0 || end > dataSize) {
      throw new KeyedError(
        name,
        `data [${begin}, ${end}) runs past the end of the data (${dataSize} bytes): truncated file?`,
      );
    }
    specs.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  // As the reference library does: the tensors must tile the data section exactly.
  const sorted = [...specs].sort((a, b) => a.begin - b.begin);
  let expect = 0;
  for (const s of sorted) {
    if (s.begin !== expect) {
      throw new KeyedError(
        s.name,
        `data starts at ${s.begin}, expected ${expect} (overlap or gap)`,
      );
    }
    expect = s.end;
  }
  if (expect !== dataSize) throw new Error(`${dataSize - expect} bytes after the last tensor`);

  const tensors = new Map<string, HostTensor>();
  for (const s of specs) {
    const kind = storedType("safetensors", s.dtype)!;
    const { tensor, bytes } = allocTensor(s.shape, kind.dtype);
    if (!kind.convert) {
      await src.readAt(dataStart + s.begin, bytes);
    } else {
      const raw = new Uint8Array(s.end - s.begin);
      await src.readAt(dataStart + s.begin, raw);
      try {
        decodeInto(kind, raw, tensor.data);
      } catch (e) {
        throw new KeyedError(s.name, (e as Error).message);
      }
    }
    tensors.set(s.name, tensor);
  }
  return { tensors, metadata };
}
