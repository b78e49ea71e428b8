import { Rng } from "../../lib/ir/rng.ts";
import { assertEquals, assertThrows } from "../assert.ts";

Deno.test("rng: fromKey(key, counter) continues a stream after counter draws", () => {
  const a = Rng.fromSeed(9).child(1, 2);
  for (let i = 0; i < 5; i++) a.uniform();
  assertEquals(a.counter, 5);
  const b = Rng.fromKey(a.key, a.counter);
  assertEquals([b.uniform(), b.uniform()], [a.uniform(), a.uniform()]);
  assertThrows(() => Rng.fromKey([0, 0], -1), /counter must be a non-negative integer/);
});
