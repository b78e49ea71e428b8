/**
 * Resident training state on the CPU backend: a donated input's buffer is reused in place for
 * an output of the same dtype and size, the output is returned as a view of the executable's
 * memory, and passing it back donated copies nothing. Arrays that still view that memory when
 * the next call overwrites it keep their values (they move to a copy first).
 */
import { cpuArray, type CpuExecutable } from "../../../lib/backend/cpu/array.ts";
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import type { FusedExecutable } from "../../../lib/backend/cpu/executable.ts";
import type { DeviceArray } from "../../../lib/backend/backend.ts";
import { Compiled } from "../../../lib/backend/jit.ts";
import { hostTensor } from "../../../lib/ir/host_tensor.ts";
import * as ops from "../../../lib/ir/ops.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertEquals, assertRejects } from "../../assert.ts";

const p0 = hostTensor([4], "f32", [1, 2, 3, 4]);
const m0 = hostTensor([4], "f32", [0, 0, 0, 0]);
const g = hostTensor([4], "f32", [1, 1, 1, 1]);
// an optimizer-like update: the new state reads the old one only at the element it writes
const update = (p: Tensor, m: Tensor, g: Tensor) => {
  const m2 = ops.add(ops.mul(m, 0.5), g);
  return { p: ops.sub(p, m2), m: m2, norm: ops.sum(ops.mul(p, p)) };
};
type Out = { p: DeviceArray; m: DeviceArray; norm: DeviceArray };

async function compiled(cpu: CpuBackend, donate: boolean[]) {
  const c = await Compiled.createWith(cpu, { donate }, update, p0, m0, g);
  const exe = (c.executable as CpuExecutable).replicas[0] as FusedExecutable;
  return { c, exe };
}

const values = async (cpu: CpuBackend, a: DeviceArray) => Array.from((await cpu.toHost(a)).data);
const dataOf = (a: DeviceArray) => cpuArray(a, "test").host("test").data;

Deno.test("cpu resident: donated state is updated in place and handed back without copies", async () => {
  const cpu = new CpuBackend();
  const { c, exe } = await compiled(cpu, [true, true, false]);
  assertEquals([...exe.resident.values()].sort(), [0, 1]); // both state inputs
  let p = await cpu.fromHost(p0), m = await cpu.fromHost(m0);
  const want = { p: [1, 2, 3, 4], m: [0, 0, 0, 0] };
  let before: unknown = null;
  for (let i = 0; i < 4; i++) {
    const out: Out = await c.call([p, m, g]);
    want.m = want.m.map((x) => x * 0.5 + 1);
    want.p = want.p.map((x, k) => x - want.m[k]);
    assertEquals(await values(cpu, out.p), want.p);
    assertEquals(await values(cpu, out.m), want.m);
    // the state stays where it is: every call returns the same view of the arena
    if (before) assert(dataOf(out.p) === before);
    before = dataOf(out.p);
    await assertRejects(() => cpu.toHost(p), /donated/);
    p = out.p;
    m = out.m;
  }
  c.dispose();
  // disposing the executable moves live outputs into memory of their own
  assertEquals(await values(cpu, p), want.p);
});

Deno.test("cpu resident: arrays that still view the arena keep their values", async () => {
  const cpu = new CpuBackend();
  const { c } = await compiled(cpu, [true, true, false]);
  const first: Out = await c.call([p0, m0, g]);
  const kept = await values(cpu, first.p);
  // m handed back, p from elsewhere: first.p moves to a copy before it is overwritten
  const second: Out = await c.call([await cpu.fromHost(p0), first.m, g]);
  assertEquals(await values(cpu, first.p), kept);
  assertEquals(await values(cpu, second.p), [1 - 1.5, 2 - 1.5, 3 - 1.5, 4 - 1.5]);
  // resident outputs passed at other positions are read there, not clobbered by each other
  const third: Out = await c.call([second.m, second.p, second.p]);
  assertEquals(await values(cpu, third.m), [-0.75, 0.75, 2.25, 3.75]);
  assertEquals(await values(cpu, third.p), [2.25, 0.75, -0.75, -2.25]);
  c.dispose();
});

Deno.test("cpu resident: each donated input holds its own update, not another output of its size", async () => {
  const cpu = new CpuBackend();
  // a's update is computed first but returned second: the first output of a's size that fits
  // in a's buffer is b's update, which the caller hands back as b (a copy out and in per call)
  const fn = (a: Tensor, b: Tensor, g: Tensor) => {
    const a2 = ops.sub(a, g);
    const b2 = ops.sub(ops.mul(b, 0.5), g);
    return [b2, a2];
  };
  const c = await Compiled.createWith(cpu, { donate: [true, true, false] }, fn, p0, m0, g);
  const exe = (c.executable as CpuExecutable).replicas[0] as FusedExecutable;
  assertEquals([...exe.resident].sort(), [[0, 1], [1, 0]]); // output 0 (b') in b, 1 (a') in a
  let [b, a] = [await cpu.fromHost(m0), await cpu.fromHost(p0)];
  const views: unknown[] = [];
  for (let i = 0; i < 3; i++) {
    [b, a] = await c.call([a, b, g]);
    views.push(dataOf(a), dataOf(b));
  }
  assertEquals(await values(cpu, a), [-2, -1, 0, 1]);
  assertEquals(await values(cpu, b), [-1.75, -1.75, -1.75, -1.75]);
  assertEquals(new Set(views).size, 2); // the state never moved
  c.dispose();
});

Deno.test("cpu resident: a donated array's own memory is freed once copied in, nothing else", async () => {
  const cpu = new CpuBackend();
  const { c } = await compiled(cpu, [true, true, false]);
  const pHost = hostTensor([4], "f32", [1, 2, 3, 4]);
  const shared = new Float32Array(8); // m's memory is a view of a larger buffer: kept
  const mHost = { shape: [4], dtype: "f32" as const, data: shared.subarray(4) };
  const gHost = hostTensor([4], "f32", [1, 1, 1, 1]);
  const out: Out = await c.call([cpu.adopt(pHost), cpu.adopt(mHost), cpu.adopt(gHost)]);
  assertEquals(pHost.data.length, 0); // adopted and donated: freed
  assertEquals(mHost.data.length, 4);
  assertEquals(gHost.data.length, 4); // not donated
  assertEquals(await values(cpu, out.p), [0, 1, 2, 3]);
  // an input returned as it is keeps its memory (the output is that array)
  const same = await Compiled.createWith(
    cpu,
    { donate: [true, true] },
    (x: Tensor, y: Tensor) => ({
      x,
      y: ops.neg(y),
    }),
    p0,
    p0,
  );
  const [xHost, yHost] = [
    hostTensor([4], "f32", [1, 2, 3, 4]),
    hostTensor([4], "f32", [5, 6, 7, 8]),
  ];
  const r = await same.call([cpu.adopt(xHost), cpu.adopt(yHost)]);
  assertEquals(await values(cpu, r.x), [1, 2, 3, 4]);
  assertEquals(await values(cpu, r.y), [-5, -6, -7, -8]);
  assertEquals(yHost.data.length, 0);
  c.dispose();
  same.dispose();
});
