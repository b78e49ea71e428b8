/**
 * `convert --timm-model NAME`: the layout of each timm ViT family, checked against timm 1.x
 * itself (strict `load_state_dict`, tensors bit for bit, logits) in the peer venv; the checks
 * against the named model; and `--gelu exact` giving timm's logits within 1e-5.
 */
import { convertCheckpoint } from "../../lib/checkpoint/convert.ts";
import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import { flaxToTimm, timmToFlax } from "../../lib/checkpoint/timm.ts";
import { checkTimmModel, timmModel } from "../../lib/checkpoint/timm_models.ts";
import type { Tree } from "../../lib/checkpoint/tree.ts";
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { evaluate } from "../../lib/backend/jit.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { type ViTConfig, vitForward } from "../../lib/model/vit.ts";
import { main as convertMain } from "../../tasks/convert.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../assert.ts";
import { PEER_PYTHON, timmCheck, warnNoPeer } from "./timm_peer.ts";

const FIX = new URL("../fixtures/checkpoint/params.msgpack", import.meta.url).pathname;
warnNoPeer("timm layout tests against timm");

Deno.test("timm model names: families, sizes and layouts", () => {
  const d3 = timmModel("deit3_small_patch16_224");
  assertEquals(
    [d3.family, d3.dim, d3.depth, d3.heads, d3.patch, d3.imageSize, d3.noEmbedClass],
    ["deit3", 384, 12, 6, 16, 224, true],
  );
  const h = timmModel("deit3_huge_patch14_224.fb_in22k_ft_in1k");
  assertEquals([h.dim, h.depth, h.heads, h.patch], [1280, 32, 16, 14]);
  const v = timmModel("vit_base_patch16_384.augreg_in21k_ft_in1k");
  assertEquals([v.noEmbedClass, v.layerScale, v.imageSize], [false, false, 384]);
  assertEquals(timmModel("deit_tiny_patch16_224").noEmbedClass, false);
  assertThrows(() => timmModel("deit_base_distilled_patch16_224"), /distilled models/);
  assertThrows(() => timmModel("resnet50"), /not a timm ViT this converter knows/);
});

/** A tree with only the shapes checkTimmModel reads (no real weights). */
function shapesTree(dim: number, depth: number, patch: number, grid: number, labels: number) {
  const heads = { 384: 6, 768: 12, 1024: 16, 1280: 16 }[dim]!;
  const t = (shape: number[]) => hostTensor(shape, "f32");
  const model: Tree = {
    embed: { wte: { kernel: t([patch, patch, 3, dim]) }, wpe: t([grid, grid, 1]) },
    head: { kernel: t([1, labels]) },
  };
  for (let i = 0; i < depth; i++) model[`layer_${i}`] = { scale1: t([1]) };
  (model.layer_0 as Tree).attn = { wq: { kernel: t([1, heads, 1]) } };
  return { model };
}

Deno.test("checkTimmModel: the original's checkpoints and the timm arguments they need", () => {
  const d3b = timmModel("deit3_base_patch16_224");
  // deit3-b16-pt-192-in1k: a 12x12 grid
  assertEquals(checkTimmModel(shapesTree(768, 12, 16, 12, 1000), d3b), [
    'timm.create_model("deit3_base_patch16_224", img_size=192) loads it strictly',
  ]);
  // deit3-l16-pt-224-in21k: 19167 classes; deit3-h14-pt-154: 11x11 patches of 14
  assertEquals(
    checkTimmModel(shapesTree(1024, 24, 16, 14, 19167), timmModel("deit3_large_patch16_224")),
    ['timm.create_model("deit3_large_patch16_224", num_classes=19167) loads it strictly'],
  );
  assertEquals(
    checkTimmModel(shapesTree(1280, 32, 14, 11, 1000), timmModel("deit3_huge_patch14_224")),
    ['timm.create_model("deit3_huge_patch14_224", img_size=154) loads it strictly'],
  );
  assertEquals(checkTimmModel(shapesTree(768, 12, 16, 14, 1000), d3b, true), [
    'timm.create_model("deit3_base_patch16_224", num_classes=0) loads it strictly',
  ]);
  // Layer scale in a vit_* model needs init_values.
  assert(
    checkTimmModel(shapesTree(384, 12, 16, 14, 1000), timmModel("vit_small_patch16_224"))[0]
      .includes('("vit_small_patch16_224", init_values=1e-6) loads it strictly'),
  );
  // The DeiT recipes (no layer scale): a plain deit_*/vit_* model.
  const deit = shapesTree(384, 12, 16, 14, 1000);
  for (let i = 0; i < 12; i++) delete (deit.model[`layer_${i}`] as Tree).scale1;
  assertEquals(checkTimmModel(deit, timmModel("deit_small_patch16_224")), [
    'timm.create_model("deit_small_patch16_224") loads it strictly',
  ]);
  // What the named model cannot hold.
  assertThrows(() => checkTimmModel(shapesTree(384, 12, 16, 14, 1000), d3b), /width 384, .* 768/);
  assertThrows(() => checkTimmModel(shapesTree(768, 11, 16, 14, 1000), d3b), /11 blocks/);
  assertThrows(() => checkTimmModel(shapesTree(768, 12, 14, 16, 1000), d3b), /patch size 14/);
  const noScale = shapesTree(768, 12, 16, 14, 1000);
  for (let i = 0; i < 12; i++) delete (noScale.model[`layer_${i}`] as Tree).scale1;
  assertThrows(
    () => checkTimmModel(noScale, d3b),
    /no layer scale .* use a vit_\* or deit_\* name \(e\.g\. vit_base_patch16_224\)/,
  );
});

