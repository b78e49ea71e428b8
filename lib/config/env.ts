/**
 * Environment references in config strings: `$VAR`, `${VAR}`, `${VAR:-fallback}` (fallback when
 * unset or empty, as in sh), and `$$` for a literal `$`. `$CONFIG_DIR` is the folder of the
 * config file (the original's recipes pass `$(dirname $0)/in21k_to_in1k.json`).
 */

export type EnvLookup = (name: string) => string | undefined;

/** Thrown by `expandEnv` for a reference to an unset variable or a malformed reference. */
export class EnvReferenceError extends Error {
  constructor(message: string, readonly variable?: string) {
    super(message);
    this.name = "EnvReferenceError";
  }
}

const REFERENCE = /\$(?:\$|([A-Za-z_][A-Za-z0-9_]*)|\{([^}]*)\}|)/g;
const BRACED = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

/** `text` with every reference replaced; throws `EnvReferenceError` naming the variable. */
export function expandEnv(text: string, lookup: EnvLookup): string {
  return text.replace(REFERENCE, (match: string, bare?: string, braced?: string) => {
    if (match === "$$") return "$";
    if (bare !== undefined) return required(bare, lookup);
    if (braced !== undefined) {
      const parts = BRACED.exec(braced);
      if (!parts) throw new EnvReferenceError(`malformed reference "${match}"`);
      const [, name, fallback] = parts;
      if (fallback === undefined) return required(name, lookup);
      const value = lookup(name);
      return value === undefined || value === "" ? fallback : value;
    }
    throw new EnvReferenceError(
      `a lone "$" (write "$$" for a literal dollar sign, or $NAME / \${NAME} for a variable)`,
    );
  });
}

/** Looks names up in the process environment (needs --allow-env; tasks run with -A). */
export function processEnv(name: string): string | undefined {
  return Deno.env.get(name);
}

function required(name: string, lookup: EnvLookup): string {
  const value = lookup(name);
  if (value === undefined) {
    throw new EnvReferenceError(`environment variable ${name} is not set`, name);
  }
  return value;
}
