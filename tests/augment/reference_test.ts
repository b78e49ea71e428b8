/**
 * Every case of the reference manifest (timm 1.0.29 + Pillow 12.3 on a 96x96 photo): ops, the
 * magnitude-to-argument table, and bicubic resizes with and without a crop box.
 */
import { applyOp, type OpResample } from "../../lib/augment/ops.ts";
import { levelToArgs } from "../../lib/augment/levels.ts";
import { resize } from "../../lib/augment/resize.ts";
import type { RGB } from "../../lib/augment/image.ts";
import { assertEquals } from "../assert.ts";
import { assertImageClose, fixture, FIXTURES, readJson } from "./helpers.ts";

type Manifest = {
  pillow: string;
  ops: { op: string; args: number[]; resample: OpResample | null; fill: RGB; file: string }[];
  levels: Record<string, Record<string, number[] | null>>;
  resize: { size: [number, number]; box: [number, number, number, number] | null; file: string }[];
};

const manifest = readJson<Manifest>(FIXTURES + "reference/manifest.json");
const source = await fixture("reference/source.png");

Deno.test("reference ops: every manifest case is bit-exact with timm + Pillow 12.3", async () => {
  assertEquals(manifest.ops.length, 31);
  for (const c of manifest.ops) {
    const want = await fixture("reference/" + c.file);
    const got = applyOp(c.op, source, c.args, { resample: c.resample ?? undefined, fill: c.fill });
    assertImageClose(got, want, `${c.file} (${c.op} ${JSON.stringify(c.args)})`);
  }
});

Deno.test("reference levels: timm's LEVEL_TO_ARG table matched exactly", () => {
  const hp = { translateConst: 100, imgMean: [123, 116, 103] as RGB };
  let n = 0;
  for (const [op, byMagnitude] of Object.entries(manifest.levels)) {
    for (const [m, want] of Object.entries(byMagnitude)) {
      const got = levelToArgs(op, Number(m), hp, null);
      assertEquals(got, want ?? [], `${op} at magnitude ${m}`);
      n++;
    }
  }
  assertEquals(n, 24 * 9);
});

Deno.test("reference resize: bicubic resizes and a crop-box resize are bit-exact", async () => {
  for (const c of manifest.resize) {
    const want = await fixture("reference/" + c.file);
    const got = resize(source, c.size[0], c.size[1], {
      resample: "bicubic",
      box: c.box ?? undefined,
    });
    assertImageClose(got, want, c.file);
  }
});
