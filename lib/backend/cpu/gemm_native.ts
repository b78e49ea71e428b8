/**
 * A native f32 GEMM for the CPU backend: `cblas_sgemm` of the system's BLAS over Deno FFI,
 * called on the addresses of the backend's wasm memory. Measured on this project's AVX-512
 * machine (one thread, ViT-S/16 shapes): OpenBLAS 0.3.21 (`libopenblas0-pthread`) 86-99
 * GFLOP/s, BLIS 0.9 (`libblis4`) 61-102, oneDNN 2.6 (`libdnnl2`) 93-110 on large shapes but
 * slower on the small attention ones; the wasm SIMD GEMM about 22. OpenBLAS is searched
 * first: it speaks cblas (as BLIS does, so one binding serves both), needs no OpenMP runtime,
 * and is thread-safe when called from several threads at once. oneDNN's `dnnl_sgemm` would need
 * an OpenMP team per calling thread.
 *
 * Each call runs on the calling thread only (the library's own threads are set to 1): the
 * backend's pool (threads.ts) splits large matmuls into fixed chunks, so results depend on the
 * thread count alone, never on timing or on the library's scheduling.
 *
 * OpenBLAS picks its kernels from the CPU at load time, or from `OPENBLAS_CORETYPE` when that
 * is set (some machines set it to work around old builds); `corename` tells which it runs, and
 * the start note names it. We never change that variable: it is the user's.
 *
 * `DEIT3_BLAS` may name the library file; `DEIT3_BLAS=wasm` keeps the wasm GEMM.
 */
import type { GemmFn } from "./task_records.ts";

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32", // order
      "i32", // transA
      "i32", // transB
      "i32", // M
      "i32", // N
      "i32", // K
      "f32", // alpha
      "pointer", // A
      "i32", // lda
      "pointer", // B
      "i32", // ldb
      "f32", // beta
      "pointer", // C
      "i32", // ldc
    ],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_corename: { parameters: [], result: "pointer", optional: true },
  openblas_get_config: { parameters: [], result: "pointer", optional: true },
  bli_thread_set_num_threads: { parameters: ["i64"], result: "void", optional: true },
} as const;

/** Library files tried in order (Debian / Ubuntu, Fedora, Homebrew). */
export const BLAS_CANDIDATES = [
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "libopenblas.so.0",
  "libopenblas.so",
  "libopenblasp.so.0",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
  "libblis.so.4",
  "libblis.so",
];

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

export interface NativeBlas {
  /** The library file loaded. */
  readonly path: string;
  /** "OpenBLAS 0.3.21 (core Cooperlake)", "BLIS", ... */
  readonly name: string;
  /** The GEMM on `memory`, with the wasm GEMM's arguments; `fallback` takes what cblas cannot. */
  gemmOn(memory: WebAssembly.Memory, fallback: GemmFn): GemmFn;
}

let cached: NativeBlas | null | undefined;

function blasEnv(): string | undefined {
  try {
    return Deno.env.get("DEIT3_BLAS") || undefined;
  } catch {
    return undefined; // no --allow-env
  }
}

/** Whether `DEIT3_BLAS=wasm` asks for the wasm GEMM. */
export function wasmChosen(): boolean {
  return blasEnv() === "wasm";
}

/**
 * Loads the BLAS once per thread (isolate). Undefined when none is found, FFI is not
 * permitted, or `DEIT3_BLAS=wasm`.
 */
export function loadNativeBlas(): NativeBlas | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  const override = blasEnv();
  if (override === "wasm") return undefined;
  for (const path of override ? [override] : BLAS_CANDIDATES) {
    try {
      cached = bind(Deno.dlopen(path, SYMBOLS), path);
      break;
    } catch {
      // not there (or no --allow-ffi): try the next name
    }
  }
  if (!cached && override) {
    throw new Error(`DEIT3_BLAS: cannot load a cblas library from "${override}"`);
  }
  return cached ?? undefined;
}

