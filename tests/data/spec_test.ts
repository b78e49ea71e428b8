import { braceExpand, expandEnv, expandShardSpec } from "../../lib/data/spec.ts";
import { assertEquals, assertThrows } from "../assert.ts";

Deno.test("braceExpand: zero-padded ranges keep their width", () => {
  const out = braceExpand("imagenet1k-train-{0000..1023}.tar");
  assertEquals(out.length, 1024);
  assertEquals(out[0], "imagenet1k-train-0000.tar");
  assertEquals(out[17], "imagenet1k-train-0017.tar");
  assertEquals(out[1023], "imagenet1k-train-1023.tar");
  assertEquals(braceExpand("v-{08..11}"), ["v-08", "v-09", "v-10", "v-11"]);
  assertEquals(braceExpand("{1..10}").length, 10);
  assertEquals(braceExpand("{9..11}"), ["9", "10", "11"]);
});

Deno.test("braceExpand: steps, counting down, letters", () => {
  assertEquals(braceExpand("a{0..6..2}"), ["a0", "a2", "a4", "a6"]);
  assertEquals(braceExpand("{9..7}"), ["9", "8", "7"]);
  assertEquals(braceExpand("{10..0..5}"), ["10", "5", "0"]);
  assertEquals(braceExpand("{a..c}"), ["a", "b", "c"]);
});

Deno.test("braceExpand: alternatives, products, nesting, literals", () => {
  assertEquals(braceExpand("{a,b}-{1,2}"), ["a-1", "a-2", "b-1", "b-2"]);
  assertEquals(braceExpand("x{a,b{1..2}}y"), ["xay", "xb1y", "xb2y"]);
  assertEquals(braceExpand("{x}"), ["{x}"]);
  assertEquals(braceExpand("a{,b}"), ["a", "ab"]);
  assertEquals(braceExpand("plain.tar"), ["plain.tar"]);
  assertEquals(braceExpand("unbalanced{a,b"), ["unbalanced{a,b"]);
});

Deno.test("expandShardSpec: :: joins, env references, whole pipe: strings", () => {
  const env = (n: string) =>
    ({ GCS_DATASET_DIR: "gs://bkt/data", TOKEN: "t0k" } as Record<string, string>)[n];
  assertEquals(
    expandShardSpec("$GCS_DATASET_DIR/in1k-{00..01}.tar::${GCS_DATASET_DIR}/extra.tar", env),
    ["gs://bkt/data/in1k-00.tar", "gs://bkt/data/in1k-01.tar", "gs://bkt/data/extra.tar"],
  );
  assertEquals(
    expandShardSpec("pipe:curl -s http://h/x-{0..1}.tar -H 'a: $TOKEN'", env),
    ["pipe:curl -s http://h/x-0.tar -H 'a: t0k'", "pipe:curl -s http://h/x-1.tar -H 'a: t0k'"],
  );
  assertEquals(expandEnv("cost $$5", env), "cost $5");
});

Deno.test("expandShardSpec: an unset variable is named in the error", () => {
  assertThrows(() => expandShardSpec("$NOPE_DIR/x.tar", () => undefined), "$NOPE_DIR");
  assertThrows(() => expandShardSpec(" :: ", () => undefined), "names no shards");
});
