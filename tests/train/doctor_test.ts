import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { runDoctor } from "../../lib/train/doctor.ts";
import { assert } from "../assert.ts";

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
