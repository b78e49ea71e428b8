/**
 * The text formats of a W&B run's files, as the official client (wandb 0.30) writes them:
 * - JSON with non-finite numbers as the bare tokens `NaN`, `Infinity`, `-Infinity` (what
 *   Python's `json` writes and reads; the official client sends `{"loss":NaN}` in history and
 *   summary lines, where JSON.stringify would write `null`);
 * - `config.yaml`: each key as `key:\n    value: ...`, 4-space indentation;
 * - `output.log` lines in file_stream: `ISO-TIME text`, stderr lines `ERROR ISO-TIME text`
 *   (microseconds, no zone), and the uploaded file with the text alone.
 */

const NON_FINITE = "\u0000nonfinite:";

/** JSON.stringify, with NaN and the infinities written as Python's json writes them. */
export function wandbJson(value: unknown): string {
  const text = JSON.stringify(
    value,
    (_k, v) => typeof v === "number" && !Number.isFinite(v) ? NON_FINITE + String(v) : v,
  );
  return text.replace(/"\\u0000nonfinite:(NaN|Infinity|-Infinity)"/g, "$1");
}

/** JSON.parse that also reads the bare `NaN`, `Infinity`, `-Infinity` tokens. */
export function parseWandbJson(text: string): any {
  const marked = text.replace(
    /"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g,
    (m) => m.startsWith('"') ? m : JSON.stringify(NON_FINITE + m),
  );
  return JSON.parse(
    marked,
    (_k, v) =>
      typeof v === "string" && v.startsWith(NON_FINITE) ? Number(v.slice(NON_FINITE.length)) : v,
  );
}

/** `config.yaml` of the run: `{key: {value}}` as the official client uploads it. */
export function configYaml(config: Record<string, unknown>): string {
  const lines: string[] = [];
  for (const key of Object.keys(config).sort()) {
    lines.push(`${yamlKey(key)}:`);
    yamlValue({ value: config[key] }, 1, lines);
  }
  return lines.join("\n") + "\n";
}

function yamlValue(v: unknown, depth: number, lines: string[]): void {
  const pad = "    ".repeat(depth);
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const entries = Object.entries(v);
    for (const [k, x] of entries) {
      if (isScalar(x) || isEmpty(x)) lines.push(`${pad}${yamlKey(k)}: ${yamlScalar(x)}`);
      else {
        lines.push(`${pad}${yamlKey(k)}:`);
        yamlValue(x, depth + 1, lines);
      }
    }
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) {
      if (isScalar(x) || isEmpty(x)) lines.push(`${pad}- ${yamlScalar(x)}`);
      else {
        // A nested list or map under a dash: its lines indented one level more.
        const inner: string[] = [];
        yamlValue(x, depth + 1, inner);
        lines.push(`${pad}- ${inner[0].trimStart()}`, ...inner.slice(1));
      }
    }
  }
}

function isScalar(v: unknown): boolean {
  return v === null || v === undefined || typeof v !== "object";
}

function isEmpty(v: unknown): boolean {
  return Array.isArray(v) ? v.length === 0 : !!v && Object.keys(v).length === 0;
}

function yamlScalar(v: unknown): string {
  if (Array.isArray(v)) return "[]";
  if (v && typeof v === "object") return "{}";
  if (v === null || v === undefined) return "null";
  if (typeof v === "number") {
    if (Number.isNaN(v)) return ".nan";
    if (!Number.isFinite(v)) return v > 0 ? ".inf" : "-.inf";
    return String(v);
  }
  if (typeof v === "boolean") return String(v);
  const s = String(v);
  // Plain when YAML reads it back as the same string; else double-quoted (JSON's escapes are
  // YAML's).
  return /^[A-Za-z_/][A-Za-z0-9_./@+-]*$/.test(s) &&
      !/^(true|false|null|yes|no|on|off|y|n|~)$/i.test(s)
    ? s
    : JSON.stringify(s);
}

function yamlKey(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k) ? k : JSON.stringify(k);
}

/** A file_stream `output.log` line: `2026-12-07T06:08:53.181364 text`, `ERROR ` for stderr. */
export function outputLogLine(text: string, stderr: boolean, at = new Date()): string {
  const iso = at.toISOString().replace("Z", "").replace(/\.(\d{3})$/, ".$1000");
  return `${stderr ? "ERROR " : ""}${iso} ${text}`;
}
