/**
 * Command-line overrides: `--key value`, `--key=value`, a boolean `--flag` (true), `--no-flag`
 * (false), `--flag=true|false`, and `--no-key` to unset an optional string. A later flag wins.
 */
import { type ConfigKey, isConfigKey, OPTIONS, optionSpec } from "./schema.ts";
import { didYouMean } from "./errors.ts";
import { parseFlagText, type Value } from "./values.ts";

export const CLI_SOURCE = "command line";

/** What `deno task train [CONFIG.json] [--flags]` was given. */
export interface CommandLine {
  /** The one positional argument, if any: the JSON config. */
  configPath?: string;
  /** Everything else, in order, for `loadConfig`. */
  flags: string[];
  /** `--help` or `-h` was given. */
  help: boolean;
}

/** One override from the command line. */
export interface Override {
  key: ConfigKey;
  value: Value;
  /** The flag as typed, for messages (`--heads 10`). */
  flag: string;
}

/** Splits a task's arguments into the config path and the flags; throws on a second path. */
export function parseCommandLine(args: readonly string[]): CommandLine {
  const { positionals, help, expanded } = tokenize(args);
  if (expanded) throw new Error(expandedMessage(expanded));
  if (positionals.length > 1) {
    throw new Error(
      `${CLI_SOURCE}: expected one config file, got ${positionals.length}: ` +
        positionals.map(({ text }) => `"${text}"`).join(", "),
    );
  }
  const configIndex = positionals[0]?.index;
  return {
    configPath: positionals[0]?.text,
    flags: args.filter((arg, i) => i !== configIndex && arg !== "--help" && arg !== "-h"),
    help,
  };
}

/** The arguments that are neither flags nor flag values (`--key value`), with their indices. */
export function positionalArgs(args: readonly string[]): { text: string; index: number }[] {
  return tokenize(args).positionals;
}

/** Typed overrides from flags; problems are returned as `command line: ...` lines. */
export function parseOverrides(
  argv: readonly string[],
): { overrides: Override[]; issues: string[] } {
  const { flags, positionals, issues, expanded } = tokenize(argv);
  const overrides: Override[] = [];
  if (expanded) issues.push(expandedMessage(expanded));
  for (const { text } of positionals) {
    issues.push(`${CLI_SOURCE}: unexpected argument "${text}" (options are written --key value)`);
  }
  for (const { key, text, negated, shown } of flags) {
    const spec = optionSpec(key);
    if (negated) {
      if (spec.kind === "bool") overrides.push({ key, value: false, flag: shown });
      else if (spec.kind === "optional-string") overrides.push({ key, value: null, flag: shown });
      else {issues.push(
          `${CLI_SOURCE}: ${shown}: only boolean and optional options have a --no- form`,
        );}
      continue;
    }
    if (text === undefined) {
      if (spec.kind === "bool") overrides.push({ key, value: true, flag: shown });
      else issues.push(`${CLI_SOURCE}: --${key} needs a value (--${key} VALUE or --${key}=VALUE)`);
      continue;
    }
    const checked = parseFlagText(key, spec, text);
    if (checked.ok) overrides.push({ key, value: checked.value, flag: shown });
    else issues.push(`${CLI_SOURCE}: --${key} ${checked.problem}`);
  }
  return { overrides, issues };
}

interface FlagToken {
  key: ConfigKey;
  /** The value text; undefined for a bare flag. */
  text?: string;
  negated: boolean;
  shown: string;
  /** The index of its last argument (its value, when separate). */
  endIndex?: number;
}

interface Tokens {
  flags: FlagToken[];
  positionals: { text: string; index: number }[];
  issues: string[];
  help: boolean;
  /** A shard flag followed by more paths: the shell expanded an unquoted `{a..b}`. */
  expanded?: { flag: string; values: string[] };
}

/** The error for a brace spec that the shell expanded into several arguments. */
function expandedMessage(e: { flag: string; values: string[] }): string {
  const shown = e.values.length > 3
    ? `"${e.values[0]}", "${e.values[1]}", ..., "${e.values.at(-1)}"`
    : e.values.map((v) => `"${v}"`).join(", ");
  return `${CLI_SOURCE}: ${e.flag} got ${e.values.length} paths (${shown}): the shell expanded ` +
    `an unquoted brace spec. Quote it so that the loader expands it: ${e.flag} '${
      guessBraces(e.values)
    }'`;
}

/** `a-00.tar a-01.tar ... a-63.tar` -> `a-{00..63}.tar` when they differ in one number. */
function guessBraces(values: string[]): string {
  const first = values[0], last = values.at(-1)!;
  const m1 = first.match(/^(.*?)(\d+)([^\d]*)$/), m2 = last.match(/^(.*?)(\d+)([^\d]*)$/);
  if (m1 && m2 && m1[1] === m2[1] && m1[3] === m2[3]) return `${m1[1]}{${m1[2]}..${m2[2]}}${m1[3]}`;
  return "PATH-{000..NNN}.tar";
}

const FLAG_NAMES = Object.keys(OPTIONS);

function tokenize(args: readonly string[]): Tokens {
  const tokens: Tokens = { flags: [], positionals: [], issues: [], help: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      tokens.help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      const prev = tokens.flags.at(-1);
      if (
        prev?.key.endsWith("-dataset-shards") && prev.endIndex === i - 1 && prev.text &&
        !arg.endsWith(".json")
      ) {
        // Another path right after a shard spec's value: brace expansion by the shell.
        tokens.expanded ??= { flag: `--${prev.key}`, values: [prev.text] };
        tokens.expanded.values.push(arg);
        prev.endIndex = i;
        continue;
      }
      tokens.positionals.push({ text: arg, index: i });
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    const negatedKey = name.startsWith("no-") ? name.slice(3) : undefined;
    if (!isConfigKey(name) && negatedKey !== undefined && isConfigKey(negatedKey)) {
      if (inline !== undefined) {
        tokens.issues.push(`${CLI_SOURCE}: --${name} takes no value, got "${arg}"`);
      } else tokens.flags.push({ key: negatedKey, negated: true, shown: arg });
      continue;
    }
    if (!isConfigKey(name)) {
      tokens.issues.push(
        `${CLI_SOURCE}: unknown flag "--${name}"${didYouMean(name, FLAG_NAMES, "--")}`,
      );
      // Skip its value too, so that it is not taken for the config file.
      if (inline === undefined && i + 1 < args.length && !args[i + 1].startsWith("--")) i++;
      continue;
    }
    let text = inline;
    const next = args[i + 1];
    if (text === undefined && next !== undefined && takesValue(name, next)) {
      text = next;
      i++;
    }
    tokens.flags.push({
      key: name,
      text,
      negated: false,
      shown: text === undefined ? arg : `${arg} ${text}`,
      endIndex: i,
    });
  }
  return tokens;
}

/** Whether the token after `--key` is its value. A boolean takes only `true`/`false`. */
function takesValue(key: ConfigKey, next: string): boolean {
  if (optionSpec(key).kind === "bool") return next === "true" || next === "false";
  // Negative numbers ("-1") are values; another "--flag" is not.
  return !next.startsWith("--");
}
