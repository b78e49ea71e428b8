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

/** ` (did you mean "x"?)` or an empty string. */
export function didYouMean(input: string, candidates: readonly string[], prefix = ""): string {
  const best = closestName(input, candidates);
  return best === undefined ? "" : ` (did you mean "${prefix}${best}"?)`;
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
