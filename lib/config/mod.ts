/** Training configuration: schema, loading with CLI overrides and `$VAR` expansion, help. */
export {
  type Config,
  CONFIG_KEYS,
  type ConfigKey,
  isConfigKey,
  OPTIONS,
  type OptionSpec,
} from "./schema.ts";
export {
  configFileValues,
  DEFAULT_CONFIG_PATH,
  loadConfig,
  type LoadOptions,
  resolveConfig,
} from "./load.ts";
export { type CommandLine, parseCommandLine } from "./cli.ts";
export { configHelp, type HelpDefaults } from "./help.ts";
export { configToJson } from "./save.ts";
export { ConfigError } from "./errors.ts";
export { type EnvLookup, expandEnv } from "./env.ts";
