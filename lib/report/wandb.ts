/**
 * Weights & Biases logging, as the original does it (`wandb.init(name, project, config)`, the
 * train metrics each log interval and the val metrics each eval, each with its step), shown on
 * W&B as the official client (wandb 0.30) shows a run. This file is the training loop's side:
 * settings from the environment, the run's identity, its output captured for `output.log`, and
 * a `WandbRun` that hands everything to the sender (wandb_sender.ts, the protocol) on a Worker
 * (wandb_worker.ts), so that the heartbeat never waits on the loop.
 *
 * npm's `@wandb/sdk` 0.5.1 (the only release) was tried first against the fake server of the
 * tests: it drops history silently when the server answers 5xx, never marks such a run complete,
 * installs SIGINT/SIGTERM handlers that call `process.exit()` (which would cut our state save
 * short), does not read `WANDB_ENTITY`, sends the config in a form the W&B UI does not show as
 * values, and restarts history at line 0 on resume. Hence this client.
 *
 * The API key is only ever put in the Authorization header; every text sent (output, config,
 * metadata) is redacted first.
 */
import { redact } from "../config/redact.ts";
import { configYaml, outputLogLine } from "./wandb_format.ts";
import {
  type FinishResult,
  readJsonLines,
  type SenderInit,
  type SenderMessage,
  WandbSender,
  type WandbSettings,
} from "./wandb_sender.ts";
import { gitInfo, hostname, type MetadataInput, programPath, runMetadata } from "./wandb_system.ts";

export type { WandbSettings };
export type WandbMode = "online" | "offline" | "disabled";

/** The run's identity from the environment (the official client's variables). */
export interface WandbEnvRun {
  project?: string;
  name?: string;
  id?: string;
  tags?: string[];
  group?: string;
  notes?: string;
  /** Where local files go (`{dir}/wandb/...`); default: the run's metrics folder. */
  dir?: string;
}

export const DEFAULT_BASE_URL = "https://api.wandb.ai";

/**
 * W&B settings from the environment, or null when logging is off: `WANDB_MODE=disabled`, or no
 * API key (`WANDB_API_KEY`, else the `~/.netrc` entry `wandb login` writes for the host) in
 * online mode. `WANDB_MODE=offline` (or `dryrun`) needs no key.
 */
export function wandbSettingsFromEnv(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): WandbSettings | null {
  const modeText = (env("WANDB_MODE") ?? "online").toLowerCase();
  const mode: WandbMode = modeText === "disabled"
    ? "disabled"
    : modeText === "offline" || modeText === "dryrun"
    ? "offline"
    : "online";
  if (mode === "disabled" || env("WANDB_DISABLED") === "true") return null;
  const baseUrl = (env("WANDB_BASE_URL") || DEFAULT_BASE_URL).replace(/\/+$/, "");
  const apiKey = env("WANDB_API_KEY") || netrcPassword(baseUrl, env("HOME")) || "";
  if (mode === "online" && !apiKey) return null;
  return { mode, baseUrl, apiKey, entity: env("WANDB_ENTITY") || undefined };
}

/**
 * `WANDB_PROJECT`, `WANDB_NAME`, `WANDB_RUN_ID`, `WANDB_TAGS` (comma-separated),
 * `WANDB_RUN_GROUP`, `WANDB_NOTES`, `WANDB_DIR`. A run id W&B would refuse is an error that
 * names the variable.
 */
export function wandbRunFromEnv(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): WandbEnvRun {
  const get = (n: string) => env(n)?.trim() || undefined;
  const id = get("WANDB_RUN_ID");
  if (id !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    throw new Error(
      `WANDB_RUN_ID: "${id}" is not a W&B run id (1 to 64 letters, digits, "-" or "_")`,
    );
  }
  const tags = get("WANDB_TAGS")?.split(",").map((t) => t.trim()).filter(Boolean);
  return {
    project: get("WANDB_PROJECT"),
    name: get("WANDB_NAME"),
    id,
    tags: tags?.length ? tags : undefined,
    group: get("WANDB_RUN_GROUP"),
    notes: env("WANDB_NOTES") || undefined,
    dir: get("WANDB_DIR"),
  };
}

