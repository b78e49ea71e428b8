/**
 * Compares the train loss curves of two runs (their metrics.jsonl): same logged steps, and
 * every window's mean loss within `--tolerance` (default 0.05). Prints one JSON line; exits 1
 * when they disagree. Used by scripts/device/device_check.sh (300 MNIST steps, PJRT against CPU).
 *
 *   deno run -A scripts/checks/compare_losses.ts RUN_DIR_A RUN_DIR_B [--tolerance X]
 */
const args = [...Deno.args];
const t = args.indexOf("--tolerance");
const tolerance = t >= 0 ? Number(args.splice(t, 2)[1]) : 0.05;
const [a, b] = args;
if (!a || !b || !Number.isFinite(tolerance)) {
  console.error("usage: compare_losses.ts RUN_DIR_A RUN_DIR_B [--tolerance X]");
  Deno.exit(2);
}
const curve = (dir: string) =>
  new Map(
    Deno.readTextFileSync(`${dir}/metrics.jsonl`).trim().split("\n").map((l) => JSON.parse(l))
      .filter((e) => typeof e["train/loss"] === "number")
      .map((e) => [e.step as number, e["train/loss"] as number]),
  );
const ca = curve(a), cb = curve(b);
const steps = [...ca.keys()];
const diffs = steps.map((s) => Math.abs(ca.get(s)! - (cb.get(s) ?? NaN)));
const worst = Math.max(...diffs.map((d) => Number.isNaN(d) ? Infinity : d));
const worstAt = steps[diffs.indexOf(worst)] ?? null;
const sameSteps = ca.size === cb.size && steps.every((s) => cb.has(s));
const pass = ca.size > 0 && sameSteps && worst <= tolerance;
console.log(JSON.stringify({
  points: ca.size,
  same_steps: sameSteps,
  worst_loss_difference: worst,
  worst_at_step: worstAt,
  final_loss: [ca.get(steps.at(-1)!), cb.get(steps.at(-1)!)],
  tolerance,
  pass,
}));
if (!pass) Deno.exit(1);
