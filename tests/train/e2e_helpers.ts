/**
 * A tiny labelled image dataset as real webdataset shards (PNG + .cls), and a tiny config, for
 * end-to-end tests of `deno task train`.
 */
import sharp from "sharp";
import { resolveConfig } from "../../lib/config/mod.ts";
import { buildShard } from "../data/helpers.ts";
import { Rng } from "../../lib/ir/rng.ts";

export const SIZE = 16;
export const CLASSES = 4;

/** Class k: the k-th quadrant is bright, the rest dark, with noise. */
async function sampleImage(label: number, seed: number): Promise<Uint8Array> {
  const rng = Rng.fromSeed(seed);
  const px = new Uint8Array(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const q = (y < SIZE / 2 ? 0 : 2) + (x < SIZE / 2 ? 0 : 1);
      const base = q === label ? 200 : 40;
      for (let c = 0; c < 3; c++) {
        px[(y * SIZE + x) * 3 + c] = Math.max(0, Math.min(255, base + rng.randint(-30, 30)));
      }
    }
  }
  return new Uint8Array(
    await sharp(px, { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toBuffer(),
  );
}

/** Writes train (2 shards x 32) and valid (1 shard x 20) shards; returns their specs. */
export async function makeDataset(dir: string): Promise<{ train: string; valid: string }> {
  let seed = 0;
  const shard = async (prefix: string, n: number) => {
    const samples = [];
    for (let i = 0; i < n; i++) {
      const label = seed % CLASSES;
      samples.push({
        key: `${prefix}${String(i).padStart(4, "0")}`,
        parts: { png: await sampleImage(label, seed++), cls: String(label) },
      });
    }
    return await buildShard(samples);
  };
  await Deno.writeFile(`${dir}/train-0.tar`, await shard("a", 32));
  await Deno.writeFile(`${dir}/train-1.tar`, await shard("b", 32));
  await Deno.writeFile(`${dir}/valid-0.tar`, await shard("v", 20));
  return { train: `${dir}/train-{0..1}.tar`, valid: `${dir}/valid-0.tar` };
}

export function tinyConfig(
  dir: string,
  data: { train: string; valid: string },
  steps = 6,
): Record<string, unknown> {
  return {
    "train-dataset-shards": data.train,
    "valid-dataset-shards": data.valid,
    "train-batch-size": 8,
    "valid-batch-size": 8,
    "train-loader-workers": 1,
    "valid-loader-workers": 1,
    "random-crop": "none",
    "auto-augment": "none",
    "test-crop-ratio": 1.0,
    "mixup": 0.8,
    "cutmix": 1.0,
    "label-smoothing": 0.1,
    "layers": 1,
    "dim": 16,
    "heads": 2,
    "labels": CLASSES,
    "layerscale": true,
    "patch-size": 4,
    "image-size": SIZE,
    "droppath": 0.1,
    "init-seed": 1,
    "mixup-seed": 2,
    "dropout-seed": 3,
    "shuffle-seed": 4,
    "optimizer": "adamw",
    "learning-rate": 0.003,
    "warmup-steps": 2,
    "training-steps": steps,
    "log-interval": 2,
    "eval-interval": 3,
    "name": "tiny",
    "output-dir": `${dir}/out`,
    "backend": "cpu",
  };
}

/** Runs `fn` in a fresh temporary folder named with `prefix`, removed afterwards. */
export async function withDir(prefix: string, fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A config from a JSON object and command-line overrides, as `train` resolves it. */
export function config(json: Record<string, unknown>, argv: string[] = []) {
  return resolveConfig(json, "<test>", argv);
}
