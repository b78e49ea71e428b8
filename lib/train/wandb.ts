/**
 * Weights & Biases logging, as the original does it: `wandb.init(name, project, config)` at the
 * start, the train metrics each log interval and the val metrics each eval, each with its step.
 *
 * This is a client of the W&B HTTP protocol that the Python SDK speaks:
 * - `POST {base}/graphql` `UpsertBucket` creates (or, resuming, finds) the run: its id, display
 *   name, project, entity and config (`{key: {value, desc}}`, the Python SDK's form);
 *   `RunResumeStatus` gives a resumed run's `historyLineCount`, where its history continues;
 * - `POST {base}/files/{entity}/{project}/{id}/file_stream` sends history lines
 *   (`wandb-history.jsonl` at their line offset, `_step`, `_runtime`, `_timestamp` in each),
 *   the summary, and at the end `{complete: true, exitcode}`.
 *
 * npm's `@wandb/sdk` 0.5.1 (the only release) was tried first against the fake server of the
 * tests: it drops history silently when the server answers 5xx, never marks such a run complete,
 * installs SIGINT/SIGTERM handlers that call `process.exit()` (which would cut our state save
 * short), does not read `WANDB_ENTITY`, sends the config in a form the W&B UI does not show as
 * values, and restarts history at line 0 on resume. Hence this client.
 *
 * An outage never stops or slows training: `log` only queues, sending happens in the background
 * with a timeout per request, failures warn once and keep a bounded buffer, and `finish` waits at
 * most a few seconds. The API key is only ever put in the Authorization header.
 */

export type WandbMode = "online" | "offline" | "disabled";

export interface WandbSettings {
  mode: "online" | "offline";
  baseUrl: string;
  /** Never printed or written anywhere; only sent as HTTP Basic auth `api:KEY`. */
  apiKey: string;
  entity?: string;
}

export interface WandbRunOptions {
  project: string | null;
  /** The display name (the original's `--name`). */
  name: string;
  config: Record<string, unknown>;
  /** A resumed run passes the id kept in its training state; a new run draws one. */
  id?: string;
  /** Where offline runs write their files (`{dir}/wandb/offline-run-{id}`). */
  dir?: string;
  log: (line: string) => void;
  /** How often queued rows are sent (ms). */
  flushIntervalMs?: number;
  /** Per-request timeout (ms). */
  requestTimeoutMs?: number;
  /** Rows kept while the server is unreachable; older ones are dropped beyond this. */
  maxBufferedRows?: number;
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

/** A W&B run: `log` queues rows, a background task sends them, `finish` marks it complete. */
export class WandbRun {
  readonly id: string;
  entity: string | undefined;
  project: string;
  /** Rows queued and not yet acknowledged by the server. */
  readonly pending: string[] = [];
  /** Line offset in the run's history of `pending[0]`. */
  #offset = 0;
  #summary: Record<string, unknown> = {};
  /** The row of the latest step, still open to more metrics of that step. */
  #open: Record<string, unknown> | null = null;
  #created = false;
  #warned = false;
  #dropped = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: Promise<void> | null = null;
  #failures = 0;
  #finished = false;
  /** The server acknowledged the end of the run. */
  completed = false;
  readonly #t0 = Date.now();
  readonly #flushMs: number;
  readonly #timeoutMs: number;
  readonly #maxRows: number;
  readonly #offlineDir: string | undefined;

