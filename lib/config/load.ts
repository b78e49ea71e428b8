/**
 * Loading a training configuration: the JSON file (or the embedded MNIST default), then the
 * command-line overrides, then environment expansion, defaults and checks. Every problem found is
 * reported at once in one `ConfigError`, each line naming the file or flag and the key.
 */
import { basename, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import embeddedDefault from "../../configs/mnist-vit-tiny.json" with { type: "json" };
import { type Config, CONFIG_KEYS, type ConfigKey, isConfigKey, optionSpec } from "./schema.ts";
import { ConfigError, didYouMean } from "./errors.ts";
import { type EnvLookup, EnvReferenceError, expandEnv, processEnv } from "./env.ts";
import { type Override, parseOverrides } from "./cli.ts";
import { checkJsonValue, type Value } from "./values.ts";
import { checkCombinations, type Draft } from "./validate.ts";
import type { HelpDefaults } from "./help.ts";

/** The config used when none is named. */
export const DEFAULT_CONFIG_PATH = "configs/mnist-vit-tiny.json";

export interface LoadOptions {
  /** Environment for `$VAR` references (default: the process environment). */
  env?: EnvLookup;
  /** Source of random seeds in [0, 1) (default: Math.random). */
  random?: () => number;
  /**
   * "defer": a file key naming an unset variable (`$GCS_MODEL_DIR`) is no error until a task
   * reads it; reading it throws the `ConfigError` that loading would have thrown. For tasks that
   * use few keys (eval, export-hlo), so that a recipe's unused `$GCS_*` paths need no variable.
   * Default "error": every problem at load time (train uses them all).
   */
  unsetVariables?: "error" | "defer";
}

/**
 * Reads `path` (or the embedded default when undefined), applies `argv` overrides, and returns the
 * frozen, validated config. Throws `ConfigError` listing every problem.
 */
export function loadConfig(
  path: string | undefined,
  argv: readonly string[] = [],
  options: LoadOptions = {},
): Config {
  const source = path ?? `${DEFAULT_CONFIG_PATH} (embedded default)`;
  const json = path === undefined ? embeddedDefault : readJson(path);
  const configDir = path === undefined ? embeddedConfigDir() : dirname(path);
  const name = basename(path ?? DEFAULT_CONFIG_PATH).replace(/\.json$/i, "");
  return resolveConfig(json, source, argv, { ...options, configDir, name });
}

/** The values a config file sets, as written (for `--help`); the embedded default when undefined. */
export function configFileValues(path: string | undefined): HelpDefaults {
  const json = path === undefined ? embeddedDefault : readJson(path);
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError([`${path}: a config must be a JSON object of "key": value pairs`]);
  }
  return {
    source: path ?? `${DEFAULT_CONFIG_PATH} (the embedded default)`,
    values: Object.fromEntries(Object.entries(json).filter(([k]) => isConfigKey(k))),
  };
}

/**
 * The same from an already parsed JSON value; `source` names it in messages, `configDir` is
 * `$CONFIG_DIR`, and `name` is used when the config gives none.
 */
export function resolveConfig(
  json: unknown,
  source: string,
  argv: readonly string[] = [],
  options: LoadOptions & { configDir?: string; name?: string } = {},
): Config {
  const env = options.env ?? processEnv;
  const random = options.random ?? Math.random;
  const issues: string[] = [];
  const fromFile = checkFileKeys(json, source, issues);
  const { overrides, issues: cliIssues } = parseOverrides(argv);
  issues.push(...cliIssues);

  const draft = merge(fromFile, overrides, random);
  issues.push(...unsetRequired(draft).map((problem) => `${source}: ${problem}`));
  const written: Partial<Record<ConfigKey, string>> = {};
  const unset = new Map<ConfigKey, string>();
  expandFileStrings(
    draft,
    source,
    { env, configDir: options.configDir ?? "." },
    issues,
    written,
    options.unsetVariables === "defer" ? unset : undefined,
  );
  if (draft.values.name === "") draft.values.name = options.name ?? "run";

  // Checked even when single keys have problems, so that one try shows everything; each message
  // names the values it compared and where they came from.
  issues.push(...checkCombinations(draft).map((problem) => `${source}: ${problem}`));
  if (issues.length > 0) throw new ConfigError(issues);
  const values: Record<string, unknown> = { ...draft.values };
  for (const [key, problem] of unset) {
    Object.defineProperty(values, key, {
      enumerable: true,
      get: () => {
        throw new ConfigError([problem]);
      },
    });
  }
  const config = Object.freeze(values) as Config;
  writtenForms.set(config, Object.freeze(written));
  return config;
}

