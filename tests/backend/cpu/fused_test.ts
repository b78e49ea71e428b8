/**
 * The fused CPU executor against the reference interpreter (kernels.ts): random programs of
 * elementwise, movement, reduction, integer and fallback ops must give bit-identical results
 * (the fused loops round every intermediate as the reference's stores do). Also checks that
 * fusion really happens (loop counts) for the ViT's building blocks.
 */
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { FusedExecutable } from "../../../lib/backend/cpu/executable.ts";
import { evaluate } from "../../../lib/backend/jit.ts";
import type { DType } from "../../../lib/ir/dtype.ts";
import { trace } from "../../../lib/ir/graph.ts";
import { type HostTensor, hostTensor } from "../../../lib/ir/host_tensor.ts";
import { gelu, layerNorm, softmax } from "../../../lib/ir/nn.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals } from "../../assert.ts";

const fused = new CpuBackend({ mode: "fused" });
// Math.exp / Math.tanh in fused loops: every op bit-identical to the reference
const fusedExact = new CpuBackend({ mode: "fused", exactMath: true });
const reference = new CpuBackend({ mode: "reference" });

Deno.test("cpu fused: 150 random programs match the reference interpreter bit for bit", async () => {
  for (let seed = 1; seed <= 150; seed++) {
    const inputs = randomInputs(seed);
    const program = (...xs: Tensor[]) => randomProgram(seed, xs);
    const want = await evaluate(reference, program, ...inputs) as HostTensor[];
    const got = await evaluate(fusedExact, program, ...inputs) as HostTensor[];
    assertEquals(got.length, want.length);
    got.forEach((g, i) => assertBitEqual(g, want[i], `seed ${seed}, output ${i}`));
  }
});

Deno.test("cpu fused: 100 random f32 programs run as wasm SIMD, bit for bit", async () => {
  let wasmLoops = 0, wasmReductions = 0;
  for (let seed = 1000; seed < 1100; seed++) {
    const inputs = randomInputs(seed);
    const program = (...xs: Tensor[]) => randomProgram(seed, xs, true);
    const want = await evaluate(reference, program, ...inputs) as HostTensor[];
    const got = await evaluate(fused, program, ...inputs) as HostTensor[];
    got.forEach((g, i) => assertBitEqual(g, want[i], `seed ${seed}, output ${i}`));
    const { graph } = trace(program, ...inputs.map((x) => ({ shape: x.shape, dtype: x.dtype })));
    const { stats } = new FusedExecutable(graph);
    wasmLoops += stats.wasmLoops;
    wasmReductions += stats.wasmReductions;
  }
  assert(wasmLoops > 300, `only ${wasmLoops} wasm loops`);
  assert(wasmReductions > 30, `only ${wasmReductions} wasm reductions`);
});

Deno.test("cpu fused: outputs may be inputs, constants, aliases and repeated tensors", async () => {
  const x = hostTensor([2, 3], "f32", [1, 2, 3, 4, 5, 6]);
  const c = hostTensor([3], "f32", [7, 8, 9]);
  const fn = (a: Tensor) => {
    const k = ops.constant(c);
    const y = ops.mul(a, 2);
    return [a, k, ops.reshape(y, [3, 2]), y, y, ops.stopGradient(a), ops.transpose(a)];
  };
  const got = await evaluate(fused, fn, x) as HostTensor[];
  const want = await evaluate(reference, fn, x) as HostTensor[];
  got.forEach((g, i) => assertBitEqual(g, want[i], `output ${i}`));
  assertEquals(got[2].shape, [3, 2]);
});

Deno.test("cpu fused: results of one call survive the next call (outputs are not arena memory)", async () => {
  const { Compiled } = await import("../../../lib/backend/jit.ts");
  const f = await Compiled.create(
    fused,
    (a: Tensor) => ops.add(ops.sum(ops.mul(a, a), 1), 1),
    { shape: [4, 8], dtype: "f32" },
  );
  const one = await f.call([hostTensor([4, 8], "f32", new Float32Array(32).fill(1))]);
  const two = await f.call([hostTensor([4, 8], "f32", new Float32Array(32).fill(2))]);
  assertEquals(Array.from((await fused.toHost(one)).data), [9, 9, 9, 9]);
  assertEquals(Array.from((await fused.toHost(two)).data), [33, 33, 33, 33]);
});

