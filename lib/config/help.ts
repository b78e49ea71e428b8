/** `--help` text generated from the schema. */
import {
  CONFIG_KEYS,
  type ConfigKey,
  formatRange,
  type Group,
  GROUP_TITLES,
  optionSpec,
} from "./schema.ts";

/** A config file's values as written, to show as the defaults of a run with that file. */
export interface HelpDefaults {
  /** What to call the file: `configs/mnist-vit-tiny.json (embedded default)`. */
  source: string;
  /** Its keys and values, unexpanded (`$HF_TOKEN` stays a reference). */
  values: Readonly<Record<string, unknown>>;
}

/**
 * Usage, config-file rules, and every option with its type, default and doc line. With
 * `defaults`, an option's default is the file's value where it sets one (what a run with that
 * file and no flags uses), else the schema's.
 */
export function configHelp(task = "train", defaults?: HelpDefaults): string {
  const lines = [
    `usage: deno task ${task} [CONFIG.json] [--key value | --key=value | --flag | --no-flag]...`,
    "",
    "CONFIG.json defaults to the embedded configs/mnist-vit-tiny.json. Its keys are the flag names",
    'without the dashes ("image-size": 224); flags override it. Strings in it expand $VAR, ${VAR}',
    "and ${VAR:-fallback} from the environment; $CONFIG_DIR is the config file's folder and $$ a",
    'literal $. Keys starting with "//" are comments.',
    "",
    ...wrap(
      defaults
        ? `Defaults below are those of ${defaults.source}: its value where it sets the key, else ` +
          "the built-in one."
        : "Defaults below are the built-in ones, used for keys a config file does not set.",
      "",
      100,
    ),
  ];
  const byGroup = new Map<Group, ConfigKey[]>();
  for (const key of CONFIG_KEYS) {
    const group = optionSpec(key).group;
    byGroup.set(group, [...(byGroup.get(group) ?? []), key]);
  }
  for (const [group, keys] of byGroup) {
    lines.push("", `${GROUP_TITLES[group]}:`);
    for (const key of keys) lines.push(...describeOption(key, defaults?.values));
  }
  return lines.join("\n") + "\n";
}

/**
 * Every option as a Markdown table, grouped as in --help: key, type, default, doc. The README's
 * hyperparameter table is this output (scripts/gen/readme_tables.ts writes it there).
 */
export function configMarkdownTable(): string {
  const lines = ["| key | type | default | what it does |", "| --- | --- | --- | --- |"];
  const byGroup = new Map<Group, ConfigKey[]>();
  for (const key of CONFIG_KEYS) {
    const group = optionSpec(key).group;
    byGroup.set(group, [...(byGroup.get(group) ?? []), key]);
  }
  const cell = (s: string) => s.replaceAll("|", "\\|");
  for (const [group, keys] of byGroup) {
    lines.push(`| **${GROUP_TITLES[group]}** | | | |`);
    for (const key of keys) {
      const { type, shownDefault } = typeAndDefault(key);
      lines.push(
        `| \`${key}\` | ${cell(type || "flag")} | ${cell(shownDefault)} | ${
          cell(optionSpec(key).doc)
        } |`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

function typeAndDefault(key: ConfigKey): { type: string; shownDefault: string } {
  const spec = optionSpec(key);
  let type: string;
  let extra = "";
  switch (spec.kind) {
    case "int":
    case "float":
      type = spec.kind === "int" ? "INT" : "NUM";
      if (spec.range) extra = ` (${formatRange(spec.range)})`;
      break;
    case "bool":
      type = "";
      break;
    case "enum":
      type = spec.values.join("|");
      break;
    default:
      type = "STR";
  }
  let shownDefault: string;
  if (spec.kind === "int" && spec.randomDefault) shownDefault = "random";
  else if (spec.default === null) shownDefault = "none";
  else if (spec.default === "") shownDefault = "derived";
  else shownDefault = String(spec.default);
  return { type: type + extra, shownDefault };
}

function describeOption(key: ConfigKey, values?: Readonly<Record<string, unknown>>): string[] {
  const spec = optionSpec(key);
  const { type, shownDefault } = typeAndDefault(key);
  const head = spec.kind === "bool"
    ? `  --${key}, --no-${key}`
    : spec.kind === "optional-string"
    ? `  --${key} ${type}, --no-${key}`
    : `  --${key} ${type}`;
  const fromFile = values && Object.hasOwn(values, key) ? values[key] : undefined;
  const shown = fromFile === undefined
    ? shownDefault
    : fromFile === null
    ? "none"
    : fromFile === ""
    ? '""'
    : String(fromFile);
  return [head, ...wrap(`${spec.doc} (default: ${shown})`, "      ", 100)];
}

/** Word-wraps `text` into lines of at most `width` columns, each starting with `indent`. */
function wrap(text: string, indent: string, width: number): string[] {
  const lines: string[] = [];
  let line = indent;
  for (const word of text.split(" ")) {
    if (line.length > indent.length && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent;
    }
    line += line.length > indent.length ? ` ${word}` : word;
  }
  lines.push(line);
  return lines;
}
