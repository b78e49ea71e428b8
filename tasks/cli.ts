/**
 * The skeleton every task shares: `--help`, usage errors, known failures as one clear line,
 * secrets redacted, and always an exit code. A task file holds its own logic only:
 *
 *     export const main = command({ name: "convert", usage: USAGE, run: convert });
 *     ...
 *     if (import.meta.main) await exit(main); // the last line: every const is initialized
 *
 * `run(args)` does the work and returns the exit status, or throws; `main(args)` (what
 * `command` returns) never throws: it prints what went wrong and returns the status (tests call
 * it in-process). `exit(main)` runs it as the process, with secrets redacted from the console,
 * and exits with the status, so that no timer, worker or server left behind keeps it alive.
 *
 * Exit status, the same for every task (`EXIT`; the table with what each prints is in README.md):
 * 0 done or `--help` (usage on stdout); 1 the task failed (`TaskError` or any other error:
 * `task: message`, no stack); 2 a `UsageError` (arguments, missing setup: `task: message`, then
 * the usage when asked) or a `ConfigError` (its lines, which name their source); 75 train
 * interrupted after saving; 130 train stopped by a second signal without saving.
 *
 * A `TaskError` may carry another status (doctor: 2 when the backend or reference cannot load).
 * Errors that are bugs rather than foreseen failures (`TypeError`, `ReferenceError`,
 * `SyntaxError`) print their stack after the line, so that they can be found.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { type CommandLine, parseCommandLine } from "../lib/config/cli.ts";
import { ConfigError } from "../lib/config/errors.ts";
import { redactConsole } from "../lib/config/redact.ts";
import { EXIT_INTERRUPTED } from "../lib/report/report.ts";

/** The exit statuses of every task (see the module doc). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  /** EX_TEMPFAIL: the run saved its state; rerun it to resume. */
  interrupted: EXIT_INTERRUPTED,
  /** 128 + SIGINT: stopped without saving. */
  killed: 130,
} as const;

/**
 * The command was given wrongly, or the setup it needs is missing: exit 2. With `usage`, the
 * task's usage text follows the message; an empty message prints the usage alone.
 */
export class UsageError extends Error {
  readonly usage: boolean;
  constructor(message: string, options: { usage?: boolean } = {}) {
    super(message);
    this.name = "UsageError";
    this.usage = options.usage ?? false;
  }
}

/** A failure the task foresaw: `task: message` without a stack, exit `code` (default 1). */
export class TaskError extends Error {
  readonly code: number;
  constructor(message: string, code: number = EXIT.failed) {
    super(message);
    this.name = "TaskError";
    this.code = code;
  }
}

export interface Task {
  /** As typed after `deno task`; it starts each message (`convert: ...`). */
  name: string;
  /** The `--help` text, or a function of the arguments (train shows a config's defaults). */
  usage: string | ((args: string[]) => string);
  /** The task's own work: returns the exit status, or throws (see `exitStatus`). */
  run: (args: string[]) => Promise<number>;
}

/** A task's `main`: the exit status of `args`; never throws. */
export type Main = ((args: string[]) => Promise<number>) & { readonly task: Task };

/**
 * The task's `main`: `--help` or `-h` anywhere prints the usage (status 0); otherwise `run`,
 * with any error printed and mapped to its status.
 */
export function command(task: Task): Main {
  const main = async (args: string[]) => {
    try {
      if (args.includes("--help") || args.includes("-h")) {
        console.log(typeof task.usage === "string" ? task.usage : task.usage(args));
        return EXIT.ok;
      }
      return await task.run(args);
    } catch (e) {
      return exitStatus(task, e);
    }
  };
  return Object.assign(main, { task });
}

/** Prints `e` as the module doc says and returns its exit status. */
export function exitStatus(task: Pick<Task, "name" | "usage">, e: unknown): number {
  if (e instanceof ConfigError) {
    // Each line already names its source (the config file, `command line`).
    console.error(e.message);
    return EXIT.usage;
  }
  if (e instanceof UsageError) {
    const usage = e.usage ? (typeof task.usage === "string" ? task.usage : task.usage([])) : "";
    console.error(
      [e.message && `${task.name}: ${e.message}`, usage].filter((s) => s).join("\n\n"),
    );
    return EXIT.usage;
  }
  if (e instanceof TaskError) {
    console.error(`${task.name}: ${e.message}`);
    return e.code;
  }
  if (!(e instanceof Error)) {
    console.error(`${task.name}: ${String(e)}`);
    return EXIT.failed;
  }
  const bug = e instanceof TypeError || e instanceof ReferenceError || e instanceof SyntaxError;
  console.error(`${task.name}: ${e.message}${bug && e.stack ? `\n${e.stack}` : ""}`);
  return EXIT.failed;
}

/**
 * Runs `main` as the process: secrets redacted from every console line, and the process exits
 * with the status `main` returns. An error that escapes it (a promise nobody awaited) is
 * printed the same way and exits 1, instead of Deno's uncaught-error report.
 */
export async function exit(main: Main): Promise<never> {
  redactConsole();
  const escaped = (e: unknown) => Deno.exit(exitStatus(main.task, e));
  globalThis.addEventListener("unhandledrejection", (ev) => {
    ev.preventDefault();
    escaped(ev.reason);
  });
  globalThis.addEventListener("error", (ev) => {
    ev.preventDefault();
    escaped(ev.error);
  });
  Deno.exit(await main(Deno.args));
}

/**
 * `node:util`'s `parseArgs`, with its errors (an unknown option, a missing value) as a
 * `UsageError` followed by the usage.
 */
export function parseFlags<T extends ParseArgsOptionsConfig>(
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message, { usage: true });
  }
}

/** `CONFIG.json [--key value ...]` split (`parseCommandLine`), its mistakes as a UsageError. */
export function commandLine(args: readonly string[]): CommandLine {
  try {
    return parseCommandLine(args);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** `text` as an integer >= `min` ("a positive integer" for 1), else a UsageError naming `flag`. */
export function intFlag(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < min) {
    const want = min === 1 ? "a positive integer" : `an integer >= ${min}`;
    throw new UsageError(`${flag} must be ${want}, got "${text}"`);
  }
  return n;
}
