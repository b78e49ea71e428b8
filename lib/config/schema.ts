/**
 * The training options: every flag of the original deit3-jax `src/main.py`, plus this project's own
 * (`backend`, `pjrt-plugin`, `precision`, `devices`, `num-processes`, `process-id`,
 * `coordinator`, `max-bad-fraction`, `data-stall-timeout`, `data-retries`,
 * `random-erasing-fill`).
 *
 * Naming: one name per option everywhere. A `Config` is a frozen plain object keyed by the
 * original's flag names without the leading dashes, so code reads `config["image-size"]`, JSON
 * configs say `"image-size": 224` and the command line says `--image-size 224`. No camelCase
 * aliases exist.
 *
 * Defaults are the original's argparse defaults, except where noted in the doc line:
 * - seeds (`init-seed`, ...) are drawn at random in [0, 1000000] as the original does, and the
 *   drawn value is kept in the loaded config so that a run can be repeated;
 * - `name` left empty becomes the config file's name without `.json` (the original's recipes pass
 *   `--name $(basename $0 .sh)`).
 */

/** An inclusive or open numeric interval; a missing bound is unbounded. */
export interface Range {
  min?: number;
  max?: number;
  minOpen?: boolean;
  maxOpen?: boolean;
}

interface Common {
  group: Group;
  doc: string;
  /** Added to a range error, e.g. what to set the key to. */
  hint?: string;
}

export type OptionSpec =
  | Common & { kind: "int"; default: number; range?: Range; randomDefault?: true }
  | Common & { kind: "float"; default: number; range?: Range }
  | Common & { kind: "bool"; default: boolean }
  | Common & { kind: "string"; default: string }
  | Common & { kind: "optional-string"; default: null }
  | Common & { kind: "enum"; values: readonly string[]; default: string };

export type Group =
  | "data"
  | "augment"
  | "model"
  | "init"
  | "optim"
  | "schedule"
  | "run"
  | "backend";

export const GROUP_TITLES: Record<Group, string> = {
  data: "Data",
  augment: "Augmentation and loss",
  model: "Model",
  init: "Initialization and seeds",
  optim: "Optimizer",
  schedule: "Schedule, logging and evaluation",
  run: "Run identity and output",
  backend: "Backend (this project's own)",
};

const NON_NEGATIVE: Range = { min: 0 };
const POSITIVE_INT: Range = { min: 1 };
const FRACTION: Range = { min: 0, max: 1 };
const HALF_OPEN_FRACTION: Range = { min: 0, max: 1, maxOpen: true };
const SEED: Range = { min: 0, max: 2 ** 31 - 1 };
const SHARDS_DOC =
  "brace-expanded shard spec (path, file:, http(s)://, gs://, pipe:CMD; join with ::)";