/**
 * The file strings of `config` as written, before `$VAR` expansion (`$HF_TOKEN` stays a
 * reference), for the keys whose value expansion changed; what `configToJson` saves.
 */
export function writtenValues(config: Config): Readonly<Partial<Record<ConfigKey, string>>> {
  return writtenForms.get(config) ?? {};
}

const writtenForms = new WeakMap<Config, Readonly<Partial<Record<ConfigKey, string>>>>();

/** Defaults, then the file, then the flags; a seed left at its default is drawn at random. */
function merge(
  fromFile: Map<ConfigKey, Value>,
  overrides: Override[],
  random: () => number,
): Draft {
  const draft = { values: {}, origins: {} } as Draft;
  for (const key of CONFIG_KEYS) {
    const spec = optionSpec(key);
    draft.values[key] = spec.default;
    draft.origins[key] = { from: "default" };
    if (fromFile.has(key)) {
      draft.values[key] = fromFile.get(key)!;
      draft.origins[key] = { from: "file" };
    } else if (spec.kind === "int" && spec.randomDefault) {
      draft.values[key] = Math.floor(random() * 1_000_001);
    }
  }
  for (const { key, value, flag } of overrides) {
    draft.values[key] = value;
    draft.origins[key] = { from: "flag", flag };
  }
  return draft;
}

/** A default outside its own range (labels: -1) marks a key that must be given. */
function unsetRequired({ values, origins }: Draft): string[] {
  const problems: string[] = [];
  for (const key of CONFIG_KEYS) {
    const spec = optionSpec(key);
    if (origins[key].from !== "default" || (spec.kind !== "int" && spec.kind !== "float")) continue;
    const checked = checkJsonValue(spec, values[key]);
    if (!checked.ok) problems.push(`key "${key}" is not set, and ${checked.problem}`);
  }
  return problems;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new ConfigError([`${path}: cannot read the config file (${reason})`]);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError([`${path}: not valid JSON (${(e as Error).message})`]);
  }
}

/** Checked values of the file's keys; problems go to `issues`. */
function checkFileKeys(json: unknown, source: string, issues: string[]): Map<ConfigKey, Value> {
  const values = new Map<ConfigKey, Value>();
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    issues.push(`${source}: a config must be a JSON object of "key": value pairs`);
    return values;
  }
  for (const [key, value] of Object.entries(json)) {
    if (key.startsWith("//")) continue;
    if (!isConfigKey(key)) {
      issues.push(`${source}: unknown key "${key}"${didYouMean(key, CONFIG_KEYS)}`);
      continue;
    }
    const checked = checkJsonValue(optionSpec(key), value);
    if (checked.ok) values.set(key, checked.value);
    else issues.push(`${source}: key "${key}" ${checked.problem}`);
  }
  return values;
}

/**
 * Expands `$VAR` in the string values that came from the file. Flag values were already expanded
 * by the shell, and a key overridden by a flag needs no variable at all.
 */
function expandFileStrings(
  draft: Draft,
  source: string,
  { env, configDir }: { env: EnvLookup; configDir: string },
  issues: string[],
  written: Partial<Record<ConfigKey, string>>,
  /** When given, an unset variable's problem goes here (by key) instead of into `issues`. */
  deferred?: Map<ConfigKey, string>,
): void {
  const lookup: EnvLookup = (name) => name === "CONFIG_DIR" ? configDir : env(name);
  for (const key of CONFIG_KEYS) {
    const value = draft.values[key];
    const kind = optionSpec(key).kind;
    if (draft.origins[key].from !== "file" || typeof value !== "string") continue;
    if (kind !== "string" && kind !== "optional-string") continue;
    try {
      const expanded = expandEnv(value, lookup);
      if (expanded !== value) written[key] = value;
      if (expanded === "" && kind === "string") {
        issues.push(`${source}: key "${key}" is empty after expanding "${value}"`);
      }
      // An optional path that expands to nothing (`${PRETRAINED:-}`) is unset.
      draft.values[key] = expanded === "" && kind === "optional-string" ? null : expanded;
    } catch (e) {
      if (!(e instanceof EnvReferenceError)) throw e;
      const fix = e.variable ? ` (set it, or override with --${key})` : "";
      const problem = `${source}: key "${key}": ${e.message}${fix}`;
      // A malformed reference is an error at once, deferred or not.
      if (deferred && e.variable) deferred.set(key, problem);
      else issues.push(problem);
    }
  }
}

function embeddedConfigDir(): string {
  const url = new URL("../../configs", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : url.href;
}
