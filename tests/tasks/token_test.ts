/**
 * A Hugging Face token never reaches the output of a documented command: the README's shard
 * examples with $HF_TOKEN are single-quoted, and `deno task` run that way prints neither the
 * token nor anything it was expanded into.
 */
import { assert, assertEquals } from "../assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("README: every shard spec that uses $HF_TOKEN is in single quotes", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  // The lines of ```sh blocks: what a reader pastes into a shell.
  const shell = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1].split("\n"));
  const lines = shell.filter((l) => l.includes("$HF_TOKEN") && !l.trimStart().startsWith("#"));
  assert(
    lines.some((l) => l.includes("pipe:")),
    "the README shows no pipe: example with $HF_TOKEN",
  );
  for (const line of lines) {
    // Inside double quotes (or none) the shell expands it; inside single quotes it does not.
    const outsideSingle = line.replace(/'[^']*'/g, "''");
    assert(!outsideSingle.includes("$HF_TOKEN"), `the shell expands $HF_TOKEN here:\n${line}`);
  }
  assert(readme.includes("deno task -q"), "the README names deno task -q");
});

Deno.test("deno task with a single-quoted pipe: spec: the token is in no output", async () => {
  const token = "hf_TESTTOKEN0123456789abcdefgh";
  // The command fails after using the token, so that its error message is printed too.
  const spec = 'pipe:printf "%s" "Bearer $HF_TOKEN" >&2; exit 3';
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "check-data", spec, "--limit", "1"],
    cwd: ROOT,
    env: { HF_TOKEN: token, NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.code !== 0, text);
  assert(text.includes("$HF_TOKEN"), `the echoed task line keeps the reference:\n${text}`);
  assert(!text.includes(token), `the token was printed:\n${text}`);
  assertEquals(text.includes("exited with status 3"), true, text);
});
