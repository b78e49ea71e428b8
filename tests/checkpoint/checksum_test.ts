/**
 * Checksums of written checkpoints: every file kind a run or `convert` writes gets a
 * `sha256sum`-format checksum file; a byte flipped inside a tensor is found on the next read
 * (eval, resume, --pretrained-ckpt, convert), naming the file; a file without a checksum still
 * reads, with a note; a write interrupted between its steps never raises a false alarm.
 */
import { checkedWrite, CHECKSUM_SUFFIX, verifyChecksum } from "../../lib/checkpoint/checksum.ts";
import { convertCheckpoint, readFlaxParams } from "../../lib/checkpoint/convert.ts";
import { readFlaxMsgpackFile } from "../../lib/checkpoint/flax_msgpack.ts";
import { readPthFile } from "../../lib/checkpoint/pth.ts";
import { readSafetensorsFile } from "../../lib/checkpoint/safetensors.ts";
import { loadTrainingState } from "../../lib/checkpoint/train_state.ts";
import { resolveConfig } from "../../lib/config/mod.ts";
import type { HostTensor } from "../../lib/ir/host_tensor.ts";
import { train } from "../../lib/train/loop.ts";
import { main as evalMain } from "../../tasks/eval.ts";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { makeDataset, tinyConfig, withDir } from "../train/e2e_helpers.ts";

/** Flips one byte in the middle of `tensor`'s bytes inside the file at `path`. */
async function flipInside(path: string, tensor: HostTensor): Promise<void> {
  const file = await Deno.readFile(path);
  const t = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const at = indexOf(file, t);
  assert(at >= 0, `the tensor's bytes are not in ${path}`);
  file[at + (t.length >> 1)] ^= 0x10;
  await Deno.writeFile(path, file);
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Runs `deno task eval`'s main, capturing its output. */
async function evalTask(args: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const { log, error } = console;
  console.log = () => {};
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { code: await evalMain(args), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const wte = (tree: Record<string, any>) =>
  // deno-lint-ignore no-explicit-any
  (tree.model ?? tree.params.model).embed.wte.kernel as HostTensor;

Deno.test("a byte flipped in a tensor of -last, -best, -state, .pth, .safetensors: the next read names the file", async () => {
  await withDir("deit3-checksum-", async (dir) => {
    const data = await makeDataset(dir);
    const cfg = tinyConfig(dir, data);
    await train(resolveConfig(cfg, "<test>"));
    const out = `${dir}/out`;
    for (const kind of ["last", "best", "state"]) {
      const text = await Deno.readTextFile(`${out}/tiny-${kind}.msgpack${CHECKSUM_SUFFIX}`);
      assert(new RegExp(`^[0-9a-f]{64}  tiny-${kind}\\.msgpack\\n$`).test(text), text);
    }
    // The format is sha256sum's own: it agrees.
    const sum = await new Deno.Command("sha256sum", {
      args: ["-c", "tiny-last.msgpack.sha256", "tiny-best.msgpack.sha256"],
      cwd: out,
    }).output().catch(() => null);
    if (sum) assert(sum.success, new TextDecoder().decode(sum.stdout));
    else console.warn("sha256sum not found: its cross-check skipped");
    await convertCheckpoint({ input: `${out}/tiny-last.msgpack`, to: "pth" });
    await convertCheckpoint({ input: `${out}/tiny-last.msgpack`, to: "safetensors" });
    const pthTree = await readPthFile(`${out}/tiny-last.pth`);
    const st = await readSafetensorsFile(`${out}/tiny-last.safetensors`);

    const mismatch = (file: string) =>
      new RegExp(`${file.replace(/\./g, "\\.")}: checksum mismatch`);
    // -best: eval; -last: --pretrained-ckpt, convert and eval.
    const best = `${out}/tiny-best.msgpack`;
    await flipInside(best, wte(await readFlaxMsgpackFile(best)));
    const e1 = await evalTask([best]);
    assert(e1.code !== 0 && mismatch(best).test(e1.err), e1.err);
    const last = `${out}/tiny-last.msgpack`;
    await flipInside(last, wte(await readFlaxMsgpackFile(last)));
    const e2 = await evalTask([last]);
    assert(e2.code !== 0 && mismatch(last).test(e2.err), e2.err);
    await assertRejects(() => readFlaxParams(last), mismatch(last));
    await assertRejects(
      () => convertCheckpoint({ input: last, to: "pth", out: `${dir}/x.pth` }),
      mismatch(last),
    );
    await Deno.mkdir(`${dir}/ft`);
    await assertRejects(
      () =>
        train(
          resolveConfig({ ...tinyConfig(`${dir}/ft`, data), "pretrained-ckpt": last }, "<test>"),
        ),
      mismatch(last),
    );
    // -state: the resume.
    const state = `${out}/tiny-state.msgpack`;
    await flipInside(state, wte(await readFlaxMsgpackFile(state)));
    await assertRejects(() => loadTrainingState(state), mismatch(state));
    await assertRejects(
      () => train(resolveConfig({ ...cfg, "training-steps": 9 }, "<test>")),
      mismatch(state),
    );
    // Files convert wrote.
    const pth = `${out}/tiny-last.pth`;
    const pthKernel = [...(pthTree as Record<string, HostTensor>)["patch_embed.proj.weight"].data];
    assert(pthKernel.length > 0);
    await flipInside(pth, (pthTree as Record<string, HostTensor>)["patch_embed.proj.weight"]);
    await assertRejects(() => readPthFile(pth), mismatch(pth));
    const sf = `${out}/tiny-last.safetensors`;
    await flipInside(sf, st.tensors.get("patch_embed.proj.weight")!);
    await assertRejects(() => readSafetensorsFile(sf), mismatch(sf));
  });
});

Deno.test("checksum files: no false alarm at any step of a replacing write; none: read with a note", async () => {
  await withDir("deit3-checksum-", async (dir) => {
    const f = `${dir}/a.msgpack`;
    const bytes = (s: string) => new TextEncoder().encode(s);
    await checkedWrite(f, [bytes("old")]);
    const oldSum = await Deno.readTextFile(f + CHECKSUM_SUFFIX);
    await checkedWrite(f, [bytes("new")]);
    const newSum = await Deno.readTextFile(f + CHECKSUM_SUFFIX);
    // A completed write lists only the new content.
    assert(newSum !== oldSum && newSum.split("\n").length === 2, newSum);
    // A kill after step 2 (or 3) leaves {new, old} beside either content: both read.
    await Deno.writeTextFile(f + CHECKSUM_SUFFIX, newSum + oldSum);
    await verifyChecksum(f);
    await Deno.writeTextFile(f, "old");
    await verifyChecksum(f);
    await Deno.writeTextFile(f, "odd");
    await assertRejects(() => verifyChecksum(f), /a\.msgpack: checksum mismatch/);
    // No checksum file: read, with one note.
    await Deno.remove(f + CHECKSUM_SUFFIX);
    const notes: string[] = [];
    await verifyChecksum(f, f, (l) => notes.push(l));
    await verifyChecksum(f, f, (l) => notes.push(l));
    assertEquals(notes, [`note: ${f} has no checksum file (${f}.sha256); read unchecked`]);
  });
});
