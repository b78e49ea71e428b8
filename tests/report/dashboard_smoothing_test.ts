/**
 * The dashboard's smoothing against TensorBoard's: the function of TensorBoard's own frontend
 * (tensorboard_smoothing.ts) where the peer venv is installed, and its recorded answers always.
 */
import { assertEquals } from "../assert.ts";
import {
  emaSmooth,
  formatDuration,
  formatTicks,
  formatValue,
} from "../../lib/report/dashboard_assets/dashboard.js";
import {
  FIXTURE,
  referenceAnswers,
  SMOOTHING_CASES,
  tensorboardSmoothing,
} from "./tensorboard_smoothing.ts";

const ours = () =>
  SMOOTHING_CASES.map((c) =>
    c.weights.map((w) =>
      emaSmooth(c.ys, w).map((y: number) => (Number.isFinite(y) ? y : String(y)))
    )
  );

Deno.test("dashboard smoothing equals TensorBoard's, as recorded from tensorboard 2.21", async () => {
  const recorded = JSON.parse(await Deno.readTextFile(FIXTURE));
  assertEquals(ours(), recorded);
});

const smooth = await tensorboardSmoothing();
if (typeof smooth === "string") console.log(`live TensorBoard smoothing check skipped: ${smooth}`);

Deno.test({
  name: "dashboard smoothing equals TensorBoard's, run from the installed tensorboard's bundle",
  ignore: typeof smooth === "string",
  fn: async () => {
    if (typeof smooth === "string") return;
    assertEquals(ours(), await referenceAnswers(smooth));
  },
});

Deno.test("dashboard readout formats", () => {
  assertEquals(formatValue(0.30001234), "0.30001");
  assertEquals(formatValue(87.23456), "87.235");
  assertEquals(formatValue(1.5e-4), "1.500e-4");
  assertEquals(formatValue(null), "-");
  assertEquals(formatDuration(3725), "1h02m");
  assertEquals(formatDuration(65), "1m05s");
  assertEquals(formatTicks([0.0006, 0.0008, 0.001]), ["6e-4", "8e-4", "1e-3"]);
  assertEquals(formatTicks([0.00055, 0.0006, 0.00065]), ["5.5e-4", "6.0e-4", "6.5e-4"]);
  assertEquals(formatTicks([0, 0.5, 1, 1.5]), ["0", "0.5", "1", "1.5"]);
  assertEquals(formatTicks([840, 860, 880]), ["840", "860", "880"]);
});
