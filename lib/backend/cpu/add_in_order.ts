/**
 * The reduction order of the CPU all-reduce: replicas added one after another (as XLA's CPU
 * all-reduce does), in this process (replicas.ts) and across processes (cross_process.ts).
 */
import { allocArray, type DType, type TypedArray } from "../../ir/dtype.ts";

/** The sum of `parts` added one after another in f32/i32/u32 (also across processes). */
export function addInOrder(dtype: DType, parts: readonly TypedArray[]): TypedArray {
  const n = parts[0].length;
  const out = allocArray(dtype, n);
  // A typed-array store rounds each partial sum to the dtype, as an f32 accumulator does.
  out.set(parts[0]);
  for (let r = 1; r < parts.length; r++) {
    const p = parts[r];
    for (let i = 0; i < n; i++) out[i] += p[i];
  }
  return out;
}
