import { MetricWindow } from "../../lib/train/metric_window.ts";
import { assert, assertEquals } from "../assert.ts";

Deno.test("metric window: means over the steps since the last reset, prefixed", () => {
  const w = new MetricWindow();
  w.add({ loss: 2, acc1: 0.5 }, 8);
  w.add({ loss: 4, acc1: 1 }, 8);
  assertEquals(w.count, 2);
  assertEquals(w.means("train/"), { "train/loss": 3, "train/acc1": 0.75 });
  w.reset();
  assertEquals(w.count, 0);
  w.add({ loss: 1, acc1: 0 }, 8);
  assertEquals(w.means(), { loss: 1, acc1: 0 });
});

Deno.test("metric window: throughput counts images since the clock restarted", () => {
  const w = new MetricWindow();
  w.add({ loss: 1 }, 100);
  const t = performance.now();
  const rate = w.imagesPerSecond(t + 1000);
  assert(rate > 0 && rate <= 100, `rate ${rate}`);
  w.restartClock();
  assertEquals(w.imagesPerSecond(performance.now() + 1000) < 1, true);
  assertEquals(w.count, 1, "restarting the clock keeps the metric window");
});

Deno.test("metric window: a restored state continues the same means", () => {
  const w = new MetricWindow();
  w.add({ loss: 0.1 + 0.2 }, 8);
  const r = MetricWindow.restore(JSON.parse(JSON.stringify(w.state())));
  w.add({ loss: 0.7 }, 8);
  r.add({ loss: 0.7 }, 8);
  assertEquals(r.means(), w.means());
  assertEquals(r.count, 2);
});
