/**
 * deno task wandb-sync [DIR ...]
 *
 * Uploads the runs that trained with WANDB_MODE=offline (their `wandb/offline-run-ID` folders
 * under DIR, default runs/) to W&B: the same run id, project, name, config, history rows, files
 * and exit code.
 */
import { offlineRunDirs, syncOfflineRun, wandbSettingsFromEnv } from "../lib/report/wandb.ts";
import { command, EXIT, exit, TaskError, UsageError } from "./cli.ts";

const USAGE = `usage: deno task wandb-sync [DIR ...]

Uploads runs that trained with WANDB_MODE=offline to W&B. Each such run wrote
RUN_DIR/wandb/offline-run-ID/ (config.json, wandb-history.jsonl, wandb-summary.json, output.log,
wandb-events.jsonl, files/); this sends them as run ID with the same project, name, config, tags,
group, notes and history rows (those the server lacks, when it has part of the run), uploads
wandb-metadata.json, config.yaml and output.log, and ends the run with its exit code. A folder
that was uploaded gets a "synced" file and is skipped next time.

  DIR          where to look, 5 levels down (default: runs)
  -h, --help   this text

Needs WANDB_API_KEY (or the ~/.netrc entry of wandb login); honours WANDB_BASE_URL and
WANDB_ENTITY. The Python SDK's "wandb sync" cannot read these folders, nor this task its files.`;

export const main = command({ name: "wandb-sync", usage: USAGE, run: sync });

async function sync(args: string[]): Promise<number> {
  const unknown = args.find((a) => a.startsWith("-"));
  if (unknown) throw new UsageError(`unknown option "${unknown}"`, { usage: true });
  const settings = wandbSettingsFromEnv((n) => n === "WANDB_MODE" ? "online" : Deno.env.get(n));
  if (!settings) throw new UsageError("no W&B API key: set WANDB_API_KEY or run wandb login");
  const roots = args.length ? args : ["runs"];
  const dirs = roots.flatMap((d) => offlineRunDirs(d));
  if (dirs.length === 0) throw new TaskError(`no offline runs under ${roots.join(", ")}`);
  let failed = 0;
  for (const dir of dirs) {
    if (await syncOfflineRun(dir, settings, (l) => console.log(l)) > 0) failed++;
  }
  if (failed) throw new TaskError(`${failed} of ${dirs.length} runs did not upload fully`);
  return EXIT.ok;
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
