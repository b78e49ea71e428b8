/**
 * The wasm SIMD GEMM and the fused executor's dot_general against f64 references: the GEMM
 * directly (strided/transposed operands, edge tiles, several K blocks, accumulate), and
 * dot_general layouts through the executor (batch dims, transposed views, gathered operands,
 * inputs and outputs outside the arena) against the reference interpreter.
 */
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import {
  DEFAULT_GEMM,
  gemmModuleBytes,
  gemmScratchBytes,
} from "../../../lib/backend/cpu/gemm_wasm.ts";
import { evaluate } from "../../../lib/backend/jit.ts";
import { type HostTensor, hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { DotDims } from "../../../lib/ir/primitive.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals } from "../../assert.ts";

const fused = new CpuBackend({ mode: "fused" });
const reference = new CpuBackend({ mode: "reference" });

Deno.test("gemm wasm: strided and transposed operands, edge tiles, K blocks, accumulate", () => {
  const memory = new WebAssembly.Memory({ initial: 256, maximum: 256 });
  const mod = new WebAssembly.Module(
    gemmModuleBytes(DEFAULT_GEMM, { minPages: 1, maxPages: 65536, shared: false }),
  );
  const gemm = new WebAssembly.Instance(mod, { env: { memory } }).exports.gemm as (
    ...a: number[]
  ) => void;
  const F = new Float32Array(memory.buffer);
  const rand = lcg(3);
  const cases = [
    [1, 1, 1],
    [6, 8, 1],
    [7, 9, 5],
    [50, 16, 50],
    [13, 600, 17], // three K blocks
    [130, 64, 70], // several A blocks and B panels
  ];
  for (const [m, k, n] of cases) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const accumulate of [0, 1]) {
          const aOff = 0, bOff = aOff + m * k + 16, cOff = bOff + k * n + 16;
          const ldc = n + 3; // C rows padded: only n columns may be written
          const scratch = (cOff + m * ldc + 16) * 4;
          for (let i = 0; i < m * k; i++) F[aOff + i] = rand() - 0.5;
          for (let i = 0; i < k * n; i++) F[bOff + i] = rand() - 0.5;
          const c0 = Float32Array.from({ length: m * ldc }, () => rand());
          F.set(c0, cOff);
          const sam = transA ? 1 : k, sak = transA ? m : 1;
          const sbk = transB ? 1 : n, sbn = transB ? k : 1;
          gemm(
            aOff * 4,
            sam * 4,
            sak * 4,
            bOff * 4,
            sbk * 4,
            sbn * 4,
            cOff * 4,
            ldc * 4,
            m,
            n,
            k,
            scratch,
            accumulate,
          );
          assert(scratch + gemmScratchBytes(DEFAULT_GEMM, n) < memory.buffer.byteLength);
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < ldc; j++) {
              const got = F[cOff + i * ldc + j];
              if (j >= n) {
                assertEquals(got, c0[i * ldc + j], `padding column ${j} was written`);
                continue;
              }
              let s = accumulate ? c0[i * ldc + j] : 0;
              for (let q = 0; q < k; q++) {
                s += F[aOff + i * sam + q * sak] * F[bOff + q * sbk + j * sbn];
              }
              const tol = 1e-6 * (1 + Math.sqrt(k));
              assert(
                Math.abs(got - s) <= tol,
                `m${m} k${k} n${n} tA${transA} tB${transB} acc${accumulate} [${i},${j}]: ${got} vs ${s}`,
              );
            }
          }
        }
      }
    }
  }
});

interface DotCase {
  name: string;
  lhs: number[];
  rhs: number[];
  /** Optional movement before the dot (runs inside the graph). */
  prepL?: (t: Tensor) => Tensor;
  prepR?: (t: Tensor) => Tensor;
  dims: DotDims;
  /** Add 1 to an operand first, so that it is an arena buffer rather than an input. */
  computedL?: boolean;
  computedR?: boolean;
  /** Use the result elementwise (else the dot output itself is a graph output). */
  consume?: boolean;
}

const D = (lb: number[], rb: number[], lc: number[], rc: number[]): DotDims => ({
  lhsBatch: lb,
  rhsBatch: rb,
  lhsContract: lc,
  rhsContract: rc,
});

