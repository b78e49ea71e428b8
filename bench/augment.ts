/**
 * Augmentation benchmark: every op at 224x224 and the full train transform, side by side with
 * Pillow in Python (Debian's python3-pil via scripts/peers/bench_augment_pillow.py) on the same machine,
 * one core each, timed in process CPU time. Prints a Markdown table; ratios > 1 mean faster than
 * Pillow.
 *
 *   deno run -A bench/augment.ts [--images N] [--json]
 *
 * Skips the Pillow column (with a note) when /usr/bin/python3 lacks PIL.
 */
import { decodeImage } from "../lib/data/decode.ts";
import process from "node:process";
import { Rng } from "../lib/ir/rng.ts";
import * as A from "../lib/augment/mod.ts";

const FILL: A.RGB = [123, 116, 103];
const here = new URL(".", import.meta.url);
const SOURCE = new URL("../tests/fixtures/augment/reference/source.png", here).pathname;
const PEER = new URL("../scripts/peers/bench_augment_pillow.py", here).pathname;

export type AugmentBenchResult = {
  ops: { name: string; deno_ms: number; pillow_ms: number | null }[];
  transforms: { name: string; deno_img_s: number; pillow_img_s: number | null }[];
  pillow: string | null;
};

export async function benchAugment(images = 300): Promise<AugmentBenchResult> {
  const src = await decodeImage(await Deno.readFile(SOURCE));
  const big = A.resize(src, 500, 375, { resample: "bicubic" });
  const img = A.resize(src, 224, 224, { resample: "bicubic" });
  const rng = Rng.fromSeed(0);

  const op = (name: string, args: number[], resample?: A.OpResample) => () =>
    A.applyOp(name, img, args, { resample, fill: FILL });
  const cases: [string, () => unknown][] = [
    ["AutoContrast", op("AutoContrast", [])],
    ["Equalize", op("Equalize", [])],
    ["Invert", op("Invert", [])],
    ["Posterize", op("Posterize", [2])],
    ["Solarize", op("Solarize", [128])],
    ["SolarizeAdd", op("SolarizeAdd", [99])],
    ["Color", op("Color", [1.81])],
    ["Contrast", op("Contrast", [1.81])],
    ["Brightness", op("Brightness", [1.81])],
    ["Sharpness", op("Sharpness", [1.81])],
    ["Desaturate", op("Desaturate", [1])],
    ["GaussianBlur", op("GaussianBlur", [1])],
    ["Rotate-bilinear", op("Rotate", [27], "bilinear")],
    ["Rotate-bicubic", op("Rotate", [27], "bicubic")],
    ["ShearX-bilinear", op("ShearX", [0.27], "bilinear")],
    ["ShearX-bicubic", op("ShearX", [0.27], "bicubic")],
    ["TranslateXRel-bicubic", op("TranslateXRel", [0.3], "bicubic")],
    ["FlipLeftRight", () => A.flipLeftRight(img)],
    ["Resize-500x375-to-224-bicubic", () => A.resize(big, 224, 224, { resample: "bicubic" })],
    ["RandomResizedCrop-224", () => A.randomResizedCrop(big, 224, rng)],
  ];
  const denoOps = new Map(cases.map(([name, fn]) => [name, timed(fn)]));

  const transforms: [string, A.TrainTransformOptions][] = [
    ["rand-m9-mstd0.5-inc1 (DeiT)", {
      imageSize: 224,
      randomCrop: "rrc",
      colorJitter: 0,
      autoAugment: "rand-m9-mstd0.5-inc1",
      randomErasing: 0.25,
    }],
    ["3a + jitter 0.3 (DeiT-III)", {
      imageSize: 224,
      randomCrop: "rrc",
      colorJitter: 0.3,
      autoAugment: "3a",
      randomErasing: 0,
    }],
  ];
  const denoTransforms = new Map<string, number>();
  for (const [name, opts] of transforms) {
    const t = A.createTrainTransform(opts);
    for (let i = 0; i < 100; i++) t(big, rng.child(1_000_000 + i));
    const t0 = cpuMs();
    for (let i = 0; i < images; i++) t(big, rng.child(i));
    denoTransforms.set(name, images / ((cpuMs() - t0) / 1000));
  }

  const peer = await runPeer(images);
  return {
    pillow: peer?.pillow ?? null,
    ops: [...denoOps].map(([name, ms]) => ({
      name,
      deno_ms: ms,
      pillow_ms: peer?.ops[name] ?? null,
    })),
    transforms: [...denoTransforms].map(([name, v]) => ({
      name,
      deno_img_s: v,
      pillow_img_s: peer?.transforms[name] ?? null,
    })),
  };
}

export function formatAugmentBench(r: AugmentBenchResult): string {
  const f = (v: number | null, d = 3) => (v === null ? "-" : v.toFixed(d));
  const ratio = (a: number | null, b: number | null) => (a && b ? (a / b).toFixed(2) + "x" : "-");
  const lines = [
    `Augmentation, one core each; peer: Pillow ${r.pillow ?? "(not available)"} in Python.`,
    "",
    "| op (224x224) | Deno ms | Pillow ms | speed vs Pillow |",
    "|---|---:|---:|---:|",
    ...r.ops.map((o) =>
      `| ${o.name} | ${f(o.deno_ms)} | ${f(o.pillow_ms)} | ${ratio(o.pillow_ms, o.deno_ms)} |`
    ),
    "",
    "| train transform (500x375 -> 224) | Deno img/s | Pillow img/s | speed vs Pillow |",
    "|---|---:|---:|---:|",
    ...r.transforms.map((t) =>
      `| ${t.name} | ${f(t.deno_img_s, 0)} | ${f(t.pillow_img_s, 0)} | ` +
      `${ratio(t.deno_img_s, t.pillow_img_s)} |`
    ),
  ];
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------

/** CPU time of this process in ms (one core; steady when other work shares the machine). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Best of `rounds` mean CPU times per call, after warm-up. */
function timed(fn: () => unknown, minMs = 300, rounds = 3): number {
  // Warm up past V8's optimizing tiers: a training run is millions of calls.
  for (let i = 0; i < 200; i++) fn();
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const t0 = cpuMs();
    for (;;) {
      fn();
      n++;
      const dt = cpuMs() - t0;
      if (dt >= minMs && n >= 10) {
        best = Math.min(best, dt / n);
        break;
      }
    }
  }
  return best;
}

type PeerResult = {
  pillow: string;
  ops: Record<string, number>;
  transforms: Record<string, number>;
};

async function runPeer(images: number): Promise<PeerResult | null> {
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [PEER, SOURCE, "--images", String(images)],
      env: { OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      console.error(`Pillow peer failed: ${new TextDecoder().decode(out.stderr).trim()}`);
      return null;
    }
    return JSON.parse(new TextDecoder().decode(out.stdout));
  } catch (e) {
    console.error(`Pillow peer not run (${(e as Error).message}); install python3-pil`);
    return null;
  }
}

if (import.meta.main) {
  const args = Deno.args;
  const i = args.indexOf("--images");
  const images = i >= 0 ? Number(args[i + 1]) : 300;
  const result = await benchAugment(images);
  console.log(
    args.includes("--json") ? JSON.stringify(result, null, 1) : formatAugmentBench(result),
  );
}
