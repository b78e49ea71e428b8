/**
 * Device smoke check for the PJRT bindings (needs a real plugin, e.g. on the GPU machine):
 *
 *   deno run -A ffi/smoke.ts [--pjrt-plugin PATH] [--steps N]
 *
 * Compiles an f32[4] add and a donating accumulator, checks the numbers, and prints the cost of
 * one execute + await + destroy. Then a 128x256 by 256x64 dot at DEFAULT precision (on NVIDIA a
 * cuBLAS/cuBLASLt or Triton GEMM: the libraries an f32[4] add never loads) and, with 2+ devices,
 * an all-reduce over all of them (NCCL). Exits 1 on a wrong value.
 */
import { parseArgs } from "node:util";
import { PjrtClient } from "./client.ts";
import { PjrtPluginNotFoundError } from "./discovery.ts";
import { BufferType } from "./pjrt_api.ts";

const f32x4 = (...v: number[]) => ({
  elementType: BufferType.F32,
  dims: [4],
  data: new Float32Array(v),
});
const floats = (h: { data: Uint8Array<ArrayBuffer> }) => new Float32Array(h.data.buffer);

const ADD = `module @add {
  func.func public @main(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
    %0 = "stablehlo.add"(%a, %b) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}`;

// The accumulator's storage is donated and reused for the output.
const ACCUMULATE = `module @accumulate {
  func.func public @main(%acc: tensor<4xf32> {tf.aliasing_output = 0 : i32},
                         %x: tensor<4xf32>) -> tensor<4xf32> {
    %0 = "stablehlo.add"(%acc, %x) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}`;

/** ones[128,256] x b[256,64] with b[k][j] = (k + j) % 4: every result is 64 * (0+1+2+3) = 384. */
export const DOT = `module @dot {
  func.func public @main(%a: tensor<128x256xf32>, %b: tensor<256x64xf32>) -> tensor<128x64xf32> {
    %0 = "stablehlo.dot_general"(%a, %b) {dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<128x256xf32>, tensor<256x64xf32>) -> tensor<128x64xf32>
    return %0 : tensor<128x64xf32>
  }
}`;

/** Sums f32[4] over `n` replicas (one per device). */
export function allReduce(n: number): string {
  const group = Array.from({ length: n }, (_, i) => i).join(", ");
  return `module @all_reduce attributes {mhlo.num_replicas = ${n} : i32, mhlo.num_partitions = 1 : i32} {
  func.func public @main(%a: tensor<4xf32>) -> tensor<4xf32> {
    %0 = "stablehlo.all_reduce"(%a) ({
    ^bb0(%x: tensor<f32>, %y: tensor<f32>):
      %s = "stablehlo.add"(%x, %y) : (tensor<f32>, tensor<f32>) -> tensor<f32>
      "stablehlo.return"(%s) : (tensor<f32>) -> ()
    }) {replica_groups = dense<[[${group}]]> : tensor<1x${n}xi64>} : (tensor<4xf32>) -> tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { "pjrt-plugin": { type: "string" }, steps: { type: "string", default: "2000" } },
  });
  const steps = Number(values.steps);
  using client = await PjrtClient.open({ pluginPath: values["pjrt-plugin"] }).catch((e) => {
    if (!(e instanceof PjrtPluginNotFoundError)) throw e;
    console.error(`smoke: ${e.message}`); // what was searched; no stack for a missing plugin
    Deno.exit(1);
  });
  let ok = true;
  const check = (what: string, got: ArrayLike<number>, want: number[]) => {
    const pass = want.every((w, i) => got[i] === w);
    ok &&= pass;
    console.log(`${pass ? "ok  " : "FAIL"} ${what}: [${Array.from(got)}] (expected [${want}])`);
  };

  let t = performance.now();
  using add = await client.compile(ADD);
  console.log(`compile add: ${(performance.now() - t).toFixed(1)} ms`);
  using a = await client.bufferFromHost(f32x4(1, 2, 3, 4));
  using b = await client.bufferFromHost(f32x4(10, 20, 30, 40));
  using sum = add.execute([[a, b]])[0][0];
  check("add", floats(await sum.toHost()), [11, 22, 33, 44]);

  using accumulate = await client.compile(ACCUMULATE);
  let acc = await client.bufferFromHost(f32x4(0, 0, 0, 0));
  t = performance.now();
  for (let i = 0; i < steps; i++) {
    const next = accumulate.execute([[acc, a]], { donated: [true, false] })[0][0];
    acc[Symbol.dispose]();
    acc = next;
    await acc.ready();
  }
  const perStep = (performance.now() - t) / steps * 1000;
  check(
    `accumulate x${steps} (donated)`,
    floats(await acc.toHost()),
    [1, 2, 3, 4].map((v) => v * steps),
  );
  acc[Symbol.dispose]();
  console.log(`execute + await + destroy: ${perStep.toFixed(1)} us per step`);

  t = performance.now();
  using dot = await client.compile(DOT);
  console.log(`compile dot: ${(performance.now() - t).toFixed(1)} ms`);
  using ones = await client.bufferFromHost({
    elementType: BufferType.F32,
    dims: [128, 256],
    data: new Float32Array(128 * 256).fill(1),
  });
  using rhs = await client.bufferFromHost({
    elementType: BufferType.F32,
    dims: [256, 64],
    data: Float32Array.from({ length: 256 * 64 }, (_, i) => (Math.floor(i / 64) + i % 64) % 4),
  });
  using product = dot.execute([[ones, rhs]])[0][0];
  const got = floats(await product.toHost());
  check("dot 128x256x64 (DEFAULT precision)", [got[0], got[4095], got[8191]], [384, 384, 384]);
  ok &&= got.every((v) => v === 384);

  const n = client.devices.length;
  if (n >= 2) {
    t = performance.now();
    using reduce = await client.compile(allReduce(n), {
      numReplicas: n,
      deviceAssignment: client.devices.map((d) => [d.id]),
    });
    console.log(`compile all-reduce over ${n} devices: ${(performance.now() - t).toFixed(1)} ms`);
    const inputs = await Promise.all(
      client.devices.map((_, d) => client.bufferFromHost(f32x4(d + 1, 1, 0, -d), d)),
    );
    const outs = reduce.execute(inputs.map((x) => [x]));
    const s = (n * (n + 1)) / 2;
    for (const [d, [o]] of outs.entries()) {
      check(`all-reduce, device ${d}`, floats(await o.toHost()), [s, n, 0, -(s - n)]);
      o[Symbol.dispose]();
    }
    inputs.forEach((x) => x[Symbol.dispose]());
  } else {
    console.log("all-reduce: skipped (1 device)");
  }
  if (!ok) Deno.exit(1);
}
