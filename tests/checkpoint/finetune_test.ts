import {
  fitPretrained,
  loadPretrainedFile,
  matchTree,
  parseLabelMapping,
  resizeBicubic,
} from "../../lib/checkpoint/finetune.ts";
import { readFlaxMsgpackFile, writeFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import { readPthFile } from "../../lib/checkpoint/pth.ts";
import { getPath, mapTree, type Tree } from "../../lib/checkpoint/tree.ts";
import { saveTrainingState } from "../../lib/checkpoint/train_state.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import { bf16ToF32, f32ToBf16 } from "../../lib/ir/dtype.ts";
import { assertAllClose, assertEquals, assertRejects, assertThrows } from "../assert.ts";

const FIX = (name: string) => new URL(`../fixtures/checkpoint/${name}`, import.meta.url).pathname;
const torchResized = await readPthFile(FIX("posemb_resize_torch.pth"));
const params = await readFlaxMsgpackFile(FIX("params.msgpack"));

Deno.test("posemb bicubic resize equals torch's antialiased bicubic (same filter as jax.image.resize)", () => {
  const src = torchResized.src as HostTensor;
  assertEquals(src.shape, [8, 8, 64]);
  // the fixture's source grid is vit-a's wpe
  assertEquals(
    Array.from(src.data),
    Array.from((getPath(params, "model/embed/wpe") as HostTensor).data),
  );
  for (
    const [name, shape] of [["up12", [12, 12, 64]], ["down5", [5, 5, 64]], ["rect6x10", [
      6,
      10,
      64,
    ]], ["same8", [8, 8, 64]]] as const
  ) {
    const want = torchResized[name] as HostTensor;
    assertEquals(want.shape, [...shape]);
    const got = resizeBicubic(src, [...shape]);
    assertAllClose(got.data, want.data, { atol: 2e-7, rtol: 1e-5, msg: name });
  }
});

/** Direct, non-separable evaluation of the same resampling (its own kernel and loops). */
function directResize2d(
  x: (i: number, j: number) => number,
  h: number,
  w: number,
  oh: number,
  ow: number,
) {
  const cubic = (t: number) => {
    const a = -0.5, s = Math.abs(t);
    return s < 1
      ? (a + 2) * s ** 3 - (a + 3) * s ** 2 + 1
      : s < 2
      ? a * s ** 3 - 5 * a * s ** 2 + 8 * a * s - 4 * a
      : 0;
  };
  const taps = (n: number, on: number, o: number) => {
    const stretch = Math.max(n / on, 1);
    const centre = (o + 0.5) * (n / on) - 0.5;
    const w = Array.from({ length: n }, (_, i) => cubic((centre - i) / stretch));
    const sum = w.reduce((a, b) => a + b, 0);
    return w.map((v) => v / sum);
  };
  const out = new Float64Array(oh * ow);
  for (let p = 0; p < oh; p++) {
    for (let q = 0; q < ow; q++) {
      const wy = taps(h, oh, p), wx = taps(w, ow, q);
      let acc = 0;
      for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) acc += wy[i] * wx[j] * x(i, j);
      out[p * ow + q] = acc;
    }
  }
  return out;
}

Deno.test("resize matches a direct 2-D evaluation of the separable cubic on a known array", () => {
  const f = (i: number, j: number) => Math.sin(0.7 * i) + Math.cos(0.3 * j) + 0.05 * i * j;
  const x = hostTensor(
    [7, 9, 1],
    "f32",
    Array.from({ length: 63 }, (_, k) => f(Math.floor(k / 9), k % 9)),
  );
  for (const [oh, ow] of [[14, 5], [3, 20], [7, 4]]) {
    const want = directResize2d((i, j) => x.data[i * 9 + j], 7, 9, oh, ow);
    assertAllClose(resizeBicubic(x, [oh, ow, 1]).data, want, { atol: 1e-6, msg: `${oh}x${ow}` });
  }
});

/** Fresh params of a vit-a variant: the given wpe grid and label count, zero-filled. */
function freshParams(grid: number, labels: number): Tree {
  const fresh = mapTree(params, (leaf) => hostTensor((leaf as HostTensor).shape, "f32"));
  const model = fresh.model as Tree;
  (model.embed as Tree).wpe = hostTensor([grid, grid, 64], "f32");
  model.head = {
    kernel: hostTensor([64, labels], "f32", new Float32Array(64 * labels).fill(0.25)),
    bias: hostTensor([labels], "f32", new Float32Array(labels).fill(0.5)),
  };
  return fresh;
}

Deno.test("fitPretrained: resizes wpe to the new grid and re-initialises a head of another size", () => {
  const fresh = freshParams(12, 7);
  const fitted = fitPretrained(params, fresh);
  const wpe = getPath(fitted, "model/embed/wpe") as HostTensor;
  assertAllClose(wpe.data, (torchResized.up12 as HostTensor).data, { atol: 2e-7, rtol: 1e-5 });
  assertEquals(getPath(fitted, "model/head"), getPath(fresh, "model/head"));
  // everything else is the pretrained weights
  assertEquals(
    getPath(fitted, "model/layer_1/attn/wq/kernel"),
    getPath(params, "model/layer_1/attn/wq/kernel"),
  );
  // same config: the checkpoint comes back unchanged
  assertEquals(fitPretrained(params, params), params);
});