function bind(lib: Deno.DynamicLibrary<typeof SYMBOLS>, path: string): NativeBlas {
  const s = lib.symbols;
  // one thread per call: the backend's pool does the splitting
  if (s.openblas_set_num_threads) s.openblas_set_num_threads(1);
  if (s.bli_thread_set_num_threads) s.bli_thread_set_num_threads(1n);
  let name = path.includes("blis") ? "BLIS" : "BLAS";
  if (s.openblas_get_config) {
    const config = cString(s.openblas_get_config());
    const version = /OpenBLAS\s+([\d.]+)/.exec(config)?.[1];
    const core = s.openblas_get_corename ? cString(s.openblas_get_corename()) : "";
    name = `OpenBLAS${version ? " " + version : ""}${core ? ` (core ${core})` : ""}`;
  }
  // addresses pass as pointer objects offset from the memory's base: a usize passed as a number
  // takes Deno's slow call path (measured 0.27 against 0.16 us per call with two pointers), which
  // counts for attention's thousands of small products per step
  const sgemm = s.cblas_sgemm;
  return {
    path,
    name,
    gemmOn(memory, fallback) {
      const base = Deno.UnsafePointer.of(new Uint8Array(memory.buffer))!;
      const at = (offset: number) => Deno.UnsafePointer.offset(base, offset);
      return (a, sam, sak, b, sbk, sbn, c, ldc, m, n, k, scratch, accumulate) => {
        const A = operand(sam, sak, m, k), B = operand(sbk, sbn, k, n);
        if (A === null || B === null || ldc % 4 !== 0 || ldc / 4 < n) {
          fallback(a, sam, sak, b, sbk, sbn, c, ldc, m, n, k, scratch, accumulate);
          return;
        }
        sgemm(
          ROW_MAJOR,
          A.trans,
          B.trans,
          m,
          n,
          k,
          1,
          at(a),
          A.ld,
          at(b),
          B.ld,
          accumulate ? 1 : 0,
          at(c),
          ldc / 4,
        );
      };
    },
  };
}

/**
 * How cblas reads a rows x cols operand given byte strides: as stored (row stride = ld) or
 * transposed (column stride = ld); null when neither stride is one element.
 */
export function operand(
  rowStride: number,
  colStride: number,
  rows: number,
  cols: number,
): { trans: number; ld: number } | null {
  if (rowStride % 4 !== 0 || colStride % 4 !== 0) return null;
  const rs = rowStride / 4, cs = colStride / 4;
  if ((cs === 1 || cols === 1) && (rows === 1 || rs >= Math.max(1, cols))) {
    return { trans: NO_TRANS, ld: rows === 1 ? Math.max(1, cols) : rs };
  }
  if ((rs === 1 || rows === 1) && (cols === 1 || cs >= Math.max(1, rows))) {
    return { trans: TRANS, ld: cols === 1 ? Math.max(1, rows) : cs };
  }
  return null;
}

function cString(p: Deno.PointerValue): string {
  return p === null ? "" : Deno.UnsafePointerView.getCString(p);
}

/**
 * Checks the loaded BLAS against an f64 product on a few shapes that reach its kernels' edge
 * cases (odd sizes, transposed operands, leading dims past the width): null when every
 * element is within f32 rounding, else what differed. Some machines set OPENBLAS_CORETYPE
 * because older builds pick kernels that compute wrong results there; this tells whether the
 * kernels picked in this process are right (the benchmark checks before it times).
 */
export function checkNativeBlas(blas: NativeBlas | undefined = loadNativeBlas()): string | null {
  if (!blas) return "no native BLAS loaded";
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 64 });
  const F = new Float32Array(memory.buffer);
  const gemm = blas.gemmOn(memory, () => {
    throw new Error("checkNativeBlas: strides cblas cannot take");
  });
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
  for (
    const [m, k, n] of [[197, 64, 197], [67, 129, 33], [256, 96, 100], [1, 300, 17], [40, 7, 1]]
  ) {
    for (const [ta, tb] of [[false, false], [false, true], [true, false]]) {
      const lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
      const aOff = 0, bOff = aOff + (ta ? k : m) * lda + 16, cOff = bOff + (tb ? n : k) * ldb + 16;
      for (let i = 0; i < cOff; i++) F[i] = rand();
      F.fill(0, cOff, cOff + m * ldc);
      const [sam, sak] = ta ? [1, lda] : [lda, 1];
      const [sbk, sbn] = tb ? [1, ldb] : [ldb, 1];
      gemm(
        4 * aOff,
        4 * sam,
        4 * sak,
        4 * bOff,
        4 * sbk,
        4 * sbn,
        4 * cOff,
        4 * ldc,
        m,
        n,
        k,
        0,
        0,
      );
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let want = 0, mag = 0;
          for (let p = 0; p < k; p++) {
            const x = F[aOff + i * sam + p * sak] * F[bOff + p * sbk + j * sbn];
            want += x;
            mag += Math.abs(x);
          }
          const got = F[cOff + i * ldc + j];
          if (!(Math.abs(got - want) <= 1e-5 * mag + 1e-30)) {
            return `${blas.name}: ${m}x${k}x${n} (transA ${ta}, transB ${tb}) element ` +
              `[${i},${j}] is ${got}, expected ${want}`;
          }
        }
      }
    }
  }
  return null;
}
