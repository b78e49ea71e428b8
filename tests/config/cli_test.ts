import { assertEquals, assertThrows } from "../assert.ts";
import { parseCommandLine, parseOverrides } from "../../lib/config/cli.ts";

Deno.test("command line: a brace spec the shell expanded says to quote it", () => {
  assertThrows(
    () =>
      parseCommandLine([
        "--train-dataset-shards",
        "d/train-00.tar",
        "d/train-01.tar",
        "d/train-02.tar",
        "d/train-03.tar",
        "--labels",
        "10",
      ]),
    `--train-dataset-shards got 4 paths ("d/train-00.tar", "d/train-01.tar", ..., ` +
      `"d/train-03.tar"): the shell expanded an unquoted brace spec. Quote it so that the ` +
      `loader expands it: --train-dataset-shards 'd/train-{00..03}.tar'`,
  );
  const { issues } = parseOverrides(["--valid-dataset-shards", "v-0.tar", "v-1.tar"]);
  assertEquals(issues.length, 1);
  assertEquals(issues[0].includes("--valid-dataset-shards 'v-{0..1}.tar'"), true);
});

Deno.test("command line: a quoted spec, and a config file after the shard flag, are fine", () => {
  assertEquals(
    parseCommandLine(["cfg.json", "--train-dataset-shards", "d/a-{0..1}.tar"]).configPath,
    "cfg.json",
  );
  assertEquals(
    parseCommandLine(["--train-dataset-shards", "d/a.tar", "configs/x.json"]).configPath,
    "configs/x.json",
  );
});

Deno.test("unknown flags: did-you-mean for typos, timm's names, initials and last words", () => {
  const cases: [string, string][] = [
    ["--lr", '"--learning-rate"'],
    ["--learning_rate", '"--learning-rate"'],
    ["--wd", '"--weight-decay"'],
    ["--epochs", '"--training-steps"'],
    ["--smoothing", '"--label-smoothing"'],
    ["--batch-size", '"--train-batch-size" or "--valid-batch-size"'],
    ["--opt", '"--optimizer"'],
  ];
  for (const [flag, suggestion] of cases) {
    const { issues } = parseOverrides([flag, "1"]);
    assertEquals(issues, [`command line: unknown flag "${flag}" (did you mean ${suggestion}?)`]);
  }
  assertEquals(parseOverrides(["--zzzz", "1"]).issues, ['command line: unknown flag "--zzzz"']);
});
