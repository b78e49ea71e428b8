/**
 * Data pipeline benchmark: JPEG decode, and decode + RandomResizedCrop + flip + resize to 224,
 * on 500x375 JPEGs (quality 90, ~85 KB, like ImageNet's), side by side with Pillow doing the same
 * in Python (Debian's python3-pil, scripts/peers/bench_decode_pillow.py) on the same machine.
 *
 *   deno run -A bench/data.ts [--seconds S] [--rounds R] [--workers 1,2] [--json]
 *
 * Per-core figures are images per CPU second of the process (robust on a shared machine); the
 * loader figures are wall-clock images per second with N loader workers (Deno Workers through
 * the real train loader, including the NCHW batch copy) next to N Python processes. Each figure
 * is the best of R alternating rounds. Ratios > 1 mean faster than Pillow.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { decodeImage, decodeWithSharp, jpegDecoder } from "../lib/data/decode.ts";
import { createTrainLoader } from "../lib/data/loader.ts";
import { loadTurboJpeg } from "../lib/data/turbojpeg.ts";
import type { TrainTransformOptions } from "../lib/data/transform.ts";
import { Rng } from "../lib/ir/rng.ts";

const PEER = new URL("../scripts/peers/bench_decode_pillow.py", import.meta.url).pathname;
const RRC: TrainTransformOptions = {
  imageSize: 224,
  randomCrop: "rrc",
  colorJitter: 0,
  autoAugment: "none",
  randomErasing: 0,
  hflip: true,
};

export interface DataBenchResult {
  images: number;
  mean_jpeg_kb: number;
  jpeg_decoder: string;
  pillow: string | null;
  per_core: { name: string; deno_img_s: number; pillow_img_s: number | null }[];
  loader: { workers: number; deno_img_s: number; pillow_img_s: number | null }[];
  note?: string;
}

export async function benchData(
  { seconds = 2, rounds = 2, workers = [1, 2], images = 48 } = {},
): Promise<DataBenchResult> {
  const dir = await Deno.makeTempDir({ prefix: "deit3-bench-data-" });
  try {
    const jpegs = await writeBenchJpegs(dir, images);
    const shard = await writeShard(dir, jpegs);
    const { createTrainTransform } = await import("../lib/augment/transforms.ts");
    const transform = createTrainTransform(RRC);
    const rng = Rng.fromSeed(0);
    let k = 0;
    const deno: Record<string, number> = {};
    const peer: Record<string, number> = {};
    let pillow: string | null = null;
    let note: string | undefined;
    const best = (o: Record<string, number>, key: string, v: number) =>
      o[key] = Math.max(o[key] ?? 0, v);
    for (let round = 0; round < rounds; round++) {
      if (loadTurboJpeg()) {
        best(
          deno,
          "decode",
          await perCpuSecond(jpegs, seconds, (b) => decodeImage(b)),
        );
      }
      best(deno, "decode (sharp)", await perCpuSecond(jpegs, seconds, (b) => decodeWithSharp(b)));
      best(
        deno,
        "decode + RRC + flip + resize 224",
        await perCpuSecond(
          jpegs,
          seconds,
          async (b) => transform(await decodeImage(b), rng.child(k++)),
        ),
      );
      for (const n of workers) best(deno, `loader_${n}`, await loaderRate(shard, n, seconds));
      try {
        const r = await runPillow(dir, seconds, workers);
        pillow = r.pillow;
        best(peer, "decode", r.decode);
        best(peer, "decode + RRC + flip + resize 224", r.pipeline);
        for (const n of workers) best(peer, `loader_${n}`, r[`loader_${n}`]);
      } catch (e) {
        note = `Pillow peer not run: ${(e as Error).message}`;
      }
    }
    const sizes = jpegs.reduce((s, j) => s + j.length, 0) / jpegs.length / 1000;
    return {
      images,
      mean_jpeg_kb: Number(sizes.toFixed(1)),
      jpeg_decoder: jpegDecoder(),
      pillow,
      per_core: Object.keys(deno).filter((n) => !n.startsWith("loader_")).map((name) => ({
        name,
        deno_img_s: round1(deno[name]),
        pillow_img_s: peer[name === "decode (sharp)" ? "decode" : name] !== undefined
          ? round1(peer[name === "decode (sharp)" ? "decode" : name])
          : null,
      })),
      loader: workers.map((n) => ({
        workers: n,
        deno_img_s: round1(deno[`loader_${n}`]),
        pillow_img_s: peer[`loader_${n}`] !== undefined ? round1(peer[`loader_${n}`]) : null,
      })),
      note,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

export function formatDataBench(r: DataBenchResult): string {
  const ratio = (a: number, b: number | null) => (b ? (a / b).toFixed(2) + "x" : "-");
  const lines = [
    `${r.images} JPEGs 500x375, ${r.mean_jpeg_kb} KB mean, quality 90; JPEG decoder: ` +
    `${r.jpeg_decoder}; peer: Pillow ${r.pillow ?? "(not run)"}`,
    "",
    "| per core (img per CPU s) | Deno | Pillow | ratio |",
    "|---|---|---|---|",
    ...r.per_core.map((c) =>
      `| ${c.name} | ${c.deno_img_s} | ${c.pillow_img_s ?? "-"} | ${
        ratio(c.deno_img_s, c.pillow_img_s)
      } |`
    ),
    "",
    "| loader, decode + RRC + flip + 224 + NCHW (img/s) | Deno Workers | Python processes | ratio |",
    "|---|---|---|---|",
    ...r.loader.map((l) =>
      `| ${l.workers} worker${l.workers > 1 ? "s" : ""} | ${l.deno_img_s} | ${
        l.pillow_img_s ?? "-"
      } | ` +
      `${ratio(l.deno_img_s, l.pillow_img_s)} |`
    ),
  ];
  if (r.note) lines.push("", r.note);
  return lines.join("\n");
}

/** Synthetic photos: smooth gradients, texture and noise, tuned to ImageNet's ~85 KB. */
async function writeBenchJpegs(dir: string, n: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const jpg = new Uint8Array(
      await sharp(synthPhoto(k, 500, 375), { raw: { width: 500, height: 375, channels: 3 } })
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
    await Deno.writeFile(`${dir}/${String(k).padStart(3, "0")}.jpg`, jpg);
    out.push(jpg);
  }
  return out;
}

