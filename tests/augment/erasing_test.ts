/**
 * RandomErasing's fills: `original` against torchvision's erase on the same image, box and noise
 * (fixtures from scripts/fixtures/make_erasing_fixtures.py), and the statistics of both fills.
 */
import { eraseBox, randomErasing } from "../../lib/augment/erasing.ts";
import { Rng } from "../../lib/ir/rng.ts";
import { assert, assertEquals, assertThrows } from "../assert.ts";

interface Case {
  width: number;
  height: number;
  image: string;
  box: { top: number; left: number; height: number; width: number };
  noise: string;
  out: string;
}
const decodeBase64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const fixture = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/augment/erasing/torchvision.json", import.meta.url)),
) as { torchvision: string; cases: Case[] };

Deno.test("RandomErasing original fill equals torchvision's erase on the PIL image", () => {
  assert(fixture.cases.length >= 3, "fixture cases");
  for (const c of fixture.cases) {
    const img = { width: c.width, height: c.height, data: decodeBase64(c.image) };
    const noise = new Float32Array(decodeBase64(c.noise).buffer);
    const ours = eraseBox(img, c.box, noise, "original");
    assertEquals(Array.from(ours.data), Array.from(decodeBase64(c.out)), `${c.width}x${c.height}`);
    // The normal fill is a different box: the fixture can tell the two apart.
    const normal = eraseBox(img, c.box, noise, "normal");
    assert(normal.data.some((v, i) => v !== ours.data[i]), "normal fill differs");
  }
});

Deno.test("RandomErasing original fill: 68% zeros and wrapped specks; normal fill mid-grey", () => {
  const img = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(128) };
  const counts = new Map<number, number>();
  let n = 0, normalSum = 0, normalN = 0;
  for (let i = 0; i < 200; i++) {
    const a = randomErasing(img, Rng.fromSeed(i), { probability: 1 });
    const b = randomErasing(img, Rng.fromSeed(i), { probability: 1, fill: "normal" });
    for (let p = 0; p < a.data.length; p++) {
      if (a.data[p] !== 128 || b.data[p] !== 128) {
        counts.set(a.data[p], (counts.get(a.data[p]) ?? 0) + 1);
        n++;
        normalSum += b.data[p];
        normalN++;
      }
    }
  }
  const frac = (v: number) => (counts.get(v) ?? 0) / n;
  assert(Math.abs(frac(0) - 0.6827) < 0.01, `zeros ${frac(0)}`);
  assert(Math.abs(frac(255) + frac(254) - 0.157) < 0.01, `255/254 ${frac(255) + frac(254)}`);
  assert(Math.abs(frac(1) + frac(2) - 0.157) < 0.01, `1/2 ${frac(1) + frac(2)}`);
  // normal: mean_c * 255 on average (about 116 over the three channels).
  const mean = normalSum / normalN;
  assert(Math.abs(mean - 255 * (0.485 + 0.456 + 0.406) / 3) < 2, `normal mean ${mean}`);
});

Deno.test("eraseBox refuses a noise of the wrong size or an unknown fill", () => {
  const img = { width: 4, height: 4, data: new Uint8Array(48) };
  const box = { top: 0, left: 0, height: 2, width: 2 };
  assertThrows(() => eraseBox(img, box, new Float32Array(11), "original"), "noise has 11");
  assertThrows(() => eraseBox(img, box, new Float32Array(12), "grey" as never), "unknown fill");
});