/** The password of the `~/.netrc` machine entry for the host of `baseUrl`, if any. */
export function netrcPassword(baseUrl: string, home: string | undefined): string | undefined {
  if (!home) return undefined;
  let text: string;
  try {
    text = Deno.readTextFileSync(`${home}/.netrc`);
  } catch {
    return undefined;
  }
  const url = new URL(baseUrl);
  const hosts = [url.host, url.hostname];
  const tokens = text.split("\n").map((l) => l.replace(/#.*/, "")).join(" ").split(/\s+/);
  let machine: string | undefined;
  const found = new Map<string, string>();
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === "machine") machine = tokens[++i];
    else if (tokens[i] === "default") machine = "";
    else if (tokens[i] === "password" && machine !== undefined) found.set(machine, tokens[++i]);
  }
  for (const h of hosts) if (found.has(h)) return found.get(h);
  return undefined;
}

export interface WandbRunOptions {
  /** The config's project (null: `WANDB_PROJECT`, else W&B's `uncategorized`). */
  project: string | null;
  /** The display name (the original's `--name`); `WANDB_NAME` overrides it. */
  name: string;
  config: Record<string, unknown>;
  /** The id kept in the training state (a resumed run); `WANDB_RUN_ID` wins; else a new one. */
  id?: string;
  /** The identity from the environment (`wandbRunFromEnv()`). */
  env?: WandbEnvRun;
  /** The run's folder: local W&B files go to `{WANDB_DIR or this}/wandb/`. */
  dir?: string;
  log: (line: string) => void;
  /** metrics.jsonl so far: a resumed run sends again what the server lacks. */
  history?: Record<string, unknown>[];
  backend?: MetadataInput["backend"];
  /** Sends console output as `output.log` (the training task; not the tests' own runs). */
  captureOutput?: boolean;
  /** The sender in this thread instead of a Worker (wandb-sync, tests). */
  inProcess?: boolean;
  /** Intervals (ms) and bounds, for tests; see SenderInit. */
  timing?: Pick<
    SenderInit,
    | "tickMs"
    | "flushMs"
    | "heartbeatMs"
    | "statsMs"
    | "requestTimeoutMs"
    | "maxBufferedRows"
    | "nvidiaSmi"
  >;
}

/**
 * A W&B run: `log` hands metrics to the sender and returns at once; `preempting` marks an
 * interruption that will resume; `finish(exitcode)` sends the rest and marks the run complete.
 */
export class WandbRun {
  readonly id: string;
  readonly project: string;
  readonly displayName: string;
  readonly #worker: Worker | null;
  readonly #sender: WandbSender | null;
  #finished = false;
  #restoreConsole: (() => void) | null = null;
  #result: ((r: FinishResult) => void) | null = null;
  /** The server acknowledged the end of the run. */
  completed = false;

