import {
  compareCodePoints,
  flattenTree,
  getPath,
  mapTree,
  tensorLeaves,
  type Tree,
  unflattenTree,
} from "../../lib/checkpoint/tree.ts";
import { type HostTensor, hostTensor } from "../../lib/ir/host_tensor.ts";
import { assertEquals, assertThrows } from "../assert.ts";

const t = (v: number) => hostTensor([1], "f32", [v]);

Deno.test("flatten / unflatten with / and . separators", () => {
  const tree: Tree = {
    model: { embed: { wte: { kernel: t(1), bias: t(2) } }, norm: { scale: t(3) } },
    step: 7,
  };
  const flat = flattenTree(tree);
  assertEquals([...flat.keys()], [
    "model/embed/wte/kernel",
    "model/embed/wte/bias",
    "model/norm/scale",
    "step",
  ]);
  assertEquals(unflattenTree(flat), tree);
  const dotted = flattenTree(tree, { sep: "." });
  assertEquals(dotted.has("model.embed.wte.kernel"), true);
  assertEquals(unflattenTree(Object.fromEntries(dotted), { sep: "." }), tree);
  assertEquals([...tensorLeaves(tree).keys()].length, 3);
});

Deno.test("unflatten rejects a path that is both a leaf and a subtree", () => {
  assertThrows(() => unflattenTree([["a", t(1)], ["a/b", t(2)]]), /"a" is a leaf and a subtree/);
  assertThrows(() => unflattenTree([["a/b", t(1)], ["a/b", t(2)]]), /duplicate path "a\/b"/);
});

Deno.test("mapTree keeps structure and passes paths; getPath", () => {
  const tree: Tree = { a: { b: t(1), c: t(2) } };
  const paths: string[] = [];
  const doubled = mapTree(tree, (leaf, path) => {
    paths.push(path);
    const x = leaf as HostTensor;
    return hostTensor(x.shape, "f32", [x.data[0] * 2]);
  });
  assertEquals(paths, ["a/b", "a/c"]);
  assertEquals(Array.from((getPath(doubled, "a/c") as HostTensor).data), [4]);
  assertEquals(getPath(doubled, "a/x"), undefined);
});

Deno.test("compareCodePoints orders like Python's sorted()", () => {
  // Python: sorted(["b", "a", "layer_2", "layer_10", "\uff61", "\U0001F600", "B"])
  const keys = ["b", "a", "layer_2", "layer_10", "\uff61", "\u{1F600}", "B"];
  assertEquals(keys.sort(compareCodePoints), [
    "B",
    "a",
    "b",
    "layer_10",
    "layer_2",
    "\uff61",
    "\u{1F600}",
  ]);
  // plain JS sort (UTF-16 units) would put the emoji first
  assertEquals(["\uff61", "\u{1F600}"].sort(), ["\u{1F600}", "\uff61"]);
});
