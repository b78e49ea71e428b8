/**
 * Device smoke check for the PJRT bindings (needs a real plugin, e.g. on the GPU machine):
 *
 *   deno run -A ffi/smoke.ts [--pjrt-plugin PATH] [--steps N]
 *
 * Compiles an f32[4] add and a donating accumulator, checks the numbers, and prints the cost of
 * one execute + await + destroy. Exits 1 on a wrong value.
 */
import { parseArgs } from "node:util";
import { PjrtClient } from "./client.ts";
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

if (import.meta.main) {
  const { values } = parseArgs({
    options: { "pjrt-plugin": { type: "string" }, steps: { type: "string", default: "2000" } },
  });
  const steps = Number(values.steps);
  using client = await PjrtClient.open({ pluginPath: values["pjrt-plugin"] });
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
  if (!ok) Deno.exit(1);
}