  private constructor(settings: WandbSettings, opts: WandbRunOptions, init: SenderInit) {
    this.id = init.id;
    this.project = init.project || "uncategorized";
    this.displayName = init.displayName;
    const say = (line: string) => opts.log(line);
    if (opts.inProcess || settings.mode === "offline") {
      this.#worker = null;
      this.#sender = new WandbSender(init, say);
    } else {
      this.#sender = null;
      this.#worker = new Worker(new URL("./wandb_worker.ts", import.meta.url), {
        type: "module",
      });
      this.#worker.onmessage = (e) => {
        if (e.data.kind === "say") say(e.data.line);
        else if (e.data.kind === "finished") this.#result?.(e.data);
      };
      // An error on the Worker must never end training: it is said, and the run goes on.
      this.#worker.onerror = (e) => {
        e.preventDefault();
        say(`W&B: the sender stopped (${e.message}); metrics.jsonl has every row`);
        this.#result?.({ ok: false, unsent: -1, dropped: 0 });
      };
      this.#worker.postMessage({ kind: "init", init });
    }
    if (opts.captureOutput) {
      this.#restoreConsole = captureConsole((lines) => this.#send({ kind: "output", lines }));
    }
  }

  /** Starts a run (online: in the background; this never waits on the network). */
  static async start(settings: WandbSettings, opts: WandbRunOptions): Promise<WandbRun> {
    const env = opts.env ?? {};
    const id = env.id ?? opts.id ?? newRunId();
    const project = opts.project || env.project || "";
    const displayName = env.name || opts.name;
    const dir = env.dir ?? opts.dir;
    const startedAt = new Date();
    const git = await gitInfo();
    const metadata = await runMetadata({
      nvidiaSmi: opts.timing?.nvidiaSmi,
      backend: opts.backend,
      root: dir ?? Deno.cwd(),
      startedAt,
    });
    const files = {
      "wandb-metadata.json": redact(JSON.stringify(metadata, null, 2)),
      "config.yaml": redact(configYaml(opts.config)),
    };
    const offline = settings.mode === "offline";
    const init: SenderInit = {
      settings,
      id,
      project,
      displayName,
      config: opts.config,
      tags: env.tags,
      group: env.group,
      notes: env.notes,
      host: hostname(),
      program: programPath(),
      commit: git?.commit,
      resume: id === opts.id || id === env.id,
      history: opts.history,
      files,
      offlineDir: offline ? `${dir ?? "."}/wandb/offline-run-${id}` : undefined,
      // Local copies of the uploaded files, where the run has a folder.
      localDir: offline || !dir ? undefined : `${dir}/wandb/run-${id}/files`,
      ...opts.timing,
    };
    opts.log(
      offline
        ? `W&B offline: run ${id} writes its history to ${init.offlineDir}`
        : `W&B: run ${id} (project ${project || "uncategorized"}) at ${settings.baseUrl}`,
    );
    return new WandbRun(settings, opts, init);
  }

  /** Adds metrics at `step`; never waits on the network. */
  log(metrics: Record<string, number | string>, step: number, time = Date.now() / 1000): void {
    this.#send({ kind: "log", step, time, metrics });
  }

  /** The run was interrupted and will resume (SIGTERM, Ctrl-C): W&B shows it as preempted. */
  preempting(): void {
    this.#send({ kind: "preempting" });
  }

  /**
   * Sends what is queued and marks the run complete with `exitcode`, waiting at most
   * `deadlineMs`. When the server is unreachable it says what was not sent and returns.
   */
  async finish(exitcode = 0, deadlineMs = 10_000): Promise<FinishResult> {
    if (this.#finished) return { ok: this.completed, unsent: 0, dropped: 0 };
    this.#finished = true;
    this.#restoreConsole?.();
    let result: FinishResult = { ok: false, unsent: 0, dropped: 0 };
    if (this.#sender) {
      result = await this.#sender.finish(exitcode, deadlineMs);
    } else if (this.#worker) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const answered = new Promise<FinishResult>((r) => this.#result = r);
      this.#worker.postMessage({ kind: "finish", exitcode, deadlineMs });
      result = await Promise.race([
        answered,
        new Promise<FinishResult>((r) =>
          timer = setTimeout(
            () => r({ ok: false, unsent: -1, dropped: 0 }),
            deadlineMs + 2000,
          )
        ),
      ]);
      clearTimeout(timer);
      this.#worker.terminate();
    }
    this.completed = result.ok;
    return result;
  }

  #send(msg: SenderMessage): void {
    if (this.#finished) return;
    if (this.#sender) void this.#sender.handle(msg);
    else this.#worker!.postMessage(msg);
  }
}

/**
 * Copies every console line into `sink` (redacted, as `output.log` lines) while the run lives;
 * returns the function that stops it.
 */
function captureConsole(sink: (lines: string[]) => void): () => void {
  const methods = ["log", "info", "debug", "warn", "error"] as const;
  const originals = methods.map((m) => console[m]);
  methods.forEach((m, i) => {
    const original = originals[i];
    console[m] = (...args: unknown[]) => {
      original(...args);
      const text = args.map((a) =>
        typeof a === "string" ? a : a instanceof Error ? a.stack ?? a.message : Deno.inspect(a)
      ).join(" ");
      const stderr = m === "warn" || m === "error";
      const now = new Date();
      sink(redact(text).split("\n").map((l) => outputLogLine(l, stderr, now)));
    };
  });
  return () => methods.forEach((m, i) => console[m] = originals[i]);
}

/** An 8-character run id of [a-z0-9], as the W&B SDKs draw them. */
export function newRunId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

/** The offline run folders (`offline-run-ID` with a config.json) under `dir`, 5 levels down. */
export function offlineRunDirs(dir: string, depth = 5): string[] {
  const root = dir.replace(/\/+$/, "");
  if (/offline-run-[A-Za-z0-9_-]+$/.test(root) && existsSync(`${root}/config.json`)) return [root];
  if (depth === 0) return [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(root)];
  } catch {
    return [];
  }
  return entries.filter((e) => e.isDirectory && e.name !== "node_modules")
    .flatMap((e) => offlineRunDirs(`${root}/${e.name}`, depth - 1)).sort();
}

