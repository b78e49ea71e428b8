import { assert } from "../assert.ts";
import { readmeTablesCurrent } from "../../scripts/gen/readme_tables.ts";

Deno.test("README: the hyperparameter and checkpoint tables match their generator", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  assert(
    readmeTablesCurrent(readme),
    "README.md tables are out of date: run deno run -A scripts/gen/readme_tables.ts",
  );
});

Deno.test("README: every released checkpoint's config exists", async () => {
  const { RELEASED } = await import("../../scripts/gen/readme_tables.ts");
  for (const [file] of RELEASED) {
    const config = file.replace(/-(best|last)\.msgpack$/, "");
    assert(Deno.statSync(new URL(`../../configs/${config}.json`, import.meta.url)).isFile, config);
  }
});
