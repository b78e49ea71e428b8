import { assertEquals } from "../assert.ts";
import { threefry2x32 } from "../../lib/ir/threefry.ts";
import { Rng } from "../../lib/ir/rng.ts";

// Known answers from Random123 (the values JAX tests against).
Deno.test("threefry2x32 known answers", () => {
  assertEquals(threefry2x32(0, 0, 0, 0), [0x6b200159, 0x99ba4efe]);
  assertEquals(
    threefry2x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff),
    [0x1cb996fc, 0xbb002be7],
  );
  assertEquals(
    threefry2x32(0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3),
    [0xc4923a9c, 0x483df7a0],
  );
});

Deno.test("Rng streams are reproducible per path and independent across paths", () => {
  const a = Rng.fromSeed(7).child(3, 11);
  const b = Rng.fromSeed(7).child(3, 11);
  const c = Rng.fromSeed(7).child(3, 12);
  const xa = Array.from({ length: 5 }, () => a.uniform());
  assertEquals(xa, Array.from({ length: 5 }, () => b.uniform()));
  const xc = Array.from({ length: 5 }, () => c.uniform());
  assertEquals(xa.some((v, i) => v !== xc[i]), true);
});

Deno.test("Rng moments", () => {
  const r = Rng.fromSeed(1);
  const n = 20000;
  let su = 0, sn = 0, sn2 = 0, sb = 0;
  for (let i = 0; i < n; i++) {
    su += r.uniform();
    const z = r.normal();
    sn += z;
    sn2 += z * z;
    sb += r.beta(0.8, 0.8);
  }
  const close = (x: number, y: number, tol: number) => Math.abs(x - y) < tol;
  assertEquals(close(su / n, 0.5, 0.01), true);
  assertEquals(close(sn / n, 0, 0.03), true);
  assertEquals(close(sn2 / n, 1, 0.04), true);
  assertEquals(close(sb / n, 0.5, 0.01), true);
});
