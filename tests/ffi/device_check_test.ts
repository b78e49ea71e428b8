/**
 * scripts/device/device_check.sh's plan (PLAN=1: the steps, their timeouts and commands, nothing run):
 * f32 and bf16 are steps of their own, every step has a timeout, the steps that matter most
 * (smoke, ViT-S/16 ours and peers, the MNIST loss comparison) fit in the script's budget by
 * their timeouts alone, and the slow ViT-B/16 compiles come after them. The script skips a step
 * whose timeout no longer fits, so the whole run stays under 8 minutes.
 */
import { assert, assertEquals } from "../assert.ts";

const SCRIPT = new URL("../../scripts/device/device_check.sh", import.meta.url).pathname;

Deno.test("device_check.sh: separate f32/bf16 steps, own timeouts, important ones within budget", async () => {
  const dir = await Deno.makeTempDir();
  const out = await new Deno.Command("bash", {
    args: [SCRIPT],
    env: { PLAN: "1", OUT: dir },
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(dir, { recursive: true }));
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, text + new TextDecoder().decode(out.stderr));
  const lines = text.trim().split("\n");
  const total = lines.pop()!;
  const steps = lines.map((l) => {
    const [name, secs, command] = l.split("\t");
    return { name, secs: Number(secs), command };
  });
  const budget = Number(/budget (\d+) s/.exec(total)![1]);
  assert(budget <= 475, `budget ${budget} s leaves room for setup within 8 minutes`);
  for (const s of steps) assert(s.secs > 0 && s.secs <= 60, `${s.name}: ${s.secs}`);
  const names = steps.map((s) => s.name);
  for (const m of ["s16", "b16"]) {
    for (const d of ["f32", "bf16"]) {
      const s = steps.find((s) => s.name === `ours-pjrt-${m}-${d}`)!;
      assert(s.command.includes(`--dtype ${d} `), s.command);
      assert(s.command.includes("--matmul-precision default"), s.command);
    }
  }
  // Everything up to the MNIST comparison fits by timeouts alone; ViT-B/16 comes after it.
  const compare = names.indexOf("mnist-compare");
  const before = steps.slice(0, compare + 1).reduce((a, s) => a + s.secs, 0);
  assert(before <= budget, `${before} s before the MNIST comparison`);
  assert(names.indexOf("ours-pjrt-b16-f32") > compare, names.join(" "));
  assertEquals(names.slice(0, 4), [
    "smoke",
    "doctor-pjrt",
    "ours-pjrt-s16-f32",
    "ours-pjrt-s16-bf16",
  ]);
  assert(total.startsWith(`total ${steps.reduce((a, s) => a + s.secs, 0)} s`), total);
});
