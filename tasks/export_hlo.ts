/**
 * deno task export-hlo CONFIG [--batch N] [--devices N] [--out FILE] [--config-key value ...]
 *
 * Writes the training step of a config as StableHLO text (MLIR generic form): the per-replica
 * program the PJRT backend compiles, for inspection or other XLA tools. `--devices N` (the
 * config key) writes the N-replica program (`mhlo.num_replicas = N`, gradients and metrics
 * averaged by all-reduces). CONFIG is a training
 * config JSON (keys are the original's flag names without dashes); further `--key value` flags
 * override it (e.g. `--precision bf16`, `--grad-ckpt`). Without --out the text goes to stdout,
 * unless stdout is a terminal: then to `{name}-train-step.mlir`.
 */
import { loadConfig } from "../lib/config/mod.ts";
import { exportTrainStep } from "../lib/train/export.ts";
import { command, commandLine, EXIT, exit, intFlag, UsageError } from "./cli.ts";

const USAGE =
  `usage: deno task export-hlo CONFIG.json [--batch N] [--devices N] [--out FILE] [--key value ...]

Writes the training step of CONFIG as StableHLO text (MLIR generic form): the per-replica
program that the PJRT backend compiles, for inspection or for other XLA tools.

  CONFIG.json     a training config (configs/*.json; keys are the original's flag names)
  --batch N       the global batch (default: the config's train-batch-size / grad-accum)
  --devices N     data-parallel replicas (mhlo.num_replicas = N, gradients all-reduced); the
                  program takes batch / N rows (default 1)
  --out FILE      where to write. Without it the text goes to stdout when stdout is a pipe or
                  a file, and to ./{name}-train-step.mlir when stdout is a terminal
  --key value     any config key, e.g. --precision bf16, --matmul-precision highest (each
                  dot's precision_config; default: jax's DEFAULT, as the original) or --grad-ckpt
  -h, --help      this text

Example: deno task export-hlo configs/deit3-s16-224-in1k-400ep.json --batch 64 --out step.mlir`;

export const main = command({ name: "export-hlo", usage: USAGE, run: exportHlo });

async function exportHlo(args: readonly string[]): Promise<number> {
  const { own, rest } = takeOwnFlags(args, ["batch", "out"]);
  const cl = commandLine(rest);
  if (!cl.configPath) throw new UsageError("", { usage: true });
  // Data locations do not matter for the program: keys naming unset $VARs are not read.
  const config = loadConfig(cl.configPath, cl.flags, { unsetVariables: "defer" });
  const t0 = performance.now();
  const program = exportTrainStep(config, {
    batch: own.batch === undefined ? undefined : intFlag("--batch", own.batch, 1),
    devices: Math.max(1, config.devices),
  });
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  // Megabytes of MLIR in a terminal are a mistake: there it goes to a file, and says where.
  const out = own.out ?? (Deno.stdout.isTerminal() ? `${config.name}-train-step.mlir` : undefined);
  if (out) {
    const tmp = `${out}.tmp-${Deno.pid}`;
    await Deno.writeTextFile(tmp, program.text);
    await Deno.rename(tmp, out);
    console.error(
      `export-hlo: wrote ${out} (${
        (program.text.length / 1e6).toFixed(2)
      } MB, ${program.nodes} graph nodes, ${program.inputs.length} ` +
        `arguments, ${program.outputs.length} results, per-replica batch ` +
        `${program.perReplicaBatch}) in ${seconds} s`,
    );
  } else {
    await Deno.stdout.write(new TextEncoder().encode(program.text));
  }
  return EXIT.ok;
}

/** Removes `--name value` / `--name=value` for `names` from `args`. */
function takeOwnFlags(
  args: readonly string[],
  names: readonly string[],
): { own: Record<string, string>; rest: string[] } {
  const own: Record<string, string> = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(args[i]);
    if (m && names.includes(m[1])) {
      const value = m[2] ?? args[++i];
      if (value === undefined) throw new UsageError(`--${m[1]} needs a value`);
      own[m[1]] = value;
    } else {
      rest.push(args[i]);
    }
  }
  return { own, rest };
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
