/**
 * Replicas and devices, shared by the backends: the replica count a program all-reduces over,
 * and host-side checks and splits of per-device values.
 */
import type { Graph } from "../ir/graph.ts";
import { type HostTensor, numel } from "../ir/host_tensor.ts";
import { Primitive } from "../ir/primitive.ts";
import { isPrim } from "../ir/tensor.ts";

/** The replica count of the program: the all-reduces' `replicas` (all equal), or `requested`. */
export function replicasOf(graph: Graph, requested?: number): number {
  let found: number | undefined;
  for (const n of graph.nodes) {
    if (!isPrim(n, Primitive.AllReduceSum)) continue;
    const r = n.params.replicas;
    if (found !== undefined && r !== found) {
      throw new Error(
        `the graph's all-reduces disagree on replicas (${found} and ${r})`,
      );
    }
    found = r;
  }
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1) {
      throw new Error(`replicas must be a positive integer, got ${requested}`);
    }
    if (found !== undefined && found !== requested) {
      throw new Error(
        `the program is for ${requested} replicas but the graph all-reduces over ${found} replicas`,
      );
    }
    return requested;
  }
  return found ?? 1;
}

/** The values of a per-device upload: one per device, all of one shape and dtype. */
export function checkPerDevice(ts: readonly HostTensor[], devices: number): void {
  if (ts.length !== devices) {
    throw new Error(`fromHostPerDevice: ${ts.length} values for ${devices} devices`);
  }
  for (const t of ts) {
    if (t.dtype !== ts[0].dtype || t.shape.join() !== ts[0].shape.join()) {
      throw new Error(
        `fromHostPerDevice: ${t.dtype}[${t.shape}] and ${ts[0].dtype}[${ts[0].shape}] differ; ` +
          "every device gets the same shape",
      );
    }
  }
}

/** `t` split into `parts` equal slices along axis 0 (copies; row-major slices are contiguous). */
export function splitAxis0(t: HostTensor, parts: number): HostTensor[] {
  if (t.shape.length === 0) throw new Error("shard: a scalar cannot be split across replicas");
  const n = t.shape[0];
  if (n % parts !== 0) {
    throw new Error(
      `shard: axis 0 of ${t.dtype}[${t.shape}] (${n}) is not divisible by ${parts} replicas`,
    );
  }
  const shape = [n / parts, ...t.shape.slice(1)];
  const size = numel(shape);
  return Array.from({ length: parts }, (_, i) => ({
    shape: [...shape],
    dtype: t.dtype,
    data: t.data.slice(i * size, (i + 1) * size),
  }));
}