Deno.test("cpu fused: a GELU MLP block is one loop per elementwise chain", () => {
  const stats = statsOf(
    (x: Tensor, b: Tensor) => gelu(ops.add(ops.mul(x, 2), b)),
    [[64, 256], "f32"],
    [[256], "f32"],
  );
  // scale, bias (broadcast), cube, tanh, ... all in one loop; nothing else materialized
  assertEquals(stats.fusedLoops, 1);
  assertEquals(stats.reductions, 0);
});

Deno.test("cpu fused: layer norm is two reductions, their small epilogues and one output loop", () => {
  const stats = statsOf(
    (x: Tensor, s: Tensor, b: Tensor) => layerNorm(x, s, b),
    [[32, 50, 64], "f32"],
    [[64], "f32"],
    [[64], "f32"],
  );
  assertEquals(stats.reductions, 2); // sum(x), sum(x*x) with x*x fused into the reduction
  // mean and the rsqrt of the variance are [32,50] loops; the normalized output is one loop
  assertEquals(stats.fusedLoops, 3);
});

Deno.test("cpu fused: softmax is two reductions and two loops", () => {
  const stats = statsOf((x: Tensor) => softmax(x, -1), [[16, 4, 50, 50], "f32"]);
  assertEquals(stats.reductions, 2); // max(x), sum(e)
  // e = exp(x - max) is stored once (read by the sum and the division), then e / sum
  assertEquals(stats.fusedLoops, 2);
  assertEquals(stats.matmuls, 0);
});

Deno.test("cpu fused: attention reads transposed heads in place (no transpose copies)", () => {
  const stats = statsOf(
    (q: Tensor, k: Tensor) => {
      const heads = (t: Tensor) => ops.transpose(ops.reshape(t, [8, 50, 4, 16]), [0, 2, 1, 3]);
      return ops.dotGeneral(heads(q), heads(k), {
        lhsBatch: [0, 1],
        rhsBatch: [0, 1],
        lhsContract: [3],
        rhsContract: [3],
      });
    },
    [[8, 50, 64], "f32"],
    [[8, 50, 64], "f32"],
  );
  assertEquals(stats.matmuls, 1);
  assertEquals(stats.fusedLoops, 0);
});

function statsOf(fn: (...xs: Tensor[]) => Tensor, ...specs: [number[], DType][]) {
  const { graph } = trace(fn, ...specs.map(([shape, dtype]) => ({ shape, dtype })));
  return new FusedExecutable(graph).stats;
}

// ------------------------------------------------------------------ random programs

function assertBitEqual(got: HostTensor, want: HostTensor, where: string): void {
  assertEquals(
    got.shape,
    want.shape,
    `${where}: shape [${got.shape}] vs reference [${want.shape}]`,
  );
  assertEquals(got.dtype, want.dtype, `${where}: dtype`);
  const g = bits(got), w = bits(want);
  for (let i = 0; i < w.length; i++) {
    if (g[i] !== w[i] && !(Number.isNaN(got.data[i]) && Number.isNaN(want.data[i]))) {
      assert(false, `${where}: element ${i} is ${got.data[i]}, reference ${want.data[i]}`);
    }
  }
}

function bits(t: HostTensor): ArrayLike<number> {
  return t.dtype === "f32"
    ? new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length)
    : t.data;
}

function rngOf(seed: number): () => number {
  let s = seed * 0x9e3779b9 >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SPECIAL = [0, -0, 1, -1, 0.5, 3, -2.5, 1e-3, 100, Infinity, -Infinity, NaN];

function randomInputs(seed: number): HostTensor[] {
  const r = rngOf(seed * 7919);
  const float = (shape: number[]) =>
    hostTensor(
      shape,
      "f32",
      Array.from(
        { length: shape.reduce((a, b) => a * b, 1) },
        () => r() < 0.08 ? SPECIAL[Math.floor(r() * SPECIAL.length)] : (r() - 0.5) * 6,
      ),
    );
  const ints = (shape: number[], dtype: DType, lo: number, hi: number) =>
    hostTensor(
      shape,
      dtype,
      Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () =>
        lo + Math.floor(r() * (hi - lo))),
    );
  return [
    float([2, 3, 4]),
    float([4]),
    float([2, 1, 4]),
    ints([2, 3, 4], "i32", -50, 50),
    ints([3, 4], "u32", 0, 4294967295),
    ints([2, 3], "u8", 0, 256),
    ints([2, 3, 4], "i32", -3, 40),
    float([5, 9]),
  ];
}

