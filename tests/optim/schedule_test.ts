import { warmupCosine } from "../../lib/optim/schedule.ts";
import { layerIndex } from "../../lib/optim/optimizer.ts";
import { assert, assertEquals } from "../assert.ts";

Deno.test("warmupCosine matches optax's float32 values within 1e-9 relative", async () => {
  const ref = JSON.parse(
    await Deno.readTextFile(new URL("../fixtures/reference/schedule.json", import.meta.url)),
  );
  const s = warmupCosine({
    initValue: ref.init_value,
    peakValue: ref.peak_value,
    warmupSteps: ref.warmup_steps,
    decaySteps: ref.decay_steps,
    endValue: ref.end_value,
  });
  ref.values.forEach((v: number, i: number) => {
    const rel = Math.abs(s(i) - v) / Math.abs(v);
    assert(rel <= 1e-9, `step ${i}: ${s(i)} vs ${v} (rel ${rel})`);
  });
  // Past the end the schedule holds its end value.
  assertEquals(s(1000), s(100));
});

Deno.test("layer index for layer-wise lr decay follows the original", () => {
  assertEquals(layerIndex("model.embed.wte.kernel", 12), 0);
  assertEquals(layerIndex("model.layer_0.attn.wq.kernel", 12), 1);
  assertEquals(layerIndex("model.layer_11.ff.w2.bias", 12), 12);
  assertEquals(layerIndex("model.norm.scale", 12), 12);
  assertEquals(layerIndex("model.head.kernel", 12), 12);
});
