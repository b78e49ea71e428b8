/**
 * tasks/cli.ts, the skeleton every task shares: each kind of error gets its one exit status and
 * message, `--help` wins, and a task run as a process always exits with a status (a timer or
 * server left behind does not keep it alive; an escaped rejection exits 1 with one line).
 */
import { assert, assertEquals } from "../assert.ts";
import { ConfigError } from "../../lib/config/errors.ts";
import {
  command,
  EXIT,
  exitStatus,
  intFlag,
  parseFlags,
  TaskError,
  UsageError,
} from "../../tasks/cli.ts";

const CLI = new URL("../../tasks/cli.ts", import.meta.url).href;

/** Runs `fn` with console.log/error captured. */
async function captured<T>(fn: () => Promise<T> | T) {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { value: await fn(), out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const TASK = { name: "demo", usage: "usage: deno task demo X\n\n  -h, --help  this text" };

Deno.test("cli: each error maps to its status and its one message", async () => {
  const cases: [unknown, number, string][] = [
    [new UsageError("--x must be 1"), 2, "demo: --x must be 1"],
    [new UsageError("expected X", { usage: true }), 2, `demo: expected X\n\n${TASK.usage}`],
    [new UsageError("", { usage: true }), 2, TASK.usage],
    [
      new ConfigError(["a.json: bad", "command line: worse"]),
      2,
      "a.json: bad\ncommand line: worse",
    ],
    [new TaskError("port 1 is in use"), 1, "demo: port 1 is in use"],
    [new TaskError("no backend", 2), 2, "demo: no backend"],
    [new Error("shard 3: cut short"), 1, "demo: shard 3: cut short"],
    [new RangeError("bits must be >= 0"), 1, "demo: bits must be >= 0"],
    ["a string", 1, "demo: a string"],
  ];
  for (const [e, code, text] of cases) {
    const r = await captured(() => exitStatus(TASK, e));
    assertEquals([r.value, r.err], [code, text], String(e));
  }
  // A bug (TypeError, ReferenceError) keeps its stack after the line, so it can be found.
  const bug = await captured(() => exitStatus(TASK, new TypeError("x is undefined")));
  assertEquals(bug.value, 1);
  assert(bug.err.startsWith("demo: x is undefined\nTypeError: x is undefined\n    at "), bug.err);
});

Deno.test("cli: main returns run's status, --help wins, and it never throws", async () => {
  const seen: string[][] = [];
  const main = command({
    ...TASK,
    run: (args) => {
      seen.push(args);
      if (args[0] === "throw") throw new Error("boom");
      if (args[0] === "usage") return Promise.reject(new UsageError("bad", { usage: true }));
      return Promise.resolve(args.length);
    },
  });
  assertEquals((await captured(() => main(["a", "b", "c"]))).value, 3);
  const help = await captured(() => main(["--bogus", "-h"]));
  assertEquals([help.value, help.out, help.err], [0, TASK.usage, ""]);
  assertEquals((await captured(() => main(["x", "--help"]))).value, 0);
  assertEquals(seen, [["a", "b", "c"]], "--help does not run the task");
  const boom = await captured(() => main(["throw"]));
  assertEquals([boom.value, boom.err], [1, "demo: boom"]);
  assertEquals((await captured(() => main(["usage"]))).value, EXIT.usage);
  // A usage that depends on the arguments (train's shows a config's defaults).
  const dynamic = command({
    name: "t",
    usage: (a) => `usage for ${a.join(",")}`,
    run: () => {
      throw new UsageError("", { usage: true });
    },
  });
  assertEquals((await captured(() => dynamic(["c.json", "-h"]))).out, "usage for c.json,-h");
});

Deno.test("cli: parseFlags and intFlag turn bad arguments into usage errors", () => {
  const opts = { n: { type: "string" }, v: { type: "boolean" } } as const;
  assertEquals({ ...parseFlags(["--n", "3", "--v"], opts).values }, { n: "3", v: true });
  for (const args of [["--bogus"], ["--n"], ["pos"]]) {
    try {
      parseFlags(args, opts);
      throw new Error(`${args} parsed`);
    } catch (e) {
      assert(e instanceof UsageError && e.usage, `${args}: ${e}`);
    }
  }
  assertEquals(parseFlags(["pos"], opts, true).positionals, ["pos"]);
  assertEquals([intFlag("--w", "0", 0), intFlag("--b", "8", 1)], [0, 8]);
  for (const [text, min, want] of [["0", 1, "a positive integer"], ["-1", 0, "an integer >= 0"]]) {
    try {
      intFlag("--k", text as string, min as number);
      throw new Error(`${text} accepted`);
    } catch (e) {
      assertEquals((e as Error).message, `--k must be ${want}, got "${text}"`);
      assert(e instanceof UsageError);
    }
  }
  for (const text of ["", "1.5", "x", "2e400"]) {
    let threw = false;
    try {
      intFlag("--k", text, 1);
    } catch {
      threw = true;
    }
    assert(threw, `"${text}" accepted`);
  }
});

/** Runs a task script built from `body` as a process; returns its status and stderr. */
async function process(body: string, args: string[] = [], env: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "deit3-cli-" });
  try {
    const file = `${dir}/demo_task.ts`;
    await Deno.writeTextFile(
      file,
      `import { command, exit, TaskError, UsageError } from "${CLI}";\n` +
        `export const main = command({ name: "demo", usage: "usage: demo", run: async (args) => {\n` +
        `${body}\n}});\nif (import.meta.main) await exit(main);\n`,
    );
    const t0 = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", file, ...args],
      env: { NO_COLOR: "1", ...env },
    }).output();
    return {
      code: out.code,
      out: new TextDecoder().decode(out.stdout),
      err: new TextDecoder().decode(out.stderr),
      ms: performance.now() - t0,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli: as a process it always exits with the status, whatever is left running", async () => {
  // A timer and a server left behind: the process still exits at once, with run's status.
  const left = await process(
    "setTimeout(() => {}, 600_000); Deno.serve({ hostname: '127.0.0.1', port: 0, " +
      "onListen() {} }, () => new Response()); return 0;",
  );
  assertEquals([left.code, left.err], [0, ""]);
  assert(left.ms < 60_000, `took ${left.ms} ms`);
  // An error after the timer was set: status 1, one line, no stack.
  const failed = await process(
    "setInterval(() => {}, 1000); await Promise.resolve(); throw new TaskError('no data');",
  );
  assertEquals([failed.code, failed.err], [1, "demo: no data\n"]);
  const usage = await process(
    "throw new UsageError(`need ${args.length + 1} args`, { usage: true });",
  );
  assertEquals([usage.code, usage.err], [2, "demo: need 1 args\n\nusage: demo\n"]);
  // A rejection nobody awaited: status 1 and one line, not Deno's uncaught-error report.
  const escaped = await process(
    "Promise.reject(new Error('lost promise')); await new Promise((r) => setTimeout(r, 60_000)); " +
      "return 0;",
  );
  assertEquals([escaped.code, escaped.err], [1, "demo: lost promise\n"]);
});

Deno.test("cli: as a process, secrets leave no message", async () => {
  const token = "hf_" + crypto.randomUUID().replaceAll("-", "");
  const r = await process("throw new Error(`cannot open ${Deno.env.get('HF_TOKEN')}/x.tar`);", [], {
    HF_TOKEN: token,
  });
  assertEquals(r.code, 1);
  assert(!r.err.includes(token), r.err);
  assertEquals(r.err, "demo: cannot open ${HF_TOKEN}/x.tar\n");
});
