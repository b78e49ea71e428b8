/**
 * Secrets out of text: every message, log line, metrics file and saved config or state goes
 * through `redact()` before it leaves the process.
 *
 * - The values of secret environment variables (`HF_TOKEN`, `WANDB_API_KEY`, GCS and cloud
 *   tokens, and any variable named like `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, `*_API_KEY`)
 *   become a reference to the variable, `${HF_TOKEN}`: the text still says what went there, and
 *   a saved config that is loaded again expands it back.
 * - Values whose variable is unknown (a token the shell expanded from an unexported variable,
 *   or typed in): `Authorization:` header values, `Bearer` tokens, Hugging Face `hf_...` tokens,
 *   passwords in URLs, signatures and tokens in query strings and private keys become `***`.
 */

/** Variables whose values are secrets, whatever their name says. */
export const SECRET_VARIABLES: readonly string[] = [
  "HF_TOKEN",
  "HUGGING_FACE_HUB_TOKEN",
  "WANDB_API_KEY",
  "GOOGLE_OAUTH_ACCESS_TOKEN",
  "CLOUDSDK_AUTH_ACCESS_TOKEN",
  "GCS_OAUTH_TOKEN",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
];

/** Names of variables treated as secret besides the list above. */
const SECRET_NAME = /(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY)$/i;
/** Values shorter than this are not replaced (a `TOKEN=1` flag would blank every digit 1). */
const MIN_SECRET_LENGTH = 6;

type Replacer = (match: string, ...groups: string[]) => string;

const PATTERNS: [RegExp, Replacer][] = [
  // Authorization: Bearer xyz / authorization=Basic xyz / "authorization": "xyz"
  [
    /(authorization["']?\s*[:=]\s*["']?)((?:bearer|basic|token)\s+)?([^\s"',;]*)/gi,
    (m, head, scheme = "", value) =>
      // A `$VAR` reference is no secret (and must survive in a saved config).
      !value || value.startsWith("$") || value === "***" ? m : `${head}${scheme}***`,
  ],
  [/\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, (_, head) => `${head}***`],
  [/\bhf_[A-Za-z0-9]{16,}/g, () => "hf_***"],
  // scheme://user:password@host
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, (_, head) => `${head}***@`],
  // ?token=... &sig=... X-Goog-Signature=... (signed URLs)
  [
    /([?&](?:access_token|token|sig|signature|key|api_key|x-goog-signature|x-goog-credential|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s"']+/gi,
    (_, head) => `${head}***`,
  ],
  [
    /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g,
    () => "*** private key ***",
  ],
  [/("private_key(?:_id)?"\s*:\s*")[^"]*"/g, (_, head) => `${head}***"`],
];

/** `text` with secrets replaced (see the module doc). */
export function redact(text: string, env: Record<string, string> = environment()): string {
  let out = text;
  for (const [name, value] of secretValues(env)) {
    out = out.replaceAll(value, () => "${" + name + "}");
  }
  for (const [pattern, replace] of PATTERNS) out = out.replace(pattern, replace as never);
  return out;
}

/** Every string inside a JSON-like value redacted (a config, a metrics event). */
export function redactValue<T>(value: T, env: Record<string, string> = environment()): T {
  if (typeof value === "string") return redact(value, env) as T;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, env)) as T;
  if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactValue(v, env);
    return out as T;
  }
  return value;
}

/** The secret variables set in `env`, longest value first (so no value is cut by a shorter). */
export function secretValues(env: Record<string, string>): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value.length < MIN_SECRET_LENGTH) continue;
    if (SECRET_VARIABLES.includes(name) || SECRET_NAME.test(name)) out.push([name, value]);
  }
  return out.sort((a, b) => b[1].length - a[1].length);
}

/**
 * Makes `console.log/info/warn/error/debug` redact their string arguments, for a task's whole
 * run (messages from libraries and workers' errors included). Idempotent.
 */
export function redactConsole(): void {
  const c = console as unknown as Record<string, unknown> & { [MARK]?: true };
  if (c[MARK]) return;
  c[MARK] = true;
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) =>
      original(...args.map((a) => {
        if (typeof a === "string") return redact(a);
        if (a instanceof Error) return redact(a.stack ?? a.message);
        return a;
      }));
  }
}

const MARK = Symbol.for("deit3.redactConsole");

function environment(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch {
    return {}; // no env permission: nothing known to redact by value
  }
}