export const OPTIONS = {
  // Data
  "train-dataset-shards": {
    group: "data",
    kind: "optional-string",
    default: null,
    doc: `training shards: ${SHARDS_DOC}`,
  },
  "valid-dataset-shards": {
    group: "data",
    kind: "optional-string",
    default: null,
    doc: `validation shards (none: no validation): ${SHARDS_DOC}`,
  },
  "train-batch-size": {
    group: "data",
    kind: "int",
    default: 2048,
    range: POSITIVE_INT,
    doc: "global training batch per optimizer step, split into grad-accum micro-batches",
  },
  "valid-batch-size": {
    group: "data",
    kind: "int",
    default: 256,
    range: POSITIVE_INT,
    doc: "global validation batch (the last one is padded and the padding not counted; a " +
      "validation set smaller than one batch runs at its own size)",
  },
  "train-loader-workers": {
    group: "data",
    kind: "int",
    default: 40,
    range: NON_NEGATIVE,
    doc: "decode/augment workers for training (0: in the main thread; at most the cores)",
  },
  "valid-loader-workers": {
    group: "data",
    kind: "int",
    default: 5,
    range: NON_NEGATIVE,
    doc: "decode workers for validation (0: in the main thread; at most the cores)",
  },
  "max-bad-fraction": {
    group: "data",
    kind: "float",
    default: 0.01,
    range: FRACTION,
    doc: "fraction of bad training samples, and of shards not read whole (unreadable or cut " +
      "short), tolerated (skipped and counted) before the run stops; the original skips " +
      "silently without limit",
  },
  "data-stall-timeout": {
    group: "data",
    kind: "float",
    default: 60,
    range: { min: 0, minOpen: true },
    doc: "seconds a shard read (http(s), gs://, pipe:) may get no bytes before it is " +
      "dropped and retried (pipe: commands are killed)",
  },
  "data-retries": {
    group: "data",
    kind: "int",
    default: 5,
    range: NON_NEGATIVE,
    doc: "attempts after the first when an http(s) or gs:// shard read fails or stalls",
  },

  // Augmentation and loss
  "random-crop": {
    group: "augment",
    kind: "enum",
    values: ["rrc", "src", "none"],
    default: "rrc",
    doc: "rrc: RandomResizedCrop; src: resize + reflect-pad 4 + random crop; none: center crop",
  },
  "color-jitter": {
    group: "augment",
    kind: "float",
    default: 0.0,
    range: NON_NEGATIVE,
    doc: "brightness/contrast/saturation jitter strength (0: off)",
  },
  "auto-augment": {
    group: "augment",
    kind: "string",
    default: "rand-m9-mstd0.5-inc1",
    doc: "timm policy string: rand-..., 3a, v0, v0r, original, originalr, augmix-..., or none",
  },
  "random-erasing": {
    group: "augment",
    kind: "float",
    default: 0.25,
    range: FRACTION,
    doc: "probability of RandomErasing with per-pixel noise (0: off)",
  },
  "random-erasing-fill": {
    group: "augment",
    kind: "enum",
    values: ["original", "normal"],
    default: "original",
    doc:
      "original: deit3-jax's fill (torchvision casts N(0,1) noise to uint8: a near-black box); " +
      "normal: timm's intended N(0,1) noise in normalized space",
  },
  "hflip": {
    group: "augment",
    kind: "bool",
    default: true,
    doc: "random horizontal flip (p = 0.5) in training; this project's own, the original always " +
      "flips (keep it off for data where mirroring changes the class, such as digits)",
  },
  "augment-repeats": {
    group: "augment",
    kind: "int",
    default: 3,
    range: POSITIVE_INT,
    doc: "repeated augmentation: copies of each sample, augmented independently (1: off)",
  },
  "test-crop-ratio": {
    group: "augment",
    kind: "float",
    default: 0.875,
    range: { min: 0, minOpen: true, max: 1 },
    doc: "validation: resize to int(image-size / ratio), then center crop image-size",
  },
  "mixup": {
    group: "augment",
    kind: "float",
    default: 0.8,
    range: NON_NEGATIVE,
    doc: "mixup Beta(alpha, alpha) parameter (0: off; with cutmix, one of the two per batch)",
  },
  "cutmix": {
    group: "augment",
    kind: "float",
    default: 1.0,
    range: NON_NEGATIVE,
    doc: "cutmix Beta(alpha, alpha) parameter (0: off)",
  },
  "criterion": {
    group: "augment",
    kind: "enum",
    values: ["ce", "bce"],
    default: "ce",
    doc: "ce: softmax cross-entropy; bce: sigmoid binary cross-entropy (no label smoothing)",
  },
  "label-smoothing": {
    group: "augment",
    kind: "float",
    default: 0.1,
    range: HALF_OPEN_FRACTION,
    doc: "label smoothing for ce (ignored with bce, as in the original)",
  },

  // Model
  "layers": {
    group: "model",
    kind: "int",
    default: 12,
    range: POSITIVE_INT,
    doc: "transformer blocks",
  },
  "dim": { group: "model", kind: "int", default: 768, range: POSITIVE_INT, doc: "embedding width" },
  "heads": {
    group: "model",
    kind: "int",
    default: 12,
    range: POSITIVE_INT,
    doc: "attention heads (must divide dim)",
  },
  "labels": {
    group: "model",
    kind: "int",
    default: -1,
    range: POSITIVE_INT,
    hint: "set it to the number of classes (the original's default -1 is not usable)",
    doc: "classes of the classifier head (no usable default)",
  },
  "layerscale": {
    group: "model",
    kind: "bool",
    default: false,
    doc: "LayerScale on both residual branches, initialized to 1e-4 (DeiT-III)",
  },
  "patch-size": {
    group: "model",
    kind: "int",
    default: 16,
    range: POSITIVE_INT,
    doc: "patch side in pixels (must divide image-size)",
  },
  "image-size": {
    group: "model",
    kind: "int",
    default: 224,
    range: POSITIVE_INT,
    doc: "input resolution for training and validation",
  },
  "posemb": {
    group: "model",
    kind: "enum",
    values: ["learnable", "sincos2d"],
    default: "learnable",
    doc: "position embedding",
  },
  "pooling": {
    group: "model",
    kind: "enum",
    values: ["cls", "gap"],
    default: "cls",
    doc: "cls token or global average pooling before the head",
  },
  "dropout": {
    group: "model",
    kind: "float",
    default: 0.0,
    range: HALF_OPEN_FRACTION,
    doc: "dropout rate",
  },
  "droppath": {
    group: "model",
    kind: "float",
    default: 0.1,
    range: HALF_OPEN_FRACTION,
    doc: "stochastic depth rate",
  },
  "grad-ckpt": {
    group: "model",
    kind: "bool",
    default: false,
    doc: "rematerialize each block in the backward pass (less memory, more compute)",
  },

  // Initialization and seeds
  "init-seed": {
    group: "init",
    kind: "int",
    default: 0,
    randomDefault: true,
    range: SEED,
    doc: "parameter initialization seed (random when not given; the drawn value is kept)",
  },
  "mixup-seed": {
    group: "init",
    kind: "int",
    default: 0,
    randomDefault: true,
    range: SEED,
    doc: "mixup/cutmix seed, plus the host index",
  },
  "dropout-seed": {
    group: "init",
    kind: "int",
    default: 0,
    randomDefault: true,
    range: SEED,
    doc: "dropout/droppath seed, plus the host index",
  },
  "shuffle-seed": {
    group: "init",
    kind: "int",
    default: 0,
    randomDefault: true,
    range: SEED,
    doc: "shard and sample shuffling seed",
  },
  "pretrained-ckpt": {
    group: "init",
    kind: "optional-string",
    default: null,
    doc: "Flax msgpack params to start from (position embedding resized; head kept if it fits)",
  },
  "label-mapping": {
    group: "init",
    kind: "optional-string",
    default: null,
    doc: 'JSON {"src": [...], "dst": [...]} moving pretrained head rows to new classes',
  },

  // Optimizer
  "optimizer": {
    group: "optim",
    kind: "enum",
    values: ["adamw", "lamb"],
    default: "adamw",
    doc: "adamw or lamb (the original's modified LAMB)",
  },
  "learning-rate": {
    group: "optim",
    kind: "float",
    default: 1e-3,
    range: NON_NEGATIVE,
    doc: "peak learning rate of the warmup-cosine schedule (1e-6 -> peak -> 1e-5)",
  },
  "weight-decay": {
    group: "optim",
    kind: "float",
    default: 0.05,
    range: NON_NEGATIVE,
    doc: "decoupled weight decay, applied to kernels only",
  },
  "adam-b1": {
    group: "optim",
    kind: "float",
    default: 0.9,
    range: HALF_OPEN_FRACTION,
    doc: "first-moment decay",
  },
  "adam-b2": {
    group: "optim",
    kind: "float",
    default: 0.999,
    range: HALF_OPEN_FRACTION,
    doc: "second-moment decay",
  },
  "adam-eps": {
    group: "optim",
    kind: "float",
    default: 1e-8,
    range: NON_NEGATIVE,
    doc: "denominator epsilon",
  },
  "lr-decay": {
    group: "optim",
    kind: "float",
    default: 1.0,
    range: { min: 0, minOpen: true, max: 1 },
    doc: "layer-wise lr decay: layer i scaled by lr-decay^(layers - i) (1: off)",
  },
  "clip-grad": {
    group: "optim",
    kind: "float",
    default: 0.0,
    range: NON_NEGATIVE,
    doc: "clip gradients to this global norm (0: off)",
  },
  "grad-accum": {
    group: "optim",
    kind: "int",
    default: 1,
    range: POSITIVE_INT,
    doc: "micro-batches accumulated per optimizer step (must divide train-batch-size)",
  },

  // Schedule, logging and evaluation
  "warmup-steps": {
    group: "schedule",
    kind: "int",
    default: 10000,
    range: NON_NEGATIVE,
    doc: "linear warmup steps (at most training-steps)",
  },
  "training-steps": {
    group: "schedule",
    kind: "int",
    default: 200000,
    range: POSITIVE_INT,
    doc: "optimizer steps in total",
  },
  "log-interval": {
    group: "schedule",
    kind: "int",
    default: 50,
    range: NON_NEGATIVE,
    doc: "log averaged training metrics every N steps (0: off)",
  },
  "eval-interval": {
    group: "schedule",
    kind: "int",
    default: 0,
    range: NON_NEGATIVE,
    doc: "save the -last checkpoint and validate every N steps and at the end (0: never)",
  },
  "save-interval": {
    group: "schedule",
    kind: "int",
    default: 0,
    range: NON_NEGATIVE,
    doc: "also save the training state every N steps (0: at evaluations, stops and save-minutes)",
  },
  "save-minutes": {
    group: "schedule",
    kind: "float",
    default: 10,
    range: NON_NEGATIVE,
    doc: "also save the training state once this many minutes passed since the last save (0: off)",
  },

  // Run identity and output
  "project": {
    group: "run",
    kind: "optional-string",
    default: null,
    doc: "project name for the run's logs (the original's wandb project)",
  },
  "name": {
    group: "run",
    kind: "string",
    default: "",
    doc: "run name; checkpoints are <output-dir>/<name>-{last,best}.msgpack " +
      "(empty: the config file's name)",
  },
  "ipaddr": {
    group: "run",
    kind: "optional-string",
    default: null,
    doc: "host address, recorded in the run's logs only",
  },
  "hostname": {
    group: "run",
    kind: "optional-string",
    default: null,
    doc: "host name, recorded in the run's logs only",
  },
  "output-dir": {
    group: "run",
    kind: "string",
    default: ".",
    doc: "where checkpoints go: a local folder or gs://bucket/prefix",
  },
  "accept-config-changes": {
    group: "run",
    kind: "bool",
    default: false,
    doc: "resume although training settings differ from the saved state's (each change is " +
      "logged; the model and the loader workers must still match)",
  },

  // Backend (this project's own)
  "backend": {
    group: "backend",
    kind: "enum",
    values: ["auto", "pjrt", "webgpu", "cpu"],
    default: "auto",
    doc: "auto: pjrt if a plugin is found, else webgpu if an adapter exists, else cpu",
  },
  "pjrt-plugin": {
    group: "backend",
    kind: "optional-string",
    default: null,
    doc: "path of the PJRT plugin library (none: discovered, e.g. libtpu)",
  },
  "precision": {
    group: "backend",
    kind: "enum",
    values: ["f32", "bf16"],
    default: "f32",
    doc: "compute precision of matmuls and activations (params and optimizer state stay f32)",
  },
  "devices": {
    group: "backend",
    kind: "int",
    default: 0,
    range: { min: 0 },
    doc: "data-parallel devices per process (0: every addressable device on pjrt, 1 on cpu " +
      "and webgpu; cpu runs N virtual devices)",
  },
  "num-processes": {
    group: "backend",
    kind: "int",
    default: 0,
    range: { min: 0 },
    doc: "processes (hosts) of a multi-host job (0: from the Cloud TPU VM environment, else 1)",
  },
  "process-id": {
    group: "backend",
    kind: "int",
    default: -1,
    range: { min: -1 },
    doc: "this process's index in the job (-1: from the Cloud TPU VM environment, else 0)",
  },
  "coordinator": {
    group: "backend",
    kind: "optional-string",
    default: null,
    doc: "HOST:PORT of process 0's key-value store (none: the first TPU worker, port 8476)",
  },
} as const satisfies Record<string, OptionSpec>;

