/**
 * deno task dashboard [RUNS_DIR] [--port N] [--allow-host NAME[:PORT]]...
 *
 * Serves a live page on 127.0.0.1 with every run under RUNS_DIR (default runs/): each folder
 * with a metrics.jsonl. Loss, accuracy, learning-rate, img/s and step-time curves are overlaid,
 * interactive (smoothing, log scale, zoom, hover values, runs shown or hidden), and the page
 * updates while the runs train.
 */
import { serveDashboard } from "../lib/report/dashboard.ts";
import { command, EXIT, exit, parseFlags, TaskError, UsageError } from "./cli.ts";

const USAGE = `usage: deno task dashboard [RUNS_DIR] [--port N] [--allow-host NAME[:PORT]]...

Serves a live dashboard of the training runs under RUNS_DIR on http://127.0.0.1:N/.
A run is any folder below RUNS_DIR (RUNS_DIR itself included) that holds a metrics.jsonl,
as deno task train writes into runs/NAME/. The page overlays every run's loss, accuracy (%),
learning rate, img/s and data/compute step time, marks eval points, and updates every 2 s.
Smoothing (TensorBoard's), log scale, step or time x axis, zoom (drag, wheel), pan
(shift+drag), a value readout on hover, and a checkbox per run to show or hide it.

  RUNS_DIR            the folder to watch (default: runs)
  --port N            the port to listen on, on 127.0.0.1 only (default: 8080; 0 = any free port)
  --allow-host NAME   also answer requests for this host name (Host: NAME:PORT, or NAME:P as
                      given), e.g. the local end of a tunnel on another port; repeatable
  -h, --help          this text

Only 127.0.0.1 is served, and only requests for 127.0.0.1:N or localhost:N are answered (a
guard against DNS rebinding). To look from another machine, forward the port
(ssh -L 8080:127.0.0.1:8080 HOST, then open http://localhost:8080/).`;

export const main = command({ name: "dashboard", usage: USAGE, run: dashboard });

async function dashboard(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    port: { type: "string" },
    "allow-host": { type: "string", multiple: true },
  }, true);
  if (positionals.length > 1) {
    throw new UsageError(`one RUNS_DIR at most, got ${positionals.join(" ")}`);
  }
  const root = positionals[0] ?? "runs";
  const portText = values.port ?? "8080";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new UsageError(`--port must be an integer in [0, 65535], got "${portText}"`);
  }
  try {
    const info = await Deno.stat(root);
    if (!info.isDirectory) throw new Error("not a directory");
  } catch (e) {
    throw new UsageError(
      `RUNS_DIR "${root}" is not a readable directory (${(e as Error).message}); ` +
        "give the folder that holds the runs (deno task train writes runs/NAME/)",
    );
  }
  let server;
  try {
    server = serveDashboard(root, port, { allowHosts: values["allow-host"] ?? [] });
  } catch (e) {
    if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    throw new TaskError(`port ${port} is in use; pick another with --port N (0: any)`);
  }
  console.log(`dashboard: ${server.url} shows the runs under ${root} (Ctrl-C to stop)`);
  await server.finished;
  return EXIT.ok;
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);
