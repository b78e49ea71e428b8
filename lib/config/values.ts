/** Checking one option's value, given as JSON or as command-line text, against its spec. */
import { formatRange, inRange, type OptionSpec } from "./schema.ts";
import { closestName } from "./errors.ts";

export type Value = number | boolean | string | null;

/** The checked value, or the problem with it (a phrase like `must be an integer, got "x"`). */
export type Checked = { ok: true; value: Value } | { ok: false; problem: string };

/** Checks a value read from a JSON config. */
export function checkJsonValue(spec: OptionSpec, value: unknown): Checked {
  switch (spec.kind) {
    case "int":
      if (typeof value !== "number" || !Number.isInteger(value)) {
        return wrong("an integer", value);
      }
      if (!Number.isSafeInteger(value)) return wrong(SAFE_INTEGER, value);
      return checkRange(spec, value);
    case "float":
      if (typeof value !== "number" || !Number.isFinite(value)) return wrong("a number", value);
      return checkRange(spec, value);
    case "bool":
      return typeof value === "boolean" ? { ok: true, value } : wrong("true or false", value);
    case "string":
      if (typeof value !== "string") return wrong("a string", value);
      return value === "" ? { ok: false, problem: "must not be empty" } : { ok: true, value };
    case "optional-string":
      if (value === null) return { ok: true, value };
      if (typeof value !== "string") return wrong("a string or null", value);
      if (value === "") return { ok: false, problem: "must not be empty (use null to unset it)" };
      return { ok: true, value };
    case "enum":
      if (typeof value !== "string") return wrong(oneOf(spec.values), value);
      return checkChoice(spec.values, value);
  }
}

/** Parses the text of a `--key value` / `--key=value` flag. */
export function parseFlagText(key: string, spec: OptionSpec, text: string): Checked {
  switch (spec.kind) {
    case "int":
      // Exponent notation is fine when it names a whole number (`1e11`), as it is in a JSON file.
      if (
        !/^[+-]?\d+$/.test(text.trim()) &&
        !(/^[+-]?\d+(\.\d+)?e\+?\d+$/i.test(text.trim()) && Number.isInteger(Number(text)))
      ) return wrongText("an integer", text);
      if (!Number.isSafeInteger(Number(text))) return wrongText(SAFE_INTEGER, text);
      return checkRange(spec, Number(text));
    case "float": {
      const value = text.trim() === "" ? NaN : Number(text);
      if (!Number.isFinite(value)) return wrongText("a number", text);
      return checkRange(spec, value);
    }
    case "bool":
      if (text === "true") return { ok: true, value: true };
      if (text === "false") return { ok: true, value: false };
      return wrongText("true or false", text);
    case "string":
      return text === "" ? { ok: false, problem: "must not be empty" } : { ok: true, value: text };
    case "optional-string":
      if (text === "") {
        return { ok: false, problem: `must not be empty (use --no-${key} to unset it)` };
      }
      return { ok: true, value: text };
    case "enum":
      return checkChoice(spec.values, text);
  }
}

// Beyond 2^53 a double no longer holds every integer: 2^53 + 1 would silently become 2^53.
const SAFE_INTEGER = "an integer of magnitude at most 2^53 - 1 (9007199254740991)";

/** Checks a number against the spec's range. */
function checkRange(spec: OptionSpec & { kind: "int" | "float" }, value: number): Checked {
  if (spec.range && !inRange(value, spec.range)) {
    const hint = spec.hint ? `; ${spec.hint}` : "";
    return { ok: false, problem: `must be ${formatRange(spec.range)}, got ${value}${hint}` };
  }
  return { ok: true, value };
}

function checkChoice(values: readonly string[], value: string): Checked {
  if (values.includes(value)) return { ok: true, value };
  const best = closestName(value, values);
  const suggestion = best === undefined ? "" : ` (did you mean "${best}"?)`;
  return { ok: false, problem: `must be ${oneOf(values)}, got "${value}"${suggestion}` };
}

function oneOf(values: readonly string[]): string {
  return `one of ${values.map((v) => `"${v}"`).join(", ")}`;
}

function wrong(expected: string, value: unknown): Checked {
  return { ok: false, problem: `must be ${expected}, got ${describe(value)}` };
}

function wrongText(expected: string, text: string): Checked {
  return { ok: false, problem: `must be ${expected}, got "${text}"` };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return `"${value}" (a string)`;
  return `${JSON.stringify(value)} (a ${typeof value})`;
}