Deno.test("flaxToTimm noEmbedClass: pos_embed is the grid alone; back to Flax unchanged", async () => {
  const params = await readFlaxMsgpackFile(FIX);
  const sd = flaxToTimm(params, { noEmbedClass: true });
  assertEquals(sd.get("pos_embed")!.shape, [1, 64, 64]);
  const notes: string[] = [];
  const back = timmToFlax(sd, { numHeads: 4, notes });
  assertEquals(notes, []);
  const wpe = ((back.model as Tree).embed as Tree).wpe as HostTensor;
  const orig = ((params.model as Tree).embed as Tree).wpe as HostTensor;
  assertEquals(Array.from(wpe.data), Array.from(orig.data));
  // A zero class row folds silently (lossless); a non-zero one is noted.
  timmToFlax(flaxToTimm(params), { numHeads: 4, notes });
  assertEquals(notes, []);
  const withRow = flaxToTimm(params);
  withRow.get("pos_embed")!.data[3] = 0.25;
  timmToFlax(withRow, { numHeads: 4, notes });
  assertEquals(notes.length, 1);
  assert(notes[0].includes("added into cls_token"), notes[0]);
  await assertRejects(
    () => convertCheckpoint({ input: FIX, to: "msgpack", timmModel: "deit3_small_patch16_224" }),
    "--timm-model names the layout of a .pth or safetensors output",
  );
});

