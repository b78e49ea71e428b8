/**
 * Shard specs, as webdataset writes them: `$ENV` references, brace expansion and `::` joins.
 *
 *   expandShardSpec("$GCS_DATASET_DIR/imagenet1k-train-{0000..1023}.tar")
 *   expandShardSpec("a-{0..6..2}.tar::b-{x,y}.tar")
 */
import { DataError } from "./stats.ts";

/** Expands env references, then splits on `::` and brace-expands every part. */
export function expandShardSpec(
  spec: string,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string[] {
  const expanded = expandEnv(spec, env);
  const urls = expanded.split("::").flatMap((part) => part.trim() ? braceExpand(part.trim()) : []);
  if (urls.length === 0) throw new DataError(`shard spec "${spec}" names no shards`);
  return urls;
}

/**
 * Replaces `$NAME` and `${NAME}` with the variable's value. An unset variable is an error that
 * names it (a silently empty `$GCS_DATASET_DIR` would turn `gs://` paths into local ones).
 * `$$` is a literal dollar.
 */
export function expandEnv(
  text: string,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, a, b) => {
      if (m === "$$") return "$";
      const name = a ?? b;
      const value = env(name);
      if (value === undefined) {
        throw new DataError(`"${text}" refers to $${name}, which is not set in the environment`);
      }
      return value;
    },
  );
}

/**
 * Bash-style brace expansion as webdataset's `braceexpand` does it: `{a,b}` alternatives,
 * `{0000..0012}` ranges that keep zero padding, `{0..10..2}` steps, `{9..7}` counting down,
 * several groups giving their cartesian product, nested groups allowed. A brace without a
 * matching partner, or with neither `,` nor `..`, is kept literally.
 */
export function braceExpand(pattern: string): string[] {
  const group = findGroup(pattern);
  if (!group) return [pattern.replace(/\\([{}])/g, "$1")];
  const { start, end, body } = group;
  const prefix = pattern.slice(0, start), suffix = pattern.slice(end + 1);
  const range = expandRange(body);
  const alternatives = range ?? splitTopLevel(body).flatMap(braceExpand);
  const tails = braceExpand(suffix);
  const out: string[] = [];
  for (const alt of alternatives) for (const tail of tails) out.push(prefix + alt + tail);
  return out;
}

// The first top-level `{...}` that is a real group (has a top-level comma or is a range).
function findGroup(s: string): { start: number; end: number; body: string } | undefined {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\") {
      i++;
      continue;
    }
    if (s[i] !== "{") continue;
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      if (s[j] === "\\") {
        j++;
        continue;
      }
      if (s[j] === "{") depth++;
      else if (s[j] === "}" && --depth === 0) {
        const body = s.slice(i + 1, j);
        if (expandRange(body) || splitTopLevel(body).length > 1) return { start: i, end: j, body };
        break;
      }
    }
  }
  return undefined;
}

function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0, from = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "\\") i++;
    else if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === "," && depth === 0) {
      parts.push(body.slice(from, i));
      from = i + 1;
    }
  }
  parts.push(body.slice(from));
  return parts;
}

function expandRange(body: string): string[] | undefined {
  const m = body.match(/^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/);
  if (m) {
    const [a, b] = [Number(m[1]), Number(m[2])];
    const step = Math.abs(Number(m[3] ?? 1)) || 1;
    // Zero padding applies when either end is written with a leading zero, as in bash.
    const padded = /^-?0\d/.test(m[1]) || /^-?0\d/.test(m[2]);
    const width = padded ? Math.max(m[1].length, m[2].length) : 0;
    const out: string[] = [];
    const dir = a <= b ? 1 : -1;
    for (let v = a; dir > 0 ? v <= b : v >= b; v += dir * step) {
      const digits = String(Math.abs(v)).padStart(width - (v < 0 ? 1 : 0), "0");
      out.push((v < 0 ? "-" : "") + digits);
    }
    return out;
  }
  const c = body.match(/^([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d+))?$/);
  if (c) {
    const [a, b] = [c[1].charCodeAt(0), c[2].charCodeAt(0)];
    const step = Math.abs(Number(c[3] ?? 1)) || 1;
    const dir = a <= b ? 1 : -1;
    const out: string[] = [];
    for (let v = a; dir > 0 ? v <= b : v >= b; v += dir * step) out.push(String.fromCharCode(v));
    return out;
  }
  return undefined;
}
