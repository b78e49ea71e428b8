/** Writing a loaded config back out, e.g. next to a run's checkpoints, so that it can be rerun. */
import { writtenValues } from "./load.ts";
import { redact } from "./redact.ts";
import { type Config, CONFIG_KEYS } from "./schema.ts";

/**
 * The config as JSON that `loadConfig` reads back to the same values: every key in schema order,
 * the drawn seeds included. Strings from the file are saved as written, unexpanded (a spec's
 * `$HF_TOKEN` stays a reference); others have `$` written as `$$` so nothing expands twice.
 * Secrets are redacted (`redact.ts`): a token that the shell put in a flag is saved as
 * `${HF_TOKEN}`, which expands back on loading.
 */
export function configToJson(config: Config): string {
  const written = writtenValues(config);
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const value = written[key] ?? config[key];
    out[key] = typeof value !== "string"
      ? value
      : redact(key in written ? value : value.replaceAll("$", "$$$$"));
  }
  return JSON.stringify(out, null, 2) + "\n";
}
