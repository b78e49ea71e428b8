/**
 * Device array lifetimes, alike on every backend: `[Symbol.dispose]` frees, freeing twice or
 * after donation does nothing, and any other use of a freed or donated array throws (the CPU
 * backend is as strict as the devices whose donated buffers hold outputs after the call).
 */
import type { Backend } from "../../lib/backend/backend.ts";
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { Compiled } from "../../lib/backend/jit.ts";
import { hostTensor } from "../../lib/ir/host_tensor.ts";
import * as ops from "../../lib/ir/ops.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { webgpuBackend, webgpuGate } from "./webgpu/gate.ts";

const x = hostTensor([4], "f32", [1, 2, 3, 4]);
const step = (p: Tensor) => ops.add(ops.mul(p, 2), 1);

const BACKENDS: [string, () => Promise<Backend>, { ignore?: boolean }][] = [
  ["cpu", () => Promise.resolve(new CpuBackend()), {}],
  ["cpu reference", () => Promise.resolve(new CpuBackend({ mode: "reference" })), {}],
  ["webgpu", () => webgpuBackend(), webgpuGate],
];

for (const [name, open, gate] of BACKENDS) {
  const test = (what: string, fn: (b: Backend) => Promise<void>) =>
    Deno.test({ ...gate, name: `${name} arrays: ${what}`, fn: async () => fn(await open()) });

  test("a donated argument cannot be read or passed again", async (b) => {
    const c = await Compiled.create(b, step, x);
    const dev = await b.fromHost(x);
    const out = await c.call([dev], { donate: [true] });
    assertEquals(Array.from((await b.toHost(out)).data), [3, 5, 7, 9]);
    await assertRejects(() => b.toHost(dev), /freed|donated/);
    await assertRejects(() => c.call([dev]), /freed|donated/);
    b.free(dev); // freeing a donated array does nothing
    // chained donated steps: each output feeds the next call
    let p = out;
    for (let i = 0; i < 3; i++) p = await c.call([p], { donate: [true] });
    assertEquals((await b.toHost(p)).data[0], 31);
    await assertRejects(() => b.toHost(out), /freed|donated/);
    c.dispose();
  });

  test("Symbol.dispose frees; a freed array throws when used", async (b) => {
    const c = await Compiled.create(b, step, x);
    let kept;
    {
      using dev = await b.fromHost(x);
      kept = dev;
      assertEquals(Array.from((await b.toHost(dev)).data), [1, 2, 3, 4]);
    }
    await assertRejects(() => b.toHost(kept), /freed/);
    await assertRejects(() => c.call([kept]), /freed/);
    b.free(kept); // twice: nothing
    c.dispose();
  });
}

Deno.test("cpu arrays: compile-time donation consumes the argument at every call", async () => {
  const cpu = new CpuBackend();
  const c = await Compiled.createWith(cpu, { donate: [true] }, step, x);
  const dev = await cpu.fromHost(x);
  const out = await c.call([dev]);
  await assertRejects(() => cpu.toHost(dev), /was donated to an earlier execute/);
  assertEquals(Array.from((await cpu.toHost(out)).data), [3, 5, 7, 9]);
  await assertRejects(() => c.call([out]).then(() => cpu.toHost(out)), /was donated/);
});

Deno.test("cpu arrays: outputs are their own arrays; a host tensor is not a device array", async () => {
  const cpu = new CpuBackend();
  const c = await Compiled.create(cpu, (a: Tensor, b: Tensor) => [a, ops.neg(b)], x, x);
  const [a, b] = [await cpu.fromHost(x), await cpu.fromHost(x)];
  const [same, neg] = await c.call([a, b], { donate: [true, false] });
  // the pass-through output survives the donation of the input it equals
  assertEquals(Array.from((await cpu.toHost(same)).data), [1, 2, 3, 4]);
  assertEquals(Array.from((await cpu.toHost(neg)).data), [-1, -2, -3, -4]);
  assertEquals(Array.from((await cpu.toHost(b)).data), [1, 2, 3, 4]);
  await assertRejects(() => c.executable.execute([x as never, b]), /not an array of the CPU/);
  assertThrows(() => cpu.free(x as never), /not an array of the CPU/);
});
