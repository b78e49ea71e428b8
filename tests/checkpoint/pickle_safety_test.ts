/**
 * Hostile `.pth` files: a pickle naming a global outside torch's `weights_only=True` list is
 * refused naming it (also by `deno task convert`, which exits non-zero); a "billion laughs" pickle
 * of shared tuples and a huge pickle of NONE opcodes fail at once with a clear error.
 */
import { readPth, readPthFile } from "../../lib/checkpoint/pth.ts";
import { weightsOnlyGlobal } from "../../lib/checkpoint/pickle.ts";
import { ZipWriter } from "../../lib/checkpoint/zip.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { HAVE_TORCH } from "./torch_helper.ts";

const TASK = new URL("../../tasks/convert.ts", import.meta.url).pathname;

/** A torch zip archive around `pkl`, as torch.save lays it out. */
function pth(pkl: Uint8Array): Uint8Array {
  const zip = new ZipWriter({ align: 64 });
  const parts = [
    ...zip.add("archive/data.pkl", pkl),
    ...zip.add("archive/byteorder", new TextEncoder().encode("little")),
    ...zip.add("archive/version", new TextEncoder().encode("3\n")),
    ...zip.finish(),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

const bytes = (...xs: (number | string)[]) =>
  Uint8Array.from(
    xs.flatMap((x) => typeof x === "number" ? [x] : [...new TextEncoder().encode(x)]),
  );

/** Protocol 2: GLOBAL module name, called (REDUCE) with one string argument. */
function calls(module: string, name: string, arg: string): Uint8Array {
  return bytes(0x80, 2, 0x63, `${module}\n${name}\n`, 0x8c, arg.length, arg, 0x85, 0x52, 0x2e);
}

/** `levels` levels of 10-tuples of the level below (memoized), in a dict: 10^levels leaves. */
function billionLaughs(levels: number): Uint8Array {
  // Each level's tuple is the first item of the next, whose MARK comes first; the other nine
  // items are memo references to it.
  const b: (number | string)[] = [0x80, 2, 0x7d, 0x8c, 1, "a"];
  for (let l = 0; l < levels; l++) b.push(0x28);
  for (let i = 0; i < 10; i++) b.push(0x4e);
  b.push(0x74, 0x71, 0);
  for (let l = 1; l < levels; l++) {
    for (let i = 0; i < 9; i++) b.push(0x68, l - 1);
    b.push(0x74, 0x71, l);
  }
  b.push(0x73, 0x2e);
  return bytes(...b);
}

Deno.test("weightsOnlyGlobal: torch's list, with protocol 2's __builtin__ mapped", () => {
  assertEquals(
    weightsOnlyGlobal("torch._utils", "_rebuild_tensor_v2"),
    "torch._utils._rebuild_tensor_v2",
  );
  assertEquals(weightsOnlyGlobal("__builtin__", "set"), "builtins.set");
  for (const [m, n] of [["posix", "system"], ["builtins", "eval"], ["__builtin__", "getattr"]]) {
    let message = "";
    try {
      weightsOnlyGlobal(m, n);
    } catch (e) {
      message = (e as Error).message;
    }
    assert(message.includes(`global ${m === "__builtin__" ? "builtins" : m}.${n}`), message);
  }
});

for (
  const [module, name, shown] of [
    ["posix", "system", "posix.system"],
    ["builtins", "eval", "builtins.eval"],
    ["__builtin__", "eval", "builtins.eval"],
  ]
) {
  Deno.test(`a .pth calling ${module}.${name} is refused naming it; convert exits non-zero`, async () => {
    const file = pth(calls(module, name, "echo pwned"));
    await assertRejects(() => readPth(file, "evil.pth"), new RegExp(`evil\\.pth: .*${shown}`));
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/evil.pth`, file);
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", TASK, `${dir}/evil.pth`, "--to", "msgpack"],
      }).output();
      const err = new TextDecoder().decode(r.stderr);
      assert(r.code !== 0, `convert exited 0: ${err}`);
      assert(err.includes(shown), err);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["evil.pth"]);
      if (HAVE_TORCH) {
        // torch refuses the same file, so the list is no stricter than torch's here.
        const t = await new Deno.Command("/usr/bin/python3", {
          args: ["-c", `import torch; torch.load("${dir}/evil.pth", weights_only=True)`],
        }).output();
        assert(!t.success, "torch loaded it");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a billion-laughs data.pkl (10^9 shared leaves) fails at once, naming the cause", async () => {
  const pkl = billionLaughs(9);
  assert(pkl.length < 250, `${pkl.length} bytes`);
  const t0 = performance.now();
  await assertRejects(() => readPth(pth(pkl), "laughs.pth"), /laughs\.pth: .*billion laughs/);
  // Unbounded, this walk takes minutes and gigabytes; bounded, a few thousand steps.
  assert(performance.now() - t0 < 5000, `${performance.now() - t0} ms`);
});

Deno.test("a 300 MiB data.pkl of NONE opcodes is refused before it is read", async () => {
  const pkl = new Uint8Array(300 << 20).fill(0x4e);
  pkl.set([0x80, 2]);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/nones.pth`, pth(pkl));
    await assertRejects(
      () => readPthFile(`${dir}/nones.pth`),
      /nones\.pth: archive\/data\.pkl is 314572800 bytes, more than the \d+ a checkpoint of 3 entries can need/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