/** Runs tasks/convert.ts's main in this process; returns its exit code and stdout lines. */
async function convert(...args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    return { code: await convertMain(args), out: lines.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test({
  name: "timm deit3_small_patch16_224: .pth -> msgpack -> .pth is bit for bit, and loads strictly",
  ignore: !PEER_PYTHON,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "deit3-timm-" });
    try {
      await timmCheck("make", "deit3_small_patch16_224", `${dir}/timm.pth`);
      const a = await convert(`${dir}/timm.pth`, "--to", "msgpack", "--out", `${dir}/f.msgpack`);
      assertEquals(a.code, 0, a.out);
      assert(!a.out.includes("cls_token"), "no class row to fold: nothing lost, nothing said");
      assert(a.out.includes("note: GELU: weights trained with timm expect exact (erf)"), a.out);
      const b = await convert(
        `${dir}/f.msgpack`,
        "--out",
        `${dir}/back.pth`,
        "--timm-model",
        "deit3_small_patch16_224",
      );
      assertEquals(b.code, 0, b.out);
      assert(b.out.includes('timm.create_model("deit3_small_patch16_224") loads it'), b.out);
      assert(b.out.includes("note: GELU: timm's ViTs compute exact (erf) GELU"), b.out);
      const ok = await timmCheck(
        "check",
        "deit3_small_patch16_224",
        `${dir}/back.pth`,
        "--same-as",
        `${dir}/timm.pth`,
      );
      assertEquals(ok.trim(), "ok 176");
      // The default layout (vit_*, 197 positions) is what deit3_* refuses.
      await convert(`${dir}/f.msgpack`, "--out", `${dir}/vit.pth`);
      await assertRejects(
        () => timmCheck("check", "deit3_small_patch16_224", `${dir}/vit.pth`),
        "size mismatch for pos_embed",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Random normalized images, NHWC f32, the same bytes for both sides. */
function images(n: number, size: number): HostTensor {
  const data = new Float32Array(n * size * size * 3);
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    data[i] = (s / 0x7fffffff) * 4 - 2;
  }
  return hostTensor([n, size, size, 3], "f32", data);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertEquals(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test({
  name: "timm vit_* with a class position row and init_values: folded with a note, same logits",
  ignore: !PEER_PYTHON,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "deit3-timm-" });
    // vit_small_patch16_224 shrunk by timm's own kwargs (the name's checks use its sizes, so
    // keep them; depth and image size are what timm lets a user change).
    const kwargs = JSON.stringify({ init_values: 1e-6, img_size: 64, num_classes: 10 });
    try {
      await timmCheck("make", "vit_small_patch16_224", `${dir}/timm.pth`, kwargs);
      const a = await convert(`${dir}/timm.pth`, "--out", `${dir}/f.msgpack`);
      assertEquals(a.code, 0, a.out);
      assert(a.out.includes("note: pos_embed has a class-token row"), a.out);
      const b = await convert(
        `${dir}/f.msgpack`,
        "--out",
        `${dir}/back.pth`,
        "--timm-model",
        "vit_small_patch16_224",
      );
      assertEquals(b.code, 0, b.out);
      assert(
        b.out.includes(
          'timm.create_model("vit_small_patch16_224", img_size=64, num_classes=10, ' +
            "init_values=1e-6) loads it strictly",
        ),
        b.out,
      );
      const x = images(2, 64);
      await Deno.writeFile(`${dir}/x.f32`, new Uint8Array(x.data.buffer));
      for (const [pth, out] of [["timm.pth", "a.f32"], ["back.pth", "b.f32"]]) {
        await timmCheck(
          "check",
          "vit_small_patch16_224",
          `${dir}/${pth}`,
          kwargs,
          "--images",
          `${dir}/x.f32`,
          "--out",
          `${dir}/${out}`,
        );
      }
      const la = new Float32Array((await Deno.readFile(`${dir}/a.f32`)).buffer);
      const lb = new Float32Array((await Deno.readFile(`${dir}/b.f32`)).buffer);
      assertEquals(la.length, 20);
      const d = maxDiff(la, lb);
      assert(d <= 1e-6, `logits of the original and the round trip differ by ${d}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "--gelu exact: the project's forward gives a timm DeiT-III's logits within 1e-5",
  ignore: !PEER_PYTHON,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "deit3-timm-" });
    const kwargs = JSON.stringify({
      embed_dim: 64,
      depth: 2,
      num_heads: 4,
      patch_size: 8,
      img_size: 32,
      num_classes: 10,
    });
    try {
      await timmCheck("make", "deit3_small_patch16_224", `${dir}/timm.pth`, kwargs);
      const x = images(3, 32);
      await Deno.writeFile(`${dir}/x.f32`, new Uint8Array(x.data.buffer));
      await timmCheck(
        "check",
        "deit3_small_patch16_224",
        `${dir}/timm.pth`,
        kwargs,
        "--images",
        `${dir}/x.f32`,
        "--out",
        `${dir}/logits.f32`,
      );
      const theirs = new Float32Array((await Deno.readFile(`${dir}/logits.f32`)).buffer);
      await convertCheckpoint({ input: `${dir}/timm.pth`, out: `${dir}/f.msgpack`, numHeads: 4 });
      const params = await readFlaxMsgpackFile(`${dir}/f.msgpack`);
      const cfg: ViTConfig = {
        layers: 2,
        dim: 64,
        heads: 4,
        labels: 10,
        layerscale: true,
        patchSize: 8,
        imageSize: 32,
        posemb: "learnable",
        pooling: "cls",
        dropout: 0,
        droppath: 0,
        gradCkpt: false,
      };
      const logits = async (gelu: "tanh" | "exact") =>
        (await evaluate(
          new CpuBackend(),
          (p: unknown, xx: Tensor) => vitForward({ ...cfg, gelu }, p, xx, { det: true }),
          params,
          x,
        )).data as Float32Array;
      const exact = maxDiff(await logits("exact"), theirs);
      const tanh = maxDiff(await logits("tanh"), theirs);
      console.log(
        `max |logit - timm|: --gelu exact ${exact.toExponential(2)}, tanh ${tanh.toExponential(2)}`,
      );
      assert(exact <= 1e-5, `--gelu exact: ${exact}`);
      assert(tanh > 10 * exact, `tanh GELU should differ visibly from timm (${tanh})`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
