/**
 * Checkpoint I/O benchmark (not a test): ViT-B/16 sized params (86.6M f32, 346 MB).
 *   deno run -A bench/checkpoint.ts [DIR]
 * Each read runs in a fresh process so its peak RSS (VmHWM) can be compared with the file size.
 * The peer (scripts/peers/checkpoint_torch_bench.py, Debian python3-torch + python3-msgpack) runs in
 * the same script on the same files.
 */
import { readFlaxMsgpackFile, writeFlaxMsgpackFile } from "../lib/checkpoint/flax_msgpack.ts";
import { readPthFile, type StateDict, writePthFile } from "../lib/checkpoint/pth.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "../lib/checkpoint/safetensors.ts";
import { flaxToTimm } from "../lib/checkpoint/timm.ts";
import type { Tree } from "../lib/checkpoint/tree.ts";
import type { HostTensor } from "../lib/ir/host_tensor.ts";

const SELF = new URL(import.meta.url).pathname;
const PEER = new URL("../scripts/peers/checkpoint_torch_bench.py", import.meta.url).pathname;

if (Deno.args[0] === "--read") {
  const [, kind, path] = Deno.args;
  const t0 = performance.now();
  if (kind === "msgpack") await readFlaxMsgpackFile(path);
  else if (kind === "pth") await readPthFile(path);
  else await readSafetensorsFile(path);
  const secs = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ secs, peakMiB: peakRssMiB() }));
  Deno.exit(0);
}

const dir = Deno.args[0] ?? await Deno.makeTempDir({ prefix: "ckpt-bench-" });
const params = vitB();
const mib = (p: string) => Deno.statSync(p).size / 2 ** 20;
const time = async (f: () => unknown) => {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
};
const rows: string[] = [];
const row = (what: string, secs: number, file: string, peak?: number) =>
  rows.push(
    `| ${what} | ${secs.toFixed(2)} s | ${(mib(file) / secs).toFixed(0)} MiB/s |${
      peak === undefined
        ? ""
        : ` ${peak.toFixed(0)} MiB peak RSS (file ${mib(file).toFixed(0)} MiB)`
    } |`,
  );
const readIn = async (kind: string, path: string) => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SELF, "--read", kind, path],
  })
    .output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
};

row(
  "deno: write Flax msgpack",
  await time(() => writeFlaxMsgpackFile(`${dir}/p.msgpack`, params)),
  `${dir}/p.msgpack`,
);
let r = await readIn("msgpack", `${dir}/p.msgpack`);
row("deno: read Flax msgpack", r.secs, `${dir}/p.msgpack`, r.peakMiB);
let sd: StateDict = new Map();
const tFirst = await time(() => (sd = flaxToTimm(params)));
const tConv = await time(() => (sd = flaxToTimm(params)));
rows.push(
  `| deno: Flax -> timm tensors (first call / warm) | ${tFirst.toFixed(2)} / ${
    tConv.toFixed(2)
  } s | | |`,
);
row("deno: write .pth", await time(() => writePthFile(`${dir}/p.pth`, sd)), `${dir}/p.pth`);
r = await readIn("pth", `${dir}/p.pth`);
row("deno: read .pth", r.secs, `${dir}/p.pth`, r.peakMiB);
row(
  "deno: write safetensors",
  await time(() => writeSafetensorsFile(`${dir}/p.safetensors`, sd)),
  `${dir}/p.safetensors`,
);
r = await readIn("safetensors", `${dir}/p.safetensors`);
row("deno: read safetensors", r.secs, `${dir}/p.safetensors`, r.peakMiB);

const peer = await new Deno.Command("/usr/bin/python3", { args: [PEER, dir] }).output();
console.log(new TextDecoder().decode(peer.stderr));
rows.push(...new TextDecoder().decode(peer.stdout).trim().split("\n"));
console.log("| step | time | throughput | memory |\n|---|---|---|---|\n" + rows.join("\n"));
if (!Deno.args[0]) await Deno.remove(dir, { recursive: true });

function vitB(): Tree {
  let seed = 1;
  const rand = (shape: number[]): HostTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      data[i] = (seed / 2 ** 32 - 0.5) * 0.04;
    }
    return { shape, dtype: "f32", data };
  };
  const D = 768, H = 12, hd = 64;
  const model: Tree = {
    embed: {
      cls_token: rand([1, 1, D]),
      wpe: rand([14, 14, D]),
      wte: { kernel: rand([16, 16, 3, D]), bias: rand([D]) },
    },
    norm: { scale: rand([D]), bias: rand([D]) },
    head: { kernel: rand([D, 1000]), bias: rand([1000]) },
  };
  for (let i = 0; i < 12; i++) {
    model[`layer_${i}`] = {
      attn: {
        wq: { kernel: rand([D, H, hd]), bias: rand([H, hd]) },
        wk: { kernel: rand([D, H, hd]), bias: rand([H, hd]) },
        wv: { kernel: rand([D, H, hd]), bias: rand([H, hd]) },
        wo: { kernel: rand([H, hd, D]), bias: rand([D]) },
      },
      ff: {
        w1: { kernel: rand([D, 4 * D]), bias: rand([4 * D]) },
        w2: { kernel: rand([4 * D, D]), bias: rand([D]) },
      },
      norm1: { scale: rand([D]), bias: rand([D]) },
      norm2: { scale: rand([D]), bias: rand([D]) },
      scale1: rand([D]),
      scale2: rand([D]),
    };
  }
  return { model };
}

function peakRssMiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(status.match(/VmHWM:\s+(\d+) kB/)![1]) / 1024;
}
