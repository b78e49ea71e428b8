/** Writing a loaded config back out, e.g. next to a run's checkpoints, so that it can be rerun. */
import { type Config, CONFIG_KEYS } from "./schema.ts";

/**
 * The config as JSON that `loadConfig` reads back to the same values: every key in schema order,
 * the drawn seeds included, and `$` written as `$$` so nothing expands twice.
 */
export function configToJson(config: Config): string {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const value = config[key];
    out[key] = typeof value === "string" ? value.replaceAll("$", "$$$$") : value;
  }
  return JSON.stringify(out, null, 2) + "\n";
}
