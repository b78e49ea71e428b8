/**
 * The SIMD resampling kernels (resample.as, compiled to WebAssembly) with a bump allocator over
 * their memory. `resampleKernels()` returns null where WebAssembly SIMD is unavailable; callers
 * then use the plain TypeScript loops, which compute the same values.
 */
import { RESAMPLE_WASM_BASE64 } from "./resample_wasm.ts";

type Pass = (
  src: number,
  stride: number,
  rowsOrLen: number,
  count: number,
  bounds: number,
  kk: number,
  ksize: number,
  out: number,
) => void;

export type ResampleKernels = {
  hpass: Pass;
  vpass: Pass;
  /** Reserve `sizes` bytes each (16-byte aligned, with 16 bytes of slack); returns offsets. */
  alloc(sizes: number[]): number[];
  /** A byte view of the kernels' memory (re-read after every `alloc`). */
  bytes(): Uint8Array;
  /** An int32 view of the kernels' memory. */
  ints(): Int32Array;
};

let cached: ResampleKernels | null | undefined;

export function resampleKernels(): ResampleKernels | null {
  if (cached === undefined) cached = instantiate();
  return cached;
}

function instantiate(): ResampleKernels | null {
  let exports: WebAssembly.Exports;
  try {
    const bin = atob(RESAMPLE_WASM_BASE64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports;
  } catch {
    return null; // no WebAssembly SIMD here
  }
  const memory = exports.memory as WebAssembly.Memory;
  const BASE = 1024;
  let u8 = new Uint8Array(memory.buffer), i32 = new Int32Array(memory.buffer);
  return {
    hpass: exports.hpass as Pass,
    vpass: exports.vpass as Pass,
    alloc(sizes) {
      const offsets: number[] = [];
      let end = BASE;
      for (const s of sizes) {
        offsets.push(end);
        end += Math.ceil((s + 16) / 16) * 16;
      }
      if (end > memory.buffer.byteLength) {
        memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
      }
      if (u8.buffer !== memory.buffer) {
        u8 = new Uint8Array(memory.buffer);
        i32 = new Int32Array(memory.buffer);
      }
      return offsets;
    },
    bytes: () => u8,
    ints: () => i32,
  };
}