Deno.test("fitPretrained: in21k_to_in1k label mapping copies mapped head rows, other biases -10", async () => {
  const mapping = parseLabelMapping(
    await Deno.readTextFile(FIX("in21k_to_in1k.json")),
    "in21k_to_in1k.json",
  );
  assertEquals(mapping.src.length, 999);
  const dim = 4, preLabels = 21843, labels = 1000;
  const kernel = hostTensor(
    [dim, preLabels],
    "f32",
    Array.from({ length: dim * preLabels }, (_, i) => i % 997 + 0.5),
  );
  const bias = hostTensor(
    [preLabels],
    "f32",
    Array.from({ length: preLabels }, (_, i) => i * 0.001),
  );
  const pretrained: Tree = {
    model: { head: { kernel, bias }, norm: { scale: hostTensor([dim], "f32", [1, 2, 3, 4]) } },
  };
  const fresh: Tree = {
    model: {
      head: { kernel: hostTensor([dim, labels], "f32"), bias: hostTensor([labels], "f32") },
      norm: { scale: hostTensor([dim], "f32") },
    },
  };
  const fitted = fitPretrained(pretrained, fresh, { labelMapping: mapping });
  const k = getPath(fitted, "model/head/kernel") as HostTensor,
    b = getPath(fitted, "model/head/bias") as HostTensor;
  const dstOf = new Map(mapping.dst.map((d, m) => [d, mapping.src[m]]));
  for (let c = 0; c < labels; c++) {
    const s = dstOf.get(c);
    assertEquals(b.data[c], s === undefined ? -10 : bias.data[s], `bias ${c}`);
    for (let r = 0; r < dim; r++) {
      assertEquals(
        k.data[r * labels + c],
        s === undefined ? 0 : kernel.data[r * preLabels + s],
        `kernel ${r},${c}`,
      );
    }
  }
  assertEquals(Array.from(b.data).filter((x) => x === -10).length, 1);
});

Deno.test("fitPretrained: mismatched configs and bad mappings give clear errors", () => {
  const fresh = freshParams(8, 10);
  const narrow = mapTree(
    fresh,
    (leaf, path) => path === "model/layer_0/ff/w1/kernel" ? hostTensor([64, 128], "f32") : leaf,
  );
  assertThrows(
    () => fitPretrained(params, narrow, { name: "ckpt.msgpack" }),
    /ckpt\.msgpack: key "model\/layer_0\/ff\/w1\/kernel": shape \[64,256\] in the checkpoint, the config expects \[64,128\]/,
  );
  const deeper = { model: { ...(fresh.model as Tree), layer_2: (fresh.model as Tree).layer_1 } };
  assertThrows(
    () => fitPretrained(params, deeper, { name: "c" }),
    /c: key "model\/layer_2\/.*missing in the checkpoint/,
  );
  const shallower = { model: { ...(fresh.model as Tree) } };
  delete (shallower.model as Tree).layer_1;
  assertThrows(
    () => fitPretrained(params, shallower, { name: "c" }),
    /c: key "model\/layer_1\/.*not a parameter of the configured model/,
  );
  assertThrows(
    () => fitPretrained(params, fresh, { labelMapping: { src: [10], dst: [0] } }),
    /label mapping src 10 >= 10 pretrained labels/,
  );
  assertThrows(
    () => parseLabelMapping('{"src": [1, 2], "dst": [1]}', "m.json"),
    /m\.json: src has 2 labels, dst 1/,
  );
  assertThrows(
    () => parseLabelMapping('{"src": [1, -2], "dst": [1, 2]}', "m.json"),
    /m\.json: key "src": must be a list/,
  );
  assertThrows(() => parseLabelMapping("{nope", "m.json"), /m\.json: not JSON/);
});

Deno.test("loadPretrainedFile reads the checkpoint and the mapping from files; errors name them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFlaxMsgpackFile(`${dir}/pre.msgpack`, params);
    await Deno.writeTextFile(`${dir}/map.json`, JSON.stringify({ src: [3, 1], dst: [0, 4] }));
    const fresh = freshParams(8, 5);
    const fitted = await loadPretrainedFile(`${dir}/pre.msgpack`, fresh, {
      labelMappingUrl: `${dir}/map.json`,
    });
    const b = getPath(fitted, "model/head/bias") as HostTensor;
    const preB = getPath(params, "model/head/bias") as HostTensor;
    assertEquals(Array.from(b.data), [preB.data[3], -10, -10, -10, preB.data[1]]);
    await saveTrainingState(`${dir}/state.msgpack`, {
      params,
      optState: {},
      step: 5,
      rng: {},
      data: {},
      config: {},
    });
    assertEquals(await loadPretrainedFile(`${dir}/state.msgpack`, params), params);
    await assertRejects(
      () => loadPretrainedFile(`${dir}/none.msgpack`, fresh),
      /none\.msgpack: file not found/,
    );
    await assertRejects(
      () => loadPretrainedFile(`${dir}/pre.msgpack`, fresh, { labelMappingUrl: `${dir}/x.json` }),
      /x\.json: file not found/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("matchTree: a resumed tree must match the config; bf16 leaves are cast", () => {
  const bf = mapTree(params, (leaf) => {
    const t = leaf as HostTensor;
    return hostTensor(t.shape, "bf16", Array.from(t.data, (x) => f32ToBf16(x)));
  });
  const cast = matchTree(bf, params, "state.msgpack");
  const wq = getPath(cast, "model/layer_0/attn/wq/kernel") as HostTensor;
  assertEquals(wq.dtype, "f32");
  assertEquals(
    wq.data[3],
    bf16ToF32(f32ToBf16((getPath(params, "model/layer_0/attn/wq/kernel") as HostTensor).data[3])),
  );
  const ints = mapTree(
    params,
    (leaf, path) => path === "model/norm/scale" ? hostTensor([64], "i32") : leaf,
  );
  assertThrows(
    () => matchTree(ints, params, "state.msgpack"),
    /state\.msgpack: key "model\/norm\/scale": dtype i32 in the checkpoint, the config expects f32/,
  );
});
