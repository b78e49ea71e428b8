/**
 * `doctor` on references made the same way as vit-a but by another implementation
 * (scripts/fixtures/make_reference_torch.py, validated against vit-a to ~1.7e-7): gap pooling,
 * fixed sincos2d position embeddings, no LayerScale, one head, other sizes.
 */
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { leavesWithPaths } from "../../lib/ir/pytree.ts";
import { runDoctor } from "../../lib/train/doctor.ts";
import { assert, assertEquals } from "../assert.ts";

const REFS = ["vit-gap-sincos", "vit-b-ls", "vit-h1-sincos-cls"];
const dirOf = (name: string) => new URL(`../fixtures/reference/${name}`, import.meta.url).pathname;

for (const name of REFS) {
  Deno.test(`doctor: CPU backend passes the torch-made reference ${name} within 1e-5`, async () => {
    const r = await runDoctor(new CpuBackend(), dirOf(name), 1e-5);
    assert(r.logits_max_abs <= 1e-5, `logits ${r.logits_max_abs}`);
    assert(r.loss_abs <= 1e-5, `loss ${r.loss_abs}`);
    assert(r.grads_max_abs <= 1e-5, `grads ${r.grads_max_abs} (${r.grads_worst.path})`);
    assertEquals(Object.keys(r.after3).sort(), [
      "adamw",
      "adamw-clip1-lrdecay0.75",
      "lamb",
    ]);
    for (const [k, v] of Object.entries(r.after3)) assert(v <= 1e-5, `${k}: ${v}`);
    assert(r.pass);
  });

  Deno.test(`doctor refs: ${name} holds the tree and batch its meta.json describes`, async () => {
    const dir = dirOf(name);
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
    const c = meta.config;
    const shapes = new Map(
      leavesWithPaths<HostTensor>(await readFlaxMsgpackFile(`${dir}/params.msgpack`))
        .map(([path, t]) => [path, t.shape]),
    );
    const grid = c.image_size / c.patch_size;
    assertEquals(shapes.get("model.embed.wte.kernel"), [c.patch_size, c.patch_size, 3, c.dim]);
    assertEquals(
      shapes.get("model.embed.cls_token"),
      c.pooling === "cls" ? [1, 1, c.dim] : undefined,
    );
    assertEquals(
      shapes.get("model.embed.wpe"),
      c.posemb === "learnable" ? [grid, grid, c.dim] : undefined,
    );
    assertEquals(shapes.get("model.head.kernel"), [c.dim, c.labels]);
    for (let i = 0; i < c.layers; i++) {
      const hd = c.dim / c.heads;
      assertEquals(shapes.get(`model.layer_${i}.attn.wq.kernel`), [c.dim, c.heads, hd]);
      assertEquals(shapes.get(`model.layer_${i}.attn.wo.kernel`), [c.heads, hd, c.dim]);
      assertEquals(shapes.get(`model.layer_${i}.scale1`), c.layerscale ? [c.dim] : undefined);
    }
    assert(!shapes.has(`model.layer_${c.layers}.norm1.scale`), "more layers than meta says");

    const io = await readFlaxMsgpackFile(`${dir}/io.msgpack`) as Record<string, HostTensor>;
    assertEquals(io.images.shape, [meta.batch, 3, c.image_size, c.image_size]);
    assertEquals(io.images.dtype, "u8");
    assertEquals(io.labels.shape, [meta.batch]);
    assertEquals(io.logits.shape, [meta.batch, c.labels]);
    assertEquals(io.loss.shape, []);
    assertEquals(io.loss.data[0], Math.fround(meta.loss));
    assert(/make_reference_torch\.py with torch/.test(meta.note), "meta.note names its maker");
  });
}

Deno.test("doctor refs: vit-b-ls read with gap pooling instead of cls fails", async () => {
  // The CLS token is then ignored; the logits must move far beyond the tolerance.
  const src = dirOf("vit-b-ls");
  const dir = await Deno.makeTempDir();
  try {
    for await (const e of Deno.readDir(src)) {
      await Deno.copyFile(`${src}/${e.name}`, `${dir}/${e.name}`);
    }
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
    meta.config.pooling = "gap";
    await Deno.writeTextFile(`${dir}/meta.json`, JSON.stringify(meta));
    const r = await runDoctor(new CpuBackend(), dir, 1e-5);
    assert(!r.pass && r.logits_max_abs > 1e-3, `logits error ${r.logits_max_abs}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
