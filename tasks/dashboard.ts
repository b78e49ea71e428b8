/**
 * deno task dashboard [RUNS_DIR] [--port N]
 *
 * Serves a live page on 127.0.0.1 with every run under RUNS_DIR (default runs/): each folder
 * with a metrics.jsonl. Loss, accuracy, learning-rate, img/s and step-time curves are overlaid,
 * and the page refreshes while the runs train.
 */
import { parseArgs } from "node:util";
import { redactConsole } from "../lib/config/redact.ts";
import { serveDashboard } from "../lib/train/dashboard.ts";

const USAGE = `usage: deno task dashboard [RUNS_DIR] [--port N]

Serves a live dashboard of the training runs under RUNS_DIR on http://127.0.0.1:N/.
A run is any folder below RUNS_DIR (RUNS_DIR itself included) that holds a metrics.jsonl,
as deno task train writes into runs/NAME/. The page overlays every run's loss, accuracy (%),
learning rate, img/s and data/compute step time, marks eval points, and refreshes every 2 s.

  RUNS_DIR     the folder to watch (default: runs)
  --port N     the port to listen on, on 127.0.0.1 only (default: 8080; 0 = any free port)
  -h, --help   this text

Only 127.0.0.1 is served; to look from another machine, forward the port
(ssh -L 8080:127.0.0.1:8080 HOST).`;

if (import.meta.main) {
  redactConsole();
  const code = await main(Deno.args);
  if (code !== 0) Deno.exit(code);
}

export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { port: { type: "string" }, help: { type: "boolean", short: "h" } },
    });
  } catch (e) {
    console.error(`dashboard: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.positionals.length > 1) {
    console.error(`dashboard: one RUNS_DIR at most, got ${parsed.positionals.join(" ")}`);
    return 2;
  }
  const root = parsed.positionals[0] ?? "runs";
  const portText = parsed.values.port ?? "8080";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    console.error(`dashboard: --port must be an integer in [0, 65535], got "${portText}"`);
    return 2;
  }
  try {
    const info = await Deno.stat(root);
    if (!info.isDirectory) throw new Error("not a directory");
  } catch (e) {
    console.error(
      `dashboard: RUNS_DIR "${root}" is not a readable directory (${(e as Error).message}); ` +
        "give the folder that holds the runs (deno task train writes runs/NAME/)",
    );
    return 2;
  }
  let server;
  try {
    server = serveDashboard(root, port);
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      console.error(`dashboard: port ${port} is in use; pick another with --port N (0: any)`);
      return 1;
    }
    throw e;
  }
  console.log(`dashboard: ${server.url} shows the runs under ${root} (Ctrl-C to stop)`);
  await server.finished;
  return 0;
}