function synthPhoto(k: number, w: number, h: number): Uint8Array {
  const rng = Rng.fromSeed(1000 + k);
  const g = 8, gw = Math.ceil(w / g) + 2, gh = Math.ceil(h / g) + 2;
  const grid = new Float32Array(gw * gh * 3).map(() => rng.uniform() * 2 - 1);
  const waves = Array.from({ length: 12 }, () => [
    rng.uniform() * 0.05,
    rng.uniform() * 0.05,
    rng.uniform() * 6.28,
    30 + rng.uniform() * 40,
  ]);
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const gx = x / g, gy = y / g, x0 = Math.floor(gx), y0 = Math.floor(gy);
      const fx = gx - x0, fy = gy - y0;
      for (let c = 0; c < 3; c++) {
        let v = 128;
        for (let i = c * 4; i < c * 4 + 4; i++) {
          const [a, b, p, amp] = waves[i];
          v += amp * Math.sin(a * x + b * y + p);
        }
        const at = (xx: number, yy: number) => grid[(yy * gw + xx) * 3 + c];
        v += 70 * ((1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) +
          fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1)));
        v += 27 * (rng.uniform() * 2 - 1);
        out[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return out;
}

async function writeShard(dir: string, jpegs: Uint8Array[]): Promise<string> {
  const { packTar } = await import("modern-tar");
  const entries = jpegs.flatMap((jpg, i) => {
    const cls = new TextEncoder().encode(String(i % 1000));
    return [
      { header: { name: `s${i}.jpg`, size: jpg.length, type: "file" as const }, body: jpg },
      { header: { name: `s${i}.cls`, size: cls.length, type: "file" as const }, body: cls },
    ];
  });
  const path = `${dir}/bench.tar`;
  await Deno.writeFile(path, await packTar(entries));
  return path;
}

/** Images per CPU second of this process, running `fn` for about `seconds` of CPU. */
async function perCpuSecond(
  jpegs: Uint8Array[],
  seconds: number,
  fn: (b: Uint8Array) => unknown,
): Promise<number> {
  for (const j of jpegs.slice(0, 8)) await fn(j); // warm-up
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const t0 = cpu();
  let n = 0;
  while (cpu() - t0 < seconds || n < jpegs.length) await fn(jpegs[n++ % jpegs.length]);
  return n / (cpu() - t0);
}

/** Wall-clock img/s of the train loader with `workers` workers, after its first batch. */
async function loaderRate(shard: string, workers: number, seconds: number): Promise<number> {
  const loader = createTrainLoader({
    shards: [shard],
    batchSize: 32,
    transform: { kind: "train", options: RRC },
    workers,
    shuffleBuffer: 16,
    shuffleInitial: 4,
    log: () => {},
  });
  let n = 0, t0 = 0;
  for await (const b of loader) {
    if (t0 === 0) {
      t0 = performance.now(); // workers are up and have filled their first batches
      continue;
    }
    n += b.count;
    if (performance.now() - t0 > seconds * 1000) break;
  }
  await loader.close();
  return n / ((performance.now() - t0) / 1000);
}

async function runPillow(
  dir: string,
  seconds: number,
  workers: number[],
): Promise<Record<string, number> & { pillow: string }> {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [PEER, dir, "--seconds", String(seconds), "--workers", workers.join(",")],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => {
    throw new Error(`cannot run /usr/bin/python3 (${e.message}); apt-get install python3-pil`);
  });
  if (out.code !== 0) {
    throw new Error(`${PEER} failed: ${new TextDecoder().decode(out.stderr).trim().slice(-300)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "2" },
      rounds: { type: "string", default: "2" },
      workers: { type: "string", default: "1,2" },
      json: { type: "boolean", default: false },
    },
  });
  const r = await benchData({
    seconds: Number(values.seconds),
    rounds: Number(values.rounds),
    workers: values.workers.split(",").map(Number),
  });
  console.log(values.json ? JSON.stringify(r) : formatDataBench(r));
}