export type Options = typeof OPTIONS;
export type ConfigKey = keyof Options;

/** The TypeScript type of one option's value. */
export type OptionValue<S> = S extends { kind: "int" | "float" } ? number
  : S extends { kind: "bool" } ? boolean
  : S extends { kind: "enum"; values: readonly (infer V)[] } ? V
  : S extends { kind: "optional-string" } ? string | null
  : string;

/** A loaded, validated training configuration, keyed by the flag names without dashes. */
export type Config = { readonly [K in ConfigKey]: OptionValue<Options[K]> };

/** Every key, in schema order (the order of `--help` and of a saved config). */
export const CONFIG_KEYS = Object.keys(OPTIONS) as ConfigKey[];

export function isConfigKey(key: string): key is ConfigKey {
  return Object.hasOwn(OPTIONS, key);
}

export function optionSpec(key: ConfigKey): OptionSpec {
  return OPTIONS[key] as OptionSpec;
}

/** `[0, 1)`-style text for a range. */
export function formatRange(range: Range): string {
  if (range.max === undefined) {
    return range.minOpen ? `> ${range.min}` : `>= ${range.min}`;
  }
  if (range.min === undefined) return range.maxOpen ? `< ${range.max}` : `<= ${range.max}`;
  return `${range.minOpen ? "(" : "["}${range.min}, ${range.max}${range.maxOpen ? ")" : "]"}`;
}

export function inRange(value: number, range: Range): boolean {
  if (range.min !== undefined && (range.minOpen ? value <= range.min : value < range.min)) {
    return false;
  }
  if (range.max !== undefined && (range.maxOpen ? value >= range.max : value > range.max)) {
    return false;
  }
  return true;
}
