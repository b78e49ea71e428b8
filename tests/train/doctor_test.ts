import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { runDoctor } from "../../lib/train/doctor.ts";
import { formatReport } from "../../tasks/doctor.ts";
import { assert, assertEquals } from "../assert.ts";

const REF = new URL("../fixtures/reference/vit-a", import.meta.url).pathname;

Deno.test("doctor: CPU backend matches the flax/optax reference vit-a within 1e-5", async () => {
  const r = await runDoctor(new CpuBackend(), REF, 1e-5);
  assert(r.logits_max_abs <= 1e-5, `logits ${r.logits_max_abs}`);
  assert(r.loss_abs <= 1e-5, `loss ${r.loss_abs}`);
  assert(r.grads_max_abs <= 1e-5, `grads ${r.grads_max_abs}`);
  for (const [k, v] of Object.entries(r.after3)) assert(v <= 1e-5, `${k}: ${v}`);
  assert(r.pass);
});

Deno.test("doctor: a perturbed reference fails", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for await (const e of Deno.readDir(REF)) {
      await Deno.copyFile(`${REF}/${e.name}`, `${dir}/${e.name}`);
    }
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
    meta.label_smoothing = 0.2; // the reference was computed with 0.1
    await Deno.writeTextFile(`${dir}/meta.json`, JSON.stringify(meta));
    const r = await runDoctor(new CpuBackend(), dir, 1e-5);
    assert(!r.pass && r.loss_abs > 1e-3, `loss error ${r.loss_abs}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("doctor report: every row says ok or FAIL, the grads row too", () => {
  const report = (worst: { abs: number; rel: number }) => ({
    backend: "cpu",
    device: "test",
    reference: "ref",
    tolerance: 1e-5,
    logits_max_abs: 4e-8,
    loss_abs: 1e-8,
    grads_max_abs: worst.abs,
    grads_worst: { path: "model/head/kernel", ...worst },
    after3: { adamw: 2e-7 },
    seconds: 1,
    pass: true,
  });
  const rows = (text: string) => text.split("\n").filter((l) => l.startsWith("  "));
  const ok = formatReport(report({ abs: 2e-7, rel: 1e-6 }));
  assertEquals(rows(ok).length, 4);
  for (const row of rows(ok)) assert(/\s(ok|FAIL)\b/.test(row), row);
  assert(/grads max \|err\|\s+2\.00e-7\s+ok \(worst leaf model\/head\/kernel/.test(ok), ok);
  // Large absolutely but within 10x the tolerance relatively: still ok; both over: FAIL.
  assert(/grads.*\sok \(/.test(formatReport(report({ abs: 1e-3, rel: 5e-5 }))));
  assert(/grads.*\sFAIL \(/.test(formatReport(report({ abs: 1e-3, rel: 1e-3 }))));
});
