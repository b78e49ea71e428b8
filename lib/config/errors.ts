/** Errors and suggestions for configuration problems. */

/**
 * A configuration problem a user caused. `issues` holds one line per problem, each starting with
 * its source (the config file or `command line`); `message` is all of them, one per line.
 */
export class ConfigError extends Error {
  readonly issues: readonly string[];

  constructor(issues: readonly string[]) {
    super(issues.join("\n"));
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/**
 * The candidate closest to `input` when it is close enough to be a likely typo, comparing
 * lowercase dashed forms so that `learning_rate` and `learningRate` both find `learning-rate`.
 */
export function closestName(input: string, candidates: readonly string[]): string | undefined {
  const wanted = normalizeName(input);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(wanted, normalizeName(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const tolerance = Math.max(2, Math.floor(wanted.length / 4));
  return bestDistance <= tolerance ? best : undefined;
}

/**
 * ` (did you mean "x"?)` or an empty string. Besides typos (`closestName`) it finds what other
 * tools call an option: timm's names (`epochs` -> `training-steps`), the last words of a name
 * (`smoothing` -> `label-smoothing`, `batch-size` -> `train-batch-size` or `valid-batch-size`),
 * initials (`lr` -> `learning-rate`, `aa` -> `auto-augment`) or a shortened name (`opt` ->
 * `optimizer`).
 */
export function didYouMean(input: string, candidates: readonly string[], prefix = ""): string {
  const alias = OTHER_NAMES[normalizeName(input)];
  const suffix = candidates.filter((c) => normalizeName(c).endsWith(`-${normalizeName(input)}`));
  const best = closestName(input, candidates);
  const found = alias && candidates.includes(alias)
    ? [alias]
    : suffix.length > 0
    ? suffix
    : best !== undefined
    ? [best]
    : namedOtherwise(input, candidates);
  if (found.length === 0) return "";
  const shown = found.slice(0, 3).map((c) => `"${prefix}${c}"`);
  return ` (did you mean ${shown.length > 1 ? `${shown.slice(0, -1).join(", ")} or ` : ""}${
    shown.at(-1)
  }?)`;
}

/** timm's and deit's names for options that are spelled differently here. */
const OTHER_NAMES: Record<string, string> = {
  "epochs": "training-steps",
  "warmup-epochs": "warmup-steps",
  "reprob": "random-erasing",
  "b": "train-batch-size",
  "drop-path": "droppath",
  "drop": "dropout",
  "seed": "init-seed",
  "output": "output-dir",
};

/** Candidates whose initials or start are `input` (see didYouMean). */
function namedOtherwise(input: string, candidates: readonly string[]): string[] {
  const wanted = normalizeName(input);
  const words = (c: string) => normalizeName(c).split("-");
  const tiers = [
    (c: string) => wanted.length >= 2 && words(c).map((w) => w[0]).join("") === wanted,
    (c: string) => wanted.length >= 3 && normalizeName(c).startsWith(wanted),
  ];
  for (const tier of tiers) {
    const found = candidates.filter(tier);
    if (found.length > 0) return found;
  }
  return [];
}

function normalizeName(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").replaceAll("_", "-").toLowerCase();
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}
