/**
 * The native BLAS GEMM (gemm_native.ts): stride mapping onto cblas, the GEMM itself against an
 * f64 reference (transposed and padded operands, accumulate, strides cblas cannot take going to
 * the wasm fallback), and the executor running matmuls on it, repeatably. Tests that need the
 * library skip with a message when it is not installed (Debian: libopenblas0-pthread).
 */
import { gemmModule, gemmOn } from "../../../lib/backend/cpu/dot.ts";
import { FusedExecutable } from "../../../lib/backend/cpu/executable.ts";
import { checkNativeBlas, loadNativeBlas, operand } from "../../../lib/backend/cpu/gemm_native.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { type HostTensor, hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals } from "../../assert.ts";

const NO_TRANS = 111, TRANS = 112;

Deno.test("gemm native: strides map to cblas transposes and leading dims", () => {
  // row-major 3x5 with padded rows, and its transposed view
  assertEquals(operand(4 * 8, 4, 3, 5), { trans: NO_TRANS, ld: 8 });
  assertEquals(operand(4, 4 * 8, 5, 3), { trans: TRANS, ld: 8 });
  // a single row or column: the other stride does not matter
  assertEquals(operand(0, 4, 1, 5), { trans: NO_TRANS, ld: 5 });
  assertEquals(operand(4, 0, 5, 1), { trans: NO_TRANS, ld: 1 });
  // neither stride is one element, rows overlap, a broadcast row, unaligned bytes
  assertEquals(operand(4 * 8, 4 * 2, 3, 5), null);
  assertEquals(operand(4 * 3, 4, 3, 5), null);
  assertEquals(operand(0, 4, 3, 5), null);
  assertEquals(operand(6, 4, 3, 5), null);
});

const blas = loadNativeBlas();
const skip = () => console.log("no native BLAS (apt-get install libopenblas0-pthread): skipped");

Deno.test("gemm native: transposed and padded operands, accumulate, fallback strides", () => {
  if (!blas) return skip();
  console.log(`native GEMM: ${blas.name} from ${blas.path}`);
  const memory = new WebAssembly.Memory({ initial: 256, maximum: 256 });
  const { gemm, native } = gemmOn(memory, gemmModule(false), true);
  assert(native);
  const F = new Float32Array(memory.buffer);
  const rand = lcg(5);
  let fallbackCases = 0;
  for (const [m, k, n] of [[1, 1, 1], [7, 9, 5], [64, 300, 33], [130, 64, 70]]) {
    // (a) stored, (b) transposed, (c) every other element (cblas cannot: wasm fallback)
    for (const layoutA of ["n", "t", "skip"] as const) {
      for (const transB of [false, true]) {
        for (const accumulate of [0, 1]) {
          const aOff = 16, aLen = 2 * m * k, bOff = aOff + aLen + 16;
          const cOff = bOff + k * n + 16, ldc = n + 3, scratch = (cOff + m * ldc + 16) * 4;
          for (let i = 0; i < aLen; i++) F[aOff + i] = rand() - 0.5;
          for (let i = 0; i < k * n; i++) F[bOff + i] = rand() - 0.5;
          const c0 = Float32Array.from({ length: m * ldc }, () => rand());
          F.set(c0, cOff);
          const [sam, sak] = layoutA === "n" ? [k, 1] : layoutA === "t" ? [1, m] : [2 * k, 2];
          const [sbk, sbn] = transB ? [1, k] : [n, 1];
          if (operand(4 * sam, 4 * sak, m, k) === null && m > 1) fallbackCases++;
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
            scratch,
            accumulate,
          );
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < ldc; j++) {
              const got = F[cOff + i * ldc + j];
              if (j >= n) {
                assertEquals(got, c0[i * ldc + j], `padding ${i},${j} written`);
                continue;
              }
              let want = accumulate ? c0[i * ldc + j] : 0;
              for (let p = 0; p < k; p++) {
                want += F[aOff + i * sam + p * sak] * F[bOff + p * sbk + j * sbn];
              }
              assert(
                Math.abs(got - want) <= 1e-5 * (1 + k),
                `${m}x${k}x${n} A:${layoutA} tB:${transB} acc:${accumulate} [${i},${j}]: ` +
                  `${got} vs ${want}`,
              );
            }
          }
        }
      }
    }
  }
  assert(fallbackCases > 0);
});

Deno.test("gemm native: the self-check passes the loaded library and names a wrong one", () => {
  if (!blas) return skip();
  assertEquals(checkNativeBlas(blas), null);
  const memoryOf = new Map<WebAssembly.Memory, Float32Array>();
  const broken = {
    path: "fake",
    name: "broken BLAS",
    gemmOn: (memory: WebAssembly.Memory) => {
      memoryOf.set(memory, new Float32Array(memory.buffer));
      // a kernel that drops the last column of every product
      return (...a: number[]) => {
        blas.gemmOn(memory, () => {})(...(a as Parameters<ReturnType<typeof blas.gemmOn>>));
        const [c, ldc, m, n] = [a[6], a[7], a[8], a[9]];
        for (let i = 0; i < m; i++) memoryOf.get(memory)![(c + i * ldc) / 4 + n - 1] = 0;
      };
    },
  };
  const why = checkNativeBlas(broken);
  assert(why !== null && why.startsWith("broken BLAS: 197x64x197"), String(why));
});

Deno.test("gemm native: the executor runs matmuls on it, the same bits every run", async () => {
  if (!blas) return skip();
  const rand = lcg(9);
  const mk = (shape: number[]) =>
    hostTensor(
      shape,
      "f32",
      Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rand() - 0.5),
    );
  const heads = (t: Tensor) => ops.transpose(ops.reshape(t, [16, 50, 4, 16]), [0, 2, 1, 3]);
  const fn = (x: Tensor, w: Tensor, q: Tensor) => [
    ops.matmul(ops.add(x, 1), w),
    ops.dotGeneral(ops.mul(x, 2), ops.mul(x, 3), {
      lhsBatch: [],
      rhsBatch: [],
      lhsContract: [0],
      rhsContract: [0],
    }),
    ops.dotGeneral(heads(ops.add(q, 1)), heads(q), {
      lhsBatch: [0, 1],
      rhsBatch: [0, 1],
      lhsContract: [3],
      rhsContract: [3],
    }),
  ];
  const inputs = [mk([800, 256]), mk([256, 96]), mk([16, 50, 64])];
  const graph = trace(fn, ...inputs.map((t) => ({ shape: t.shape, dtype: t.dtype }))).graph;
  const run = async (opts: { threads: boolean; nativeGemm: boolean }) => {
    const ex = new FusedExecutable(graph, opts);
    const out = await ex.execute(inputs) as HostTensor[];
    ex.dispose();
    return { out, stats: ex.stats };
  };
  const a = await run({ threads: true, nativeGemm: true });
  const b = await run({ threads: true, nativeGemm: true });
  const wasm = await run({ threads: false, nativeGemm: false });
  assert(a.stats.nativeGemm);
  assert(!wasm.stats.nativeGemm);
  a.out.forEach((t, i) => {
    const j = t.data.findIndex((v, q) => !Object.is(v, b.out[i].data[q]));
    assertEquals(j, -1, `output ${i} differs between runs at ${j}`);
    for (let q = 0; q < t.data.length; q++) {
      const w = wasm.out[i].data[q];
      assert(Math.abs(t.data[q] - w) <= 1e-4 + 1e-5 * Math.abs(w), `output ${i}[${q}]`);
    }
  });
});

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