  constructor(readonly settings: WandbSettings, readonly opts: WandbRunOptions) {
    this.id = opts.id ?? newRunId();
    this.entity = settings.entity;
    this.project = opts.project || "uncategorized";
    this.#flushMs = opts.flushIntervalMs ?? 10_000;
    this.#timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.#maxRows = opts.maxBufferedRows ?? 10_000;
    if (settings.mode === "offline") {
      this.#offlineDir = `${opts.dir ?? "."}/wandb/offline-run-${this.id}`;
      Deno.mkdirSync(this.#offlineDir, { recursive: true });
      Deno.writeTextFileSync(
        `${this.#offlineDir}/config.json`,
        JSON.stringify({ project: this.project, name: opts.name, config: opts.config }) + "\n",
      );
      opts.log(`W&B offline: run ${this.id} writes its history to ${this.#offlineDir}`);
    } else {
      opts.log(`W&B: run ${this.id} (project ${this.project}) at ${settings.baseUrl}`);
      this.#kick(0);
    }
  }

  /**
   * Adds metrics at `step`; never waits on the network. As in the Python SDK, metrics logged at
   * the same step make one history row (the train metrics and the eval at step 60, say), and a
   * row is committed, i.e. queued to be sent, when a later step arrives or the run finishes.
   */
  log(row: Record<string, number | string>, step: number): void {
    if (this.#finished) return;
    const now = Date.now();
    const times = { _step: step, _runtime: (now - this.#t0) / 1000, _timestamp: now / 1000 };
    Object.assign(this.#summary, row, times);
    if (this.#open && this.#open._step === step) {
      Object.assign(this.#open, row, times);
      return;
    }
    this.#commit();
    this.#open = { ...row, ...times };
  }

  /** Queues rows written earlier (an offline run's history), as they are. */
  replay(rows: Record<string, unknown>[]): void {
    this.#commit();
    for (const row of rows) {
      Object.assign(this.#summary, row);
      this.#open = row;
      this.#commit();
    }
  }

  /** Queues the open row (offline: appends it to the history file). */
  #commit(): void {
    if (!this.#open) return;
    const text = JSON.stringify(this.#open);
    this.#open = null;
    if (this.#offlineDir) {
      Deno.writeTextFileSync(`${this.#offlineDir}/wandb-history.jsonl`, text + "\n", {
        append: true,
      });
      return;
    }
    this.pending.push(text);
    if (this.pending.length > this.#maxRows) {
      this.pending.shift();
      this.#offset++;
      this.#dropped++;
    }
    this.#kick(this.#flushMs);
  }

  /**
   * Sends what is queued and marks the run complete, waiting at most `deadlineMs`. When the
   * server is unreachable it says what was not sent and returns.
   */
  async finish(exitcode = 0, deadlineMs = 10_000): Promise<void> {
    if (this.#finished) return;
    this.#commit();
    this.#finished = true;
    clearTimeout(this.#timer);
    if (this.#offlineDir) {
      Deno.writeTextFileSync(
        `${this.#offlineDir}/wandb-summary.json`,
        JSON.stringify(this.#summary),
      );
      return;
    }
    const deadline = Date.now() + deadlineMs;
    // A few tries, then give up: an outage must not hold the end of the run for long.
    const attempt = async () => {
      for (let i = 0; i < 3 && Date.now() < deadline; i++) {
        if (i > 0) await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
        await this.#inFlight;
        await this.#flush(deadline);
        if (this.#created && this.pending.length === 0) {
          await this.#post(this.#streamUrl(), { complete: true, exitcode }, deadline);
          this.completed = true;
          return true;
        }
      }
      return false;
    };
    let ok = false;
    try {
      ok = await attempt();
    } catch {
      ok = false;
    }
    if (!ok) {
      this.opts.log(
        `W&B: could not reach ${this.settings.baseUrl} to finish run ${this.id}; ` +
          `${this.pending.length} rows were not sent (metrics.jsonl has them all)`,
      );
    } else if (this.#dropped > 0) {
      this.opts.log(`W&B: ${this.#dropped} rows were dropped while the server was unreachable`);
    }
  }

  /** Schedules a send in `ms` unless one is scheduled or running. */
  #kick(ms: number): void {
    if (this.#timer !== undefined || this.#inFlight || this.#finished) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#inFlight = this.#flush().finally(() => {
        this.#inFlight = null;
        if (this.pending.length > 0 || !this.#created) {
          // Back off while the server is down: 2x per failure, at most a minute.
          this.#kick(Math.min(60_000, this.#flushMs * 2 ** Math.min(this.#failures, 6)));
        }
      });
    }, ms);
  }

  /** One round: create the run if not yet done, then send the queued rows. Never throws. */
  async #flush(deadline?: number): Promise<void> {
    try {
      if (!this.#created) await this.#create(deadline);
      if (this.pending.length === 0) return;
      const rows = this.pending.slice();
      await this.#post(this.#streamUrl(), {
        files: {
          "wandb-history.jsonl": { offset: this.#offset, content: rows },
          "wandb-summary.json": { offset: 0, content: [JSON.stringify(this.#summary)] },
        },
      }, deadline);
      this.pending.splice(0, rows.length);
      this.#offset += rows.length;
      this.#failures = 0;
    } catch (e) {
      this.#failures++;
      if (!this.#warned) {
        this.#warned = true;
        this.opts.log(
          `W&B: ${this.settings.baseUrl} is unreachable (${describe(e)}); training goes on, ` +
            `rows are kept (up to ${this.#maxRows}) and sent when it answers`,
        );
      }
    }
  }

  async #create(deadline?: number): Promise<void> {
    const config = Object.fromEntries(
      Object.entries(this.opts.config).map(([k, v]) => [k, { desc: null, value: v }]),
    );
    const res = await this.#graphql(UPSERT_BUCKET, {
      name: this.id,
      project: this.project,
      entity: this.entity,
      displayName: this.opts.name,
      config: JSON.stringify(config),
    }, deadline);
    const bucket = res?.upsertBucket?.bucket;
    if (!bucket) throw new Error("UpsertBucket returned no run");
    this.entity = bucket.project?.entity?.name ?? this.entity;
    this.project = bucket.project?.name ?? this.project;
    if (res.upsertBucket.inserted === false) {
      // A resumed run: its history continues after the lines the server has.
      const status = await this.#graphql(RUN_RESUME_STATUS, {
        project: this.project,
        entity: this.entity,
        name: this.id,
      }, deadline);
      const lines = status?.model?.bucket?.historyLineCount;
      if (typeof lines === "number") this.#offset = lines;
    }
    this.#created = true;
  }

  #streamUrl(): string {
    const seg = (s: string | undefined) => encodeURIComponent(s ?? "");
    return `${this.settings.baseUrl}/files/${seg(this.entity)}/${seg(this.project)}/${
      seg(this.id)
    }/file_stream`;
  }

  async #graphql(
    query: string,
    variables: Record<string, unknown>,
    deadline?: number,
  ): Promise<any> {
    const res = await this.#post(
      `${this.settings.baseUrl}/graphql`,
      { query, variables },
      deadline,
    );
    const body = await res.json();
    if (body.errors?.length) throw new Error(`GraphQL: ${body.errors[0].message}`);
    return body.data;
  }

  async #post(url: string, body: unknown, deadline?: number): Promise<Response> {
    const timeout = deadline === undefined
      ? this.#timeoutMs
      : Math.max(1, Math.min(this.#timeoutMs, deadline - Date.now()));
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Basic ${btoa(`api:${this.settings.apiKey}`)}`,
        "user-agent": "deit3-deno",
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeout),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status} from ${new URL(url).pathname}`);
    }
    return res;
  }
}

/** An 8-character run id of [a-z0-9], as the W&B SDKs draw them. */
export function newRunId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

const UPSERT_BUCKET = `mutation UpsertBucket($id: String, $name: String, $project: String,
  $entity: String, $displayName: String, $config: JSONString) {
  upsertBucket(input: {id: $id, name: $name, modelName: $project, entityName: $entity,
    displayName: $displayName, config: $config}) {
    bucket { id name displayName project { id name entity { id name } } }
    inserted
  }
}`;

const RUN_RESUME_STATUS = `query RunResumeStatus($project: String, $entity: String,
  $name: String!) {
  model(name: $project, entityName: $entity) {
    id name entity { id name }
    bucket(name: $name, missingOk: true) { id name historyLineCount }
  }
}`;

function describe(e: unknown): string {
  const err = e as Error;
  if (err?.name === "TimeoutError") return "timed out";
  return (err?.message ?? String(e)).split("\n")[0].slice(0, 200);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The offline run folders (`offline-run-ID` with a config.json) under `dir`, 5 levels down. */
export function offlineRunDirs(dir: string, depth = 5): string[] {
  const root = dir.replace(/\/+$/, "");
  if (/offline-run-[a-z0-9]+$/.test(root) && existsSync(`${root}/config.json`)) return [root];
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
 * project, name and config, then its history rows as written. Returns the rows not sent (0 when
 * all arrived); a run that arrived gets a `synced` marker and is skipped next time.
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
  const id = runDir.match(/offline-run-([a-z0-9]+)$/)![1];
  let rows: Record<string, unknown>[] = [];
  try {
    rows = Deno.readTextFileSync(`${runDir}/wandb-history.jsonl`).split("\n").filter((l) =>
      l.trim()
    )
      .map((l) => JSON.parse(l));
  } catch {
    // no rows yet
  }
  const run = new WandbRun(settings, {
    project: meta.project,
    name: meta.name,
    config: meta.config,
    id,
    log,
    flushIntervalMs: 0,
  });
  run.replay(rows);
  await run.finish(0);
  const unsent = run.pending.length;
  if (unsent === 0 && run.completed) {
    Deno.writeTextFileSync(`${runDir}/synced`, new Date().toISOString() + "\n");
    log(`${runDir}: ${rows.length} rows sent to run ${id} (project ${run.project})`);
  }
  return run.completed ? unsent : Math.max(unsent, 1);
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
