/**
 * ffi/smoke.ts's device programs (the DEFAULT-precision dot and the all-reduce) are checked
 * here without a device: by real XLA (jaxlib's CPU client with 2 host devices, from the peer
 * venv: $DEIT3_JAX_PYTHON, else ~/.cache/deit3-peers/bin/python; skipped when neither imports
 * jax), which must compile them and give the values smoke.ts expects.
 */
import { assertEquals } from "../assert.ts";
import { allReduce, DOT } from "../../ffi/smoke.ts";

const python = await findJaxPython();

const SCRIPTS = new URL("../../scripts/peers", import.meta.url).pathname;
// scripts/peers/bench_jax.py's compile_program and execute (one buffer per replica's device).
const CHECK = `
import sys, jax, numpy as np
sys.path.insert(0, sys.argv[3])
from bench_jax import compile_program, execute
def run(text, replicas, per_replica):
    exe, devices, _ = compile_program(text, replicas)
    rows = [[jax.device_put(a, d) for a in row] for row, d in zip(per_replica, devices)]
    return [[np.asarray(o) for o in row] for row in execute(exe, devices, rows)]
dot, reduce = open(sys.argv[1]).read(), open(sys.argv[2]).read()
b = np.fromfunction(lambda k, j: (k + j) % 4, (256, 64)).astype(np.float32)
((c,),) = run(dot, 1, [[np.ones((128, 256), np.float32), b]])
print(sorted(set(c.ravel().tolist())))
outs = run(reduce, 2, [[np.array([d + 1, 1, 0, -d], np.float32)] for d in range(2)])
print([row[0].tolist() for row in outs])
`;

Deno.test({
  name: `smoke programs: XLA compiles the dot and the all-reduce and gives smoke.ts's values${
    python ? "" : " (ignored: no Python with jax; set DEIT3_JAX_PYTHON)"
  }`,
  ignore: python === null,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/dot.mlir`, DOT);
      await Deno.writeTextFile(`${dir}/reduce.mlir`, allReduce(2));
      const out = await new Deno.Command(python!, {
        args: ["-c", CHECK, `${dir}/dot.mlir`, `${dir}/reduce.mlir`, SCRIPTS],
        env: { XLA_FLAGS: "--xla_force_host_platform_device_count=2", JAX_PLATFORMS: "cpu" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout).trim().split("\n");
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr).slice(-2000));
      assertEquals(text, ["[384.0]", "[[3.0, 2.0, 0.0, -1.0], [3.0, 2.0, 0.0, -1.0]]"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

async function findJaxPython(): Promise<string | null> {
  const home = Deno.env.get("HOME") ?? "";
  for (
    const p of [
      Deno.env.get("DEIT3_JAX_PYTHON"),
      Deno.env.get("DEIT3_PEERS_PYTHON"),
      `${home}/.cache/deit3-peers/bin/python`,
    ]
  ) {
    if (!p) continue;
    try {
      const r = await new Deno.Command(p, { args: ["-c", "import jax"], stderr: "null" }).output();
      if (r.success) return p;
    } catch {
      // not there
    }
  }
  return null;
}
