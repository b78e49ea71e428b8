/**
 * `deno task test`: the suite in two `deno test` runs, then one combined summary line.
 *
 * The test files that open a WebGPU adapter run on their own, one after another. In a parallel
 * run, several isolates each hold a wgpu instance over Mesa's EGL (llvmpipe), and the process
 * sometimes aborted at exit in glibc's heap checks while libEGL's destructor ran (a core dump
 * showed it), after every test had passed; run serially it was not seen (README, Known
 * problems). With Mesa's Vulkan driver installed Deno picks Vulkan (lavapipe), but without
 * DENO_WEBGPU_BACKEND=vulkan wgpu still opens its GL backend (and libEGL) to enumerate adapters,
 * so the files stay serial on every machine. Everything else runs with `--parallel`. Given file
 * arguments, it runs just those.
 */
const SERIAL = [
  "tests/backend/array_lifetime_test.ts",
  "tests/backend/webgpu/", // every WebGPU file (the plan tests open no adapter; they are quick)
];

/** Runs `deno test ARGS`, echoing its output, and returns its exit code and summary counts. */
async function denoTest(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
  }
  const { code } = await child.status;
  // deno prints e.g. "ok | 787 passed | 0 failed | 1 ignored (1m16s)" (with colours unless NO_COLOR)
  // deno-lint-ignore no-control-regex
  const plain = tail.replace(/\x1b\[[0-9;]*m/g, "");
  const m = [
    ...plain.matchAll(
      /^(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored)?/gm,
    ),
  ]
    .at(-1);
  return {
    code,
    found: m !== undefined,
    passed: Number(m?.[2] ?? 0),
    failed: Number(m?.[4] ?? 0),
    ignored: Number(m?.[6] ?? 0),
  };
}

if (import.meta.main) {
  if (Deno.args.some((a) => !a.startsWith("-"))) {
    Deno.exit((await denoTest(["--parallel", ...Deno.args])).code);
  }
  const t0 = performance.now();
  const runs = [
    await denoTest(["--parallel", `--ignore=${SERIAL.join(",")}`, ...Deno.args]),
    await denoTest([...Deno.args, ...SERIAL]),
  ];
  const sum = (k: "passed" | "failed" | "ignored") => runs.reduce((n, r) => n + r[k], 0);
  const ok = runs.every((r) => r.code === 0 && r.found) && sum("failed") === 0;
  const seconds = Math.round((performance.now() - t0) / 1000);
  console.log(
    `\n${sum("failed") === 0 && runs.every((r) => r.found) ? "ok" : "FAILED"} | ${
      sum("passed")
    } passed | ${sum("failed")} failed | ${
      sum("ignored")
    } ignored (${seconds}s, in ${runs.length} runs)`,
  );
  Deno.exit(ok ? 0 : Math.max(1, ...runs.map((r) => r.code)));
}
