import { readFlaxMsgpackFile, writeFlaxMsgpack } from "../../lib/checkpoint/flax_msgpack.ts";
import { readPthFile, type StateDict, stateDictOf } from "../../lib/checkpoint/pth.ts";
import { flaxToTimm, timmToFlax } from "../../lib/checkpoint/timm.ts";
import { mapTree, type Tree } from "../../lib/checkpoint/tree.ts";
import { f32ToBf16 } from "../../lib/ir/dtype.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";

const FIX = (name: string) => new URL(`../fixtures/checkpoint/${name}`, import.meta.url).pathname;
const params = await readFlaxMsgpackFile(FIX("params.msgpack"));

function assertSameTensors(actual: StateDict, expected: StateDict) {
  assertEquals([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [k, e] of expected) {
    const a = actual.get(k)!;
    assertEquals(a.shape, e.shape, k);
    assertEquals(a.dtype, e.dtype, k);
    assert(a.data.every((x, i) => Object.is(x, e.data[i])), `${k}: values differ`);
  }
}

Deno.test("Flax -> timm equals the original converter's params.pth tensor for tensor", async () => {
  const ref = stateDictOf(await readPthFile(FIX("params.pth")));
  assertSameTensors(flaxToTimm(params), ref);
});

Deno.test("Flax -> timm -> Flax is lossless (byte-identical msgpack)", () => {
  const back = timmToFlax(flaxToTimm(params), { numHeads: 4 });
  assertEquals(writeFlaxMsgpack(back), Deno.readFileSync(FIX("params.msgpack")));
});

Deno.test("bf16 trees convert both ways keeping the raw bits", () => {
  const bf = mapTree(params, (leaf) => {
    const t = leaf as HostTensor;
    return hostTensor(t.shape, "bf16", Array.from(t.data, (x) => f32ToBf16(x)));
  });
  const sd = flaxToTimm(bf);
  assertEquals(sd.get("head.weight")!.dtype, "bf16");
  assertEquals(writeFlaxMsgpack(timmToFlax(sd, { numHeads: 4 })), writeFlaxMsgpack(bf));
});

Deno.test("timm -> Flax folds pos_embed[:, :1] into cls_token; no_embed_class layouts work", () => {
  const sd = flaxToTimm(params);
  const pos = sd.get("pos_embed")!;
  const withCls = new Map(sd);
  const pos2 = hostTensor(pos.shape, "f32", pos.data);
  for (let i = 0; i < 64; i++) pos2.data[i] = 0.5 + i;
  withCls.set("pos_embed", pos2);
  const cls = sd.get("cls_token")!;
  const folded = ((timmToFlax(withCls, { numHeads: 4 }).model as Tree).embed as Tree)
    .cls_token as HostTensor;
  assertEquals(Array.from(folded.data), Array.from(cls.data, (x, i) => Math.fround(x + 0.5 + i)));
  // timm's no_embed_class models: pos_embed has only the 64 patch rows
  const noCls = new Map(sd);
  noCls.set("pos_embed", hostTensor([1, 64, 64], "f32", pos.data.subarray(64)));
  const embed = (timmToFlax(noCls, { numHeads: 4 }).model as Tree).embed as Tree;
  assertEquals(Array.from((embed.cls_token as HostTensor).data), Array.from(cls.data));
  assertEquals((embed.wpe as HostTensor).shape, [8, 8, 64]);
});

Deno.test("--exclude-heads drops the classifier both ways", () => {
  const sd = flaxToTimm(params, { excludeHeads: true });
  assert(!sd.has("head.weight") && !sd.has("head.bias") && sd.size === 34);
  const model = timmToFlax(flaxToTimm(params), { numHeads: 4, excludeHeads: true }).model as Tree;
  assert(!("head" in model));
});

Deno.test("models timm cannot express, and bad inputs, give clear errors", () => {
  const model = params.model as Tree;
  const embed = model.embed as Tree;
  const gap = { model: { ...model, embed: { wpe: embed.wpe, wte: embed.wte } } };
  assertThrows(() => flaxToTimm(gap), /cls_token: missing - a model with global average pooling/);
  const sincos = { model: { ...model, embed: { cls_token: embed.cls_token, wte: embed.wte } } };
  assertThrows(() => flaxToTimm(sincos), /wpe: missing - fixed sincos2d/);
  const extra = { model: { ...model, extra: { w: hostTensor([1], "f32", [1]) } } };
  assertThrows(() => flaxToTimm(extra), /model\/extra\/w: no timm equivalent/);

  const sd = flaxToTimm(params);
  assertThrows(() => timmToFlax(sd), /--num-heads is needed: width 64/);
  assertThrows(() => timmToFlax(sd, { numHeads: 5 }), /width 64 is not divisible by 5 heads/);
  const dist = new Map(sd).set("dist_token", hostTensor([1, 1, 64], "f32"));
  assertThrows(() => timmToFlax(dist, { numHeads: 4 }), /dist_token: this timm model variant/);
  const unknown = new Map(sd).set("blocks.0.attn.q_norm.weight", hostTensor([16], "f32"));
  assertThrows(
    () => timmToFlax(unknown, { numHeads: 4 }),
    /blocks\.0\.attn\.q_norm\.weight: no deit3-jax equivalent/,
  );
  const badPos = new Map(sd).set("pos_embed", hostTensor([1, 51, 64], "f32"));
  assertThrows(
    () => timmToFlax(badPos, { numHeads: 4 }),
    /pos_embed: 51 positions are not a square grid/,
  );
  const badQkv = new Map(sd).set("blocks.1.attn.qkv.weight", hostTensor([190, 64], "f32"));
  assertThrows(
    () => timmToFlax(badQkv, { numHeads: 4 }),
    /blocks\.1\.attn\.qkv\.weight: expected \[192, 64\]/,
  );
});
