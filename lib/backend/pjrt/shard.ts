/** Host-side splitting of a batch across local replicas. */
import { type HostTensor, numel } from "../../ir/host_tensor.ts";

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
