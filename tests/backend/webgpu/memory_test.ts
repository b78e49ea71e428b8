/**
 * The WebGPU memory plan, without a device: ViT-B/16 at batch 256 planned for an 80 GB GPU
 * (the real tracer, planner, code generator and slot allocator) fits, `--grad-ckpt` lowers what
 * is allocated, slots never outgrow their largest tenant nor hold two live values, kernels stay
 * in dependency order, and a program too large for the adapter is refused in figures, with the
 * batch and grad-ckpt named by the trainer.
 */
import { GPU_80GB, planTrainStep, VIT_B16 } from "../../../bench/webgpu.ts";
import type { Backend } from "../../../lib/backend/backend.ts";
import {
  checkMemory,
  type CompiledPlan,
  DeviceMemoryError,
  gib,
} from "../../../lib/backend/webgpu/memory.ts";
import { memoryFromName } from "../../../lib/backend/webgpu/device.ts";
import { paramSpecs } from "../../../lib/model/params.ts";
import { compileTrainPrograms } from "../../../lib/train/programs.ts";
import { benchStepConfig } from "../../../bench/train_step.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../../assert.ts";

const plain = planTrainStep(VIT_B16, 256, GPU_80GB);
const ckpt = planTrainStep({ ...VIT_B16, gradCkpt: true }, 256, GPU_80GB);

Deno.test("webgpu plan: ViT-B/16 at batch 256 fits an 80 GB GPU; grad-ckpt allocates less", () => {
  for (const p of [plain, ckpt]) {
    checkMemory(p.memory, GPU_80GB.memoryBytes); // throws if it does not fit
    assert(p.memory.total < 80e9, `${gib(p.memory.total)}`);
    assert(p.memory.allocated >= p.memory.peakLive);
  }
  assert(
    ckpt.memory.allocated < plain.memory.allocated / 2,
    `grad-ckpt allocates ${gib(ckpt.memory.allocated)}, without ${gib(plain.memory.allocated)}`,
  );
  assert(ckpt.memory.peakLive < plain.memory.peakLive / 2);
});

Deno.test("webgpu plan: slots fit their largest tenant, tenants never overlap, order is topological", () => {
  for (const p of [plain, ckpt]) checkSlots(p);
});

Deno.test("webgpu plan: a program larger than the adapter is refused with its figures", () => {
  const need = gib(plain.memory.total).replace(".", "\\.");
  assertThrows(
    () => checkMemory(plain.memory, 16e9),
    new RegExp(`needs ${need} on the device, the adapter has 14\\.9 GiB .*peak live`),
  );
});

Deno.test("webgpu plan: the trainer names batch and grad-ckpt when the step does not fit", async () => {
  const cfg = benchStepConfig({ ...VIT_B16, layers: 1 });
  const tooSmall = {
    compile: () => Promise.reject(new DeviceMemoryError(plain.memory, 16e9)),
  } as unknown as Backend;
  const params = paramSpecs(cfg.vit);
  const shape = { microBatch: 256, accum: 1, imageSize: 224, mixing: false };
  await assertRejects(
    () => compileTrainPrograms(tooSmall, cfg, shape, params, { mu: params, nu: params }),
    /batch 256 per device with grad-ckpt off: webgpu: .* adapter has 14\.9 GiB .*Enable --grad-ckpt/,
  );
});

/** Every slot is exactly as large as its largest tenant, and its tenants' lifetimes are disjoint. */
function checkSlots(p: CompiledPlan): void {
  const written = new Map<number, number>(), lastRead = new Map<number, number>();
  p.kernels.forEach((k, i) => {
    for (const n of k.bindings.slice(k.outputs)) {
      const l = p.loc.get(n.id);
      assert(l, `kernel ${i} (${k.label}) reads ${n}, which has no storage`);
      if (l.kind === "slot" || l.kind === "output") {
        assert(
          written.has(n.id) && written.get(n.id)! < i,
          `${k.label} reads ${n} before it is written`,
        );
      }
      lastRead.set(n.id, i);
    }
    for (const n of k.bindings.slice(0, k.outputs)) if (!written.has(n.id)) written.set(n.id, i);
  });
  const tenants = new Map<number, { bytes: number; from: number; to: number }[]>();
  for (const [id, l] of p.loc) {
    if (l.kind !== "slot") continue;
    const from = written.get(id)!, to = Math.max(from, lastRead.get(id) ?? from);
    const bytes = p.kernels[from].bindings.find((n) => n.id === id)!.size * 4;
    tenants.set(l.slot, [...(tenants.get(l.slot) ?? []), { bytes, from, to }]);
  }
  assertEquals(tenants.size, p.slotSizes.length);
  for (const [slot, ts] of tenants) {
    const largest = Math.ceil(Math.max(...ts.map((t) => t.bytes)) / 16) * 16;
    assertEquals(p.slotSizes[slot], largest, `slot ${slot}`);
    ts.sort((a, b) => a.from - b.from);
    for (let i = 1; i < ts.length; i++) {
      assert(ts[i - 1].to < ts[i].from, `slot ${slot}: two tenants alive at kernel ${ts[i].from}`);
    }
  }
}

Deno.test("webgpu plan: an adapter's memory from the size in its name", () => {
  assertEquals(memoryFromName("NVIDIA H100 80GB HBM3"), 80e9);
  assertEquals(memoryFromName("NVIDIA A100-SXM4-40GB"), 40e9);
  assertEquals(memoryFromName("NVIDIA GeForce RTX 4090"), undefined);
});