const DOT_CASES: DotCase[] = [
  { name: "matmul of inputs", lhs: [5, 7], rhs: [7, 3], dims: D([], [], [1], [0]) },
  {
    name: "x @ W^T on computed operands",
    lhs: [2, 9, 8],
    rhs: [6, 8],
    dims: D([], [], [2], [1]),
    computedL: true,
    computedR: true,
    consume: true,
  },
  {
    name: "weight gradient: contract batch and tokens",
    lhs: [4, 10, 6],
    rhs: [4, 10, 5],
    dims: D([], [], [0, 1], [0, 1]),
    computedL: true,
    computedR: true,
  },
  {
    name: "attention scores through head transposes",
    lhs: [3, 11, 12],
    rhs: [3, 11, 12],
    prepL: (t) => ops.transpose(ops.reshape(t, [3, 11, 2, 6]), [0, 2, 1, 3]),
    prepR: (t) => ops.transpose(ops.reshape(t, [3, 11, 2, 6]), [0, 2, 1, 3]),
    dims: D([0, 1], [0, 1], [3], [3]),
    computedL: true,
    computedR: true,
    consume: true,
  },
  {
    name: "batch dims in different positions",
    lhs: [4, 3, 5],
    rhs: [5, 2, 4],
    dims: D([0], [2], [2], [0]),
    computedL: true,
    computedR: true,
  },
  {
    name: "non-adjacent contracting dims (gathered)",
    lhs: [3, 4, 5],
    rhs: [5, 6, 3],
    dims: D([], [], [0, 2], [2, 0]),
    computedL: true,
    computedR: true,
    consume: true,
  },
  {
    name: "reshape of a transpose that needs a copy",
    lhs: [4, 6],
    rhs: [24, 5],
    prepL: (t) => ops.reshape(ops.transpose(t, [1, 0]), [24]),
    prepR: (t) => t,
    dims: D([], [], [0], [0]),
    computedL: true,
    computedR: true,
  },
  { name: "empty contraction", lhs: [3, 0], rhs: [0, 4], dims: D([], [], [1], [0]) },
  {
    name: "vector dot vector",
    lhs: [37],
    rhs: [37],
    dims: D([], [], [0], [0]),
    computedL: true,
    computedR: true,
  },
];

for (const c of DOT_CASES) {
  Deno.test(`cpu fused dot_general: ${c.name}`, async () => {
    const rand = lcg(c.lhs.length * 31 + c.rhs.length);
    const mk = (shape: number[]) =>
      hostTensor(
        shape,
        "f32",
        Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rand() - 0.5),
      );
    const a = mk(c.lhs), b = mk(c.rhs);
    const fn = (x: Tensor, y: Tensor) => {
      let l = c.computedL ? ops.add(x, 1) : x;
      let r = c.computedR ? ops.mul(y, 2) : y;
      l = c.prepL ? c.prepL(l) : l;
      r = c.prepR ? c.prepR(r) : r;
      const out = ops.dotGeneral(l, r, c.dims);
      return c.consume ? ops.tanh(out) : out;
    };
    const got = await evaluate(fused, fn, a, b) as HostTensor;
    const want = await evaluate(reference, fn, a, b) as HostTensor;
    assertEquals(got.shape, want.shape);
    for (let i = 0; i < want.data.length; i++) {
      assert(
        Math.abs(got.data[i] - want.data[i]) <= 2e-6 * (1 + Math.abs(want.data[i])),
        `element ${i}: ${got.data[i]} vs reference ${want.data[i]}`,
      );
    }
  });
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

Deno.test("cpu fused dot_general: wasm GEMM matmuls split across threads equal one thread bit for bit", async () => {
  const { FusedExecutable } = await import("../../../lib/backend/cpu/executable.ts");
  const { trace } = await import("../../../lib/ir/graph.ts");
  const rand = lcg(11);
  const mk = (shape: number[]) =>
    hostTensor(
      shape,
      "f32",
      Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rand() - 0.5),
    );
  const heads = (t: Tensor) => ops.transpose(ops.reshape(t, [16, 50, 4, 16]), [0, 2, 1, 3]);
  // rows split (one big matmul), columns split (weight gradient), batch split (attention)
  const fn = (x: Tensor, w: Tensor, q: Tensor) => [
    ops.matmul(ops.add(x, 1), w),
    ops.dotGeneral(ops.mul(x, 2), ops.mul(x, 3), D([], [], [0], [0])),
    ops.dotGeneral(heads(ops.add(q, 1)), heads(q), D([0, 1], [0, 1], [3], [3])),
  ];
  const inputs = [mk([800, 256]), mk([256, 96]), mk([16, 50, 64])];
  const specs = inputs.map((t) => ({ shape: t.shape, dtype: t.dtype }));
  const run = async (threads: boolean) => {
    // the native BLAS promises the same bits run to run at one thread count (its own test)
    const ex = new FusedExecutable(trace(fn, ...specs).graph, { threads, nativeGemm: false });
    const out = await ex.execute(inputs) as HostTensor[];
    ex.dispose();
    return { out, stats: ex.stats };
  };
  const one = await run(false);
  const many = await run(true);
  if (many.stats.threads === 1) {
    console.log("one core (or DEIT3_CPU_THREADS=1): nothing to split");
    return;
  }
  assertEquals(many.stats.threadedMatmuls, 3);
  many.out.forEach((t, i) => {
    const j = t.data.findIndex((v, k) => !Object.is(v, one.out[i].data[k]));
    assertEquals(j, -1, `output ${i} differs at ${j}`);
  });
  const want = await evaluate(reference, fn, ...inputs) as HostTensor[];
  many.out.forEach((t, i) => {
    for (let j = 0; j < t.data.length; j++) {
      const w = want[i].data[j];
      // f32 accumulation over up to 800 terms of size ~1 (the reference sums in f64)
      assert(
        Math.abs(t.data[j] - w) <= 1e-4 + 1e-5 * Math.abs(w),
        `output ${i}[${j}]: ${t.data[j]} vs ${w}`,
      );
    }
  });
});