/** A random program over the inputs; deterministic in `seed` (it is traced twice). */
function randomProgram(seed: number, inputs: Tensor[], floatOnly = false): Tensor[] {
  const r = rngOf(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const pool: Tensor[] = floatOnly ? inputs.filter((t) => t.dtype === "f32") : [...inputs];
  const of = (pred: (t: Tensor) => boolean) => {
    const c = pool.filter(pred);
    return c.length ? pick(c) : null;
  };
  const isF = (t: Tensor) => t.dtype === "f32";
  const isInt = (t: Tensor) => t.dtype === "i32" || t.dtype === "u32";
  /** A partner for a binary op with x: same shape, broadcastable, or a number. */
  const partner = (x: Tensor): Tensor | number => {
    const u = r();
    if (u < 0.25) return isF(x) ? pick(SPECIAL) : pick([0, 1, 3, 7, 31, 32, 40]);
    const same = of((t) => t.dtype === x.dtype && ops.sameShape(t.shape, x.shape) && t !== x);
    if (u < 0.6 && same) return same;
    if (u < 0.8 && x.ndim > 0 && x.dtype !== "u8") {
      // a reduction of x kept as broadcastable dims (layernorm / softmax patterns)
      const axis = Math.floor(r() * x.ndim);
      return r() < 0.5 ? ops.sum(x, axis, true) : ops.max(x, axis, true);
    }
    return x;
  };
  const steps = 12 + Math.floor(r() * 18);
  for (let s = 0; s < steps; s++) {
    let u = r();
    // float-only programs: plain f32 arithmetic and movement (what runs as wasm SIMD)
    if (floatOnly && ((u >= 0.4 && u < 0.5) || (u >= 0.58 && u < 0.64) || u >= 0.93)) u = 0.3;
    let y: Tensor | null = null;
    if (u < 0.18) {
      const x = of(isF)!;
      const f = floatOnly
        ? pick([ops.neg, ops.sqrt, ops.rsqrt, ops.abs])
        : pick([ops.neg, ops.exp, ops.log, ops.sqrt, ops.rsqrt, ops.tanh, ops.erf, ops.abs]);
      y = f(x);
    } else if (u < 0.4) {
      const x = of(isF)!;
      const f = pick([ops.add, ops.sub, ops.mul, ops.div, ops.maximum, ops.minimum]);
      y = r() < 0.5 ? f(x, partner(x)) : f(partner(x), x);
    } else if (u < 0.5) {
      const x = of(isInt);
      if (x) {
        const f = pick([
          ops.add,
          ops.sub,
          ops.mul,
          ops.div,
          ops.maximum,
          ops.and,
          ops.or,
          ops.xor,
          ops.shiftLeft,
          ops.shiftRightLogical,
        ]);
        y = r() < 0.2 ? ops.not(x) : f(x, partner(x));
      }
    } else if (u < 0.58) {
      const x = of((t) => t.dtype !== "bool" && t.dtype !== "u8" && (!floatOnly || isF(t)))!;
      const p = ops.compare(x, partner(x), pick(["eq", "ne", "lt", "le", "gt", "ge"] as const));
      const other = of((t) => t.dtype === x.dtype && ops.sameShape(t.shape, p.shape));
      y = r() < 0.3 ? ops.not(p) : ops.where(p, x, other ?? pick([0, 2]));
    } else if (u < 0.64) {
      const x = pick(pool);
      y = ops.convert(x, pick(["f32", "i32", "u32", "u8", "bool"] as const));
    } else if (u < 0.72) {
      const x = of((t) => t.ndim > 0 && t.dtype !== "bool" && t.dtype !== "u8")!;
      const axes = x.shape.map((_, i) => i).filter(() => r() < 0.5);
      y = r() < 0.6 ? ops.sum(x, axes, r() < 0.5) : ops.max(x, axes, r() < 0.5);
    } else if (u < 0.78) {
      const x = of((t) => t.ndim > 1)!;
      // Fisher-Yates: sort() with a random comparator is not deterministic in V8
      const perm = x.shape.map((_, i) => i);
      for (let i = perm.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      y = ops.transpose(x, perm);
    } else if (u < 0.85) {
      const x = pick(pool);
      y = ops.reshape(x, randomReshape(x.shape, r));
    } else if (u < 0.89) {
      const x = of((t) => t.ndim > 0 && t.size > 1)!;
      const start = x.shape.map((d) => Math.floor(r() * Math.max(1, d - 1)));
      const limit = x.shape.map((d, i) => start[i] + 1 + Math.floor(r() * (d - start[i])));
      const strides = x.shape.map(() => 1 + Math.floor(r() * 2));
      y = ops.slice(x, start, limit.map((l, i) => Math.min(l, x.shape[i])), strides);
    } else if (u < 0.93) {
      const x = pick(pool);
      const at = Math.floor(r() * (x.ndim + 1));
      const e = ops.expandDims(x, at);
      const shape = [...e.shape];
      shape[at] = 3;
      y = ops.broadcastTo(e, shape);
    } else if (u < 0.95) {
      const x = of((t) => t.ndim > 0)!;
      y = ops.add(ops.iota(x.shape, Math.floor(r() * x.ndim), "i32"), ops.convert(x, "i32"));
    } else if (u < 0.97) {
      const x = of((t) => t.ndim > 0)!;
      y = r() < 0.5
        ? ops.pad(x, x.shape.map(() => 1), x.shape.map(() => 0), 1.5)
        : ops.concatenate([x, x], x.ndim - 1);
    } else {
      y = ops.stopGradient(pick(pool));
    }
    if (y && y.size <= 4096) pool.push(y);
  }
  const outs = pool.slice(-4);
  for (let i = 0; i < 3; i++) outs.push(pick(pool));
  return outs;
}

function randomReshape(shape: readonly number[], r: () => number): number[] {
  const s = [...shape];
  const u = r();
  if (u < 0.25) return [s.reduce((a, b) => a * b, 1)];
  if (u < 0.5 && s.length > 1) {
    const i = Math.floor(r() * (s.length - 1));
    return [...s.slice(0, i), s[i] * s[i + 1], ...s.slice(i + 2)];
  }
  if (u < 0.75) {
    const i = Math.floor(r() * (s.length + 1));
    return [...s.slice(0, i), 1, ...s.slice(i)];
  }
  const i = s.findIndex((d) => d % 2 === 0 && d > 2);
  if (i >= 0) return [...s.slice(0, i), 2, s[i] / 2, ...s.slice(i + 1)];
  // the same sizes in another order: a reshape whose index map is not linear
  return [...s.slice(1), s[0]];
}

Deno.test("cpu fused: loops split across threads equal one thread bit for bit", async () => {
  let s = 5;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5;
  const x = hostTensor([300, 517], "f32", Array.from({ length: 300 * 517 }, rand));
  const b = hostTensor([517], "f32", Array.from({ length: 517 }, rand));
  const flat = hostTensor([155100], "f32", Array.from({ length: 155100 }, rand));
  // a 2-D loop split by rows, a transposed read, and a 1-D loop split by ranges
  const fn = (a: Tensor, bias: Tensor, f: Tensor) => [
    gelu(ops.add(ops.mul(a, 3), bias)),
    ops.sub(ops.transpose(a), ops.reshape(f, [517, 300])),
    ops.div(ops.exp(f), ops.add(ops.mul(f, f), 1)),
  ];
  const specs = [x, b, flat].map((t) => ({ shape: t.shape, dtype: t.dtype }));
  const run = async (threads: boolean) => {
    const ex = new FusedExecutable(trace(fn, ...specs).graph, { threads });
    const out = await ex.execute([x, b, flat]) as HostTensor[];
    ex.dispose();
    return { out, stats: ex.stats };
  };
  const one = await run(false);
  const many = await run(true);
  if (many.stats.threads === 1) {
    console.log("one core (or DEIT3_CPU_THREADS=1): nothing to split");
    return;
  }
  assertEquals(many.stats.threadedLoops, 3);
  many.out.forEach((t, i) => assertBitEqual(t, one.out[i], `output ${i}`));
});
