/**
 * A hand-written protobuf encoder for `xla.CompileOptionsProto`, the serialized compile options
 * that `PJRT_Client_Compile` requires (empty options crash plugins: `replica_count > 0`).
 *
 * Field numbers (xla/pjrt/proto/compile_options.proto, xla/xla_data.proto):
 *   CompileOptionsProto: executable_build_options 3, env_option_overrides 7 (map<string, Override>)
 *   ExecutableBuildOptionsProto: device_ordinal 1, num_replicas 4, num_partitions 5,
 *     use_spmd_partitioning 6, device_assignment 9, process_index 22, process_count 23
 *   DeviceAssignmentProto: replica_count 1, computation_count 2, computation_devices 3
 *     (ComputationDevice: replica_device_ids 1, packed int64)
 *   OptionOverrideProto: string_field 1, bool_field 2, int_field 3, double_field 4
 */

export interface CompileOptions {
  /** Replicas (data-parallel copies); default 1. */
  numReplicas?: number;
  /** Partitions (model-parallel shards); default 1. */
  numPartitions?: number;
  /**
   * Global device ids, `[replica][partition]`. Omitted: the plugin picks its default
   * assignment. Its shape must be `numReplicas` x `numPartitions`.
   */
  deviceAssignment?: number[][];
  /** Device ordinal; -1 means "any". Default: omitted, or -1 when a device assignment is given. */
  deviceOrdinal?: number;
  useSpmdPartitioning?: boolean;
  /** Multi-process runs: this process's index and the process count. */
  processIndex?: number;
  processCount?: number;
  /** XLA debug/env option overrides, e.g. `{ xla_gpu_enable_triton_gemm: false }`. */
  envOptionOverrides?: Record<string, string | boolean | number | bigint>;
}

/** Serializes `options` as an `xla.CompileOptionsProto`. */
export function encodeCompileOptions(options: CompileOptions = {}): Uint8Array {
  const numReplicas = options.numReplicas ?? 1;
  const numPartitions = options.numPartitions ?? 1;
  checkCount("numReplicas", numReplicas);
  checkCount("numPartitions", numPartitions);

  const build = new ProtoWriter();
  const ordinal = options.deviceOrdinal ?? (options.deviceAssignment ? -1 : undefined);
  if (ordinal !== undefined) build.int64(1, ordinal);
  build.int64(4, numReplicas);
  build.int64(5, numPartitions);
  if (options.useSpmdPartitioning) build.bool(6, true);
  if (options.deviceAssignment) {
    build.message(9, encodeDeviceAssignment(options.deviceAssignment, numReplicas, numPartitions));
  }
  if (options.processIndex !== undefined) build.int64(22, options.processIndex);
  if (options.processCount !== undefined) build.int64(23, options.processCount);

  const out = new ProtoWriter();
  out.message(3, build.finish());
  for (const [key, value] of Object.entries(options.envOptionOverrides ?? {})) {
    const entry = new ProtoWriter();
    entry.string(1, key);
    entry.message(2, encodeOverride(key, value));
    out.message(7, entry.finish());
  }
  return out.finish();
}

/** `xla.DeviceAssignmentProto` from `ids[replica][partition]`. */
export function encodeDeviceAssignment(
  ids: number[][],
  numReplicas: number,
  numPartitions: number,
): Uint8Array {
  if (ids.length !== numReplicas || ids.some((row) => row.length !== numPartitions)) {
    throw new Error(
      `compile options: deviceAssignment must be ${numReplicas} replicas x ${numPartitions} ` +
        `partitions, got [${ids.map((r) => `[${r}]`).join(", ")}]`,
    );
  }
  const seen = new Set<number>();
  for (const id of ids.flat()) {
    if (!Number.isInteger(id) || id < 0) {
      throw new Error(`compile options: deviceAssignment holds ${id}, not a device id`);
    }
    if (seen.has(id)) throw new Error(`compile options: device ${id} is assigned twice`);
    seen.add(id);
  }
  const w = new ProtoWriter();
  w.int64(1, numReplicas);
  w.int64(2, numPartitions);
  // One ComputationDevice per partition, listing the device of each replica.
  for (let p = 0; p < numPartitions; p++) {
    const cd = new ProtoWriter();
    cd.packedInt64(1, ids.map((row) => row[p]));
    w.message(3, cd.finish());
  }
  return w.finish();
}

/** Minimal protobuf wire-format writer (varint and length-delimited fields only). */
export class ProtoWriter {
  private chunks: number[] = [];

  /** An int32/int64/bool field (wire type 0). Negative values take 10 bytes, as in protobuf. */
  int64(field: number, value: number | bigint): void {
    this.tag(field, 0);
    this.varint(BigInt(value));
  }

  bool(field: number, value: boolean): void {
    this.int64(field, value ? 1 : 0);
  }

  /** A double field (wire type 1). */
  double(field: number, value: number): void {
    this.tag(field, 1);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    this.chunks.push(...b);
  }

  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, encoded: Uint8Array): void {
    this.bytes(field, encoded);
  }

  packedInt64(field: number, values: readonly (number | bigint)[]): void {
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(BigInt(v));
    this.bytes(field, inner.finish());
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, 2);
    this.varint(BigInt(value.length));
    this.chunks.push(...value);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }

  private tag(field: number, wireType: number): void {
    this.varint(BigInt(field * 8 + wireType));
  }

  private varint(value: bigint): void {
    let v = BigInt.asUintN(64, value); // two's complement, as protobuf encodes negative ints
    while (v >= 0x80n) {
      this.chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.chunks.push(Number(v));
  }
}

function encodeOverride(key: string, value: string | boolean | number | bigint): Uint8Array {
  const w = new ProtoWriter();
  if (typeof value === "string") w.string(1, value);
  else if (typeof value === "boolean") w.bool(2, value);
  else if (typeof value === "bigint") w.int64(3, value);
  else if (Number.isInteger(value)) w.int64(3, value);
  else if (Number.isFinite(value)) w.double(4, value);
  else throw new Error(`compile options: envOptionOverrides.${key} = ${value} is not finite`);
  return w.finish();
}

function checkCount(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`compile options: ${name} must be a positive integer, got ${n}`);
  }
}