/**
 * Uploads an offline run (`WANDB_MODE=offline`) to the server of `settings`: the same run id,
 * project, name, config, tags, group and notes, its files (metadata, config.yaml, output.log),
 * then its history rows as written (those the server lacks, when it has part of the run) and its
 * exit code. Returns the rows not sent (0 when all arrived); a run that arrived gets a `synced`
 * marker and is skipped next time.
 */
export async function syncOfflineRun(
  runDir: string,
  settings: WandbSettings,
  log: (line: string) => void,
): Promise<number> {
  if (existsSync(`${runDir}/synced`)) {
    log(`${runDir}: already synced`);
    return 0;
  }
  const meta = JSON.parse(Deno.readTextFileSync(`${runDir}/config.json`));
  const id = runDir.match(/offline-run-([A-Za-z0-9_-]+)$/)![1];
  const rows = readJsonLines(`${runDir}/wandb-history.jsonl`);
  const files: Record<string, string> = {};
  for (const name of ["wandb-metadata.json", "config.yaml"]) {
    try {
      files[name] = Deno.readTextFileSync(`${runDir}/files/${name}`);
    } catch {
      // an older offline run
    }
  }
  let exitcode = 0;
  try {
    exitcode = Number(Deno.readTextFileSync(`${runDir}/exitcode`).trim()) || 0;
  } catch {
    // never finished (killed): sent as it ended
  }
  const sender = new WandbSender({
    settings,
    id,
    project: meta.project ?? "",
    displayName: meta.name,
    config: meta.config,
    tags: meta.tags,
    group: meta.group,
    notes: meta.notes,
    host: meta.host,
    program: meta.program,
    commit: meta.commit,
    resume: true,
    historyRows: rows,
    files,
    statsMs: 0,
    flushMs: 0,
  }, log);
  try {
    const output = Deno.readTextFileSync(`${runDir}/output.log`).split("\n").filter((l) => l);
    if (output.length) sender.handle({ kind: "output", lines: output });
  } catch {
    // no output
  }
  const r = await sender.finish(exitcode);
  if (r.ok && r.unsent === 0) {
    Deno.writeTextFileSync(`${runDir}/synced`, new Date().toISOString() + "\n");
    log(`${runDir}: ${rows.length} rows sent to run ${id} (project ${sender.project})`);
  }
  return r.ok ? r.unsent : Math.max(r.unsent, 1);
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
