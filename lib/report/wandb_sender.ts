/**
 * The W&B protocol, as the official client (wandb 0.30) speaks it; one run, driven by messages
 * (wandb.ts sends them from the training loop, through a Worker so that its timers run even while
 * the loop's thread is busy compiling or evaluating).
 *
 * - Start: `RunResumeStatus` when the run may exist (its `historyLineCount`, `historyTail`,
 *   `summaryMetrics`, `logLineCount`, `eventsLineCount`), then `UpsertBucket` (id, project,
 *   entity, display name, config as `{key: {value}}`, tags, group, notes, host, program, commit),
 *   then `CreateRunFiles` and a PUT to each upload URL for `wandb-metadata.json` and
 *   `config.yaml`, reported in the next file_stream post as `uploaded`.
 * - `POST /files/ENTITY/PROJECT/ID/file_stream`: `{files: {NAME: {offset, content: [lines]}}}`
 *   for `wandb-history.jsonl` (rows with `_step`, `_runtime`, `_timestamp`), `wandb-summary.json`
 *   (offset 0, one line, with `_wandb.runtime`), `output.log` and `wandb-events.jsonl` (system
 *   metrics); an empty `{}` as heartbeat when nothing was posted for `heartbeatMs` (W&B marks a
 *   silent run crashed); `{preempting: true}` when the run is interrupted and can resume; last,
 *   `{complete: true, exitcode}` after uploading `output.log` and `wandb-summary.json`.
 * - Resuming (after an interruption, a crash or a kill -9): the server's history decides. Rows
 *   of `metrics.jsonl` after the server's last step are sent again at the server's line count;
 *   rows the server already has are not sent twice; `_runtime`, the summary, `output.log` and
 *   the system metrics continue where the server's stop.
 *
 * An outage never stops training: requests time out, failures warn once and back off, rows are
 * kept (bounded) and sent when the server answers; `finish` waits at most its deadline.
 * Offline (`WANDB_MODE=offline`) the same rows and files go to a folder instead, which
 * `deno task wandb-sync` sends later as the same run.
 */
import {
  maxRuntime,
  NO_STATE,
  numberOr,
  type ServerState,
  WandbApi,
  type WandbSettings,
  type Within,
} from "./wandb_api.ts";
import { parseWandbJson, wandbJson } from "./wandb_format.ts";
import { gpuSample, SystemSampler } from "./wandb_system.ts";

export type { WandbSettings };

/** Everything the sender needs to start; structured-cloneable (it crosses to a Worker). */
export interface SenderInit {
  settings: WandbSettings;
  id: string;
  /** Empty: W&B's `uncategorized`. */
  project: string;
  displayName: string;
  config: Record<string, unknown>;
  tags?: string[];
  group?: string;
  notes?: string;
  host?: string;
  program?: string;
  commit?: string;
  /** The run may exist already (an id kept from an earlier session, or WANDB_RUN_ID). */
  resume: boolean;
  /** Records of metrics.jsonl so far (`{step, time, ...}`): rows the server lacks are resent. */
  history?: Record<string, unknown>[];
  /** Already W&B rows (`_step`, `_runtime`, `_timestamp`): an offline run being synced. */
  historyRows?: Record<string, unknown>[];
  /** Files uploaded at the start, by name (wandb-metadata.json, config.yaml). */
  files?: Record<string, string>;
  /** Offline: the folder the run is written to instead of the server. */
  offlineDir?: string;
  /** Online: where copies of the uploaded files go (`{WANDB_DIR}/wandb/run-ID/files`). */
  localDir?: string;
  tickMs?: number;
  flushMs?: number;
  heartbeatMs?: number;
  /** System metrics every this often; 0: none. */
  statsMs?: number;
  /** The `nvidia-smi` for per-GPU figures (default: the one on PATH, if any). */
  nvidiaSmi?: string;
  requestTimeoutMs?: number;
  maxBufferedRows?: number;
}

export type SenderMessage =
  | { kind: "log"; step: number; time: number; metrics: Record<string, number | string> }
  | { kind: "output"; lines: string[] }
  | { kind: "preempting" }
  | { kind: "finish"; exitcode: number; deadlineMs: number };

export interface FinishResult {
  ok: boolean;
  unsent: number;
  dropped: number;
}

type Row = Record<string, unknown>;

export class WandbSender {
  entity: string | undefined;
  project: string;
  /** The server acknowledged the end of the run. */
  completed = false;
  readonly #s: WandbSettings;
  readonly #api: WandbApi;
  readonly #init: SenderInit;
  readonly #say: (line: string) => void;
  #created = false;
  #bucketId: string | null = null;
  /** Live events that arrived before the server's state was known. */
  #early: Record<string, unknown>[] = [];
  /** Rows with a step at or below this are on the server already. */
  #skipThrough = -Infinity;
  #skipped = 0;
  #open: Row | null = null;
  readonly pending: string[] = [];
  #historyOffset = 0;
  #output: string[] = [];
  #outputOffset = 0;
  /** Every output line of this session, for the uploaded output.log. */
  #outputAll: string[] = [];
  #events: string[] = [];
  #eventsOffset = 0;
  #summary: Row = {};
  #summaryDirty = false;
  #uploads: [string, string][] = [];
  #uploaded: string[] = [];
  #preempting = false;
  /** Whether nvidia-smi answered (null: not asked yet). */
  #hasGpu: boolean | null = null;
  #runtimeBase = 0;
  readonly #sessionStart = Date.now() / 1000;
  #lastPost = Date.now();
  #lastFlush = 0;
  #lastStats = -Infinity;
  #failures = 0;
  #retryAt = 0;
  #warned = false;
  #dropped = 0;
  #busy: Promise<void> | null = null;
  /** Cancels the requests of a background round (finish does not wait on a slow one). */
  #roundAbort: AbortController | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #finished = false;
  readonly #sampler = new SystemSampler();
  readonly #tickMs: number;
  readonly #flushMs: number;
  readonly #heartbeatMs: number;
  readonly #statsMs: number;
  readonly #timeoutMs: number;
  readonly #maxRows: number;

  constructor(init: SenderInit, say: (line: string) => void) {
    this.#init = init;
    this.#s = init.settings;
    this.#say = say;
    this.entity = init.settings.entity;
    this.project = init.project || "uncategorized";
    this.#tickMs = init.tickMs ?? 1000;
    this.#flushMs = init.flushMs ?? 10_000;
    this.#heartbeatMs = init.heartbeatMs ?? 25_000;
    this.#statsMs = init.statsMs ?? 30_000;
    this.#timeoutMs = init.requestTimeoutMs ?? 10_000;
    this.#maxRows = init.maxBufferedRows ?? 10_000;
    this.#api = new WandbApi(init.settings, this.#timeoutMs);
    this.#uploads = Object.entries(init.files ?? {});
    if (init.offlineDir) this.#startOffline(init.offlineDir);
    this.#timer = setInterval(() => this.#tick(), this.#tickMs);
  }

  handle(msg: SenderMessage): Promise<FinishResult> | void {
    if (this.#finished) return;
    switch (msg.kind) {
      case "log":
        return this.#log({ ...msg.metrics, step: msg.step, time: msg.time });
      case "output":
        this.#output.push(...msg.lines);
        this.#outputAll.push(...msg.lines.map((l) => l.replace(/^(ERROR )?\S+ /, "")));
        if (this.#init.offlineDir) this.#writeOffline();
        return;
      case "preempting":
        this.#preempting = true;
        this.#lastFlush = 0;
        return;
      case "finish":
        return this.finish(msg.exitcode, msg.deadlineMs);
    }
  }

  /** A metrics.jsonl-style record `{step, time, ...metrics}` of the live run. */
  #log(event: Record<string, unknown>): void {
    if (!this.#created) {
      this.#early.push(event);
      if (this.#early.length > this.#maxRows) {
        this.#early.shift();
        this.#dropped++;
      }
      return;
    }
    const step = event.step as number;
    if (step <= this.#skipThrough) {
      this.#skipped++;
      return;
    }
    const time = event.time as number;
    const row: Row = { ...event, _step: step, _timestamp: time, _runtime: this.#runtimeAt(time) };
    delete row.step;
    delete row.time;
    this.#add(row);
  }

  /** As the official client: metrics of one step make one row, committed at the next step. */
  #add(row: Row): void {
    Object.assign(this.#summary, row);
    this.#summaryDirty = true;
    if (this.#open && this.#open._step === row._step) {
      Object.assign(this.#open, row);
      return;
    }
    this.#commit();
    this.#open = row;
  }

  #commit(): void {
    if (!this.#open) return;
    this.pending.push(wandbJson(this.#open));
    this.#open = null;
    if (this.pending.length > this.#maxRows) {
      this.pending.shift();
      this.#historyOffset++;
      this.#dropped++;
    }
    if (this.#init.offlineDir) this.#writeOffline();
  }

  #runtimeAt(time: number): number {
    return this.#runtimeBase + Math.max(0, time - this.#sessionStart);
  }

  #tick(): void {
    if (this.#busy || this.#finished) return;
    this.#roundAbort = new AbortController();
    this.#busy = this.#round(false).finally(() => {
      this.#busy = null;
      this.#roundAbort = null;
    });
  }

  /** One round: create the run if needed, upload, post what is due. Never throws. */
  async #round(final: boolean, deadline?: number): Promise<void> {
    const now = Date.now();
    if (!final && now < this.#retryAt) return;
    if (this.#statsMs > 0 && now - this.#lastStats >= this.#statsMs && !final) {
      this.#lastStats = now;
      await this.#sampleStats();
    }
    if (this.#init.offlineDir) return;
    try {
      if (!this.#created) await this.#create(deadline);
      if (this.#preempting) {
        // As the official client: at once, on its own.
        await this.#stream({ preempting: true }, deadline);
        this.#preempting = false;
      }
      await this.#uploadPending(deadline);
      const due = final || now - this.#lastFlush >= this.#flushMs;
      const body = due ? this.#body() : null;
      if (body) {
        await this.#stream(body.json, deadline);
        body.done();
        this.#lastFlush = Date.now();
      } else if (Date.now() - this.#lastPost >= this.#heartbeatMs) {
        await this.#stream({}, deadline);
      }
      this.#failures = 0;
    } catch (e) {
      this.#failures++;
      // Back off while the server is down: 2x per failure, at most a minute.
      this.#retryAt = Date.now() +
        Math.min(60_000, Math.max(this.#tickMs, this.#flushMs) * 2 ** Math.min(this.#failures, 6));
      if (!this.#warned) {
        this.#warned = true;
        this.#say(
          `W&B: ${this.#s.baseUrl} is unreachable (${describe(e)}); training goes on, ` +
            `rows are kept (up to ${this.#maxRows}) and sent when it answers`,
        );
      }
    }
  }

  /** The file_stream body of everything queued, and what to drop once it is acknowledged. */
  #body(): { json: Row; done: () => void } | null {
    const files: Record<string, { offset: number; content: string[] }> = {};
    const rows = this.pending.slice(), out = this.#output.slice(), ev = this.#events.slice();
    const uploaded = this.#uploaded.slice();
    if (rows.length) files["wandb-history.jsonl"] = { offset: this.#historyOffset, content: rows };
    if (out.length) files["output.log"] = { offset: this.#outputOffset, content: out };
    if (ev.length) files["wandb-events.jsonl"] = { offset: this.#eventsOffset, content: ev };
    const summary = this.#summaryDirty;
    if (summary) files["wandb-summary.json"] = { offset: 0, content: [this.#summaryLine()] };
    if (!Object.keys(files).length && !uploaded.length) return null;
    const json: Row = {};
    if (Object.keys(files).length) json.files = files;
    if (uploaded.length) json.uploaded = uploaded;
    return {
      json,
      done: () => {
        this.pending.splice(0, rows.length);
        this.#historyOffset += rows.length;
        this.#output.splice(0, out.length);
        this.#outputOffset += out.length;
        this.#events.splice(0, ev.length);
        this.#eventsOffset += ev.length;
        this.#uploaded.splice(0, uploaded.length);
        if (summary) this.#summaryDirty = false;
      },
    };
  }

  #summaryLine(): string {
    const runtime = this.#runtimeAt(Date.now() / 1000);
    return wandbJson({ ...this.#summary, _wandb: { runtime: Math.floor(runtime) } });
  }

  async #sampleStats(): Promise<void> {
    let gpus: Record<string, number> = {};
    if (this.#hasGpu !== false) {
      gpus = await gpuSample(this.#init.nvidiaSmi);
      this.#hasGpu = Object.keys(gpus).length > 0;
    }
    const now = Date.now() / 1000;
    const row = {
      ...this.#sampler.sample(),
      ...gpus,
      _wandb: true,
      _timestamp: now,
      _runtime: this.#runtimeAt(now),
    };
    this.#events.push(wandbJson(row));
    if (this.#events.length > this.#maxRows) {
      this.#events.shift();
      this.#eventsOffset++;
    }
    if (this.#init.offlineDir) this.#writeOffline();
  }

  /**
   * Sends what is queued and marks the run complete (`exitcode`), waiting at most `deadlineMs`.
   * When the server is unreachable it says what was not sent and returns.
   */
  async finish(exitcode = 0, deadlineMs = 10_000): Promise<FinishResult> {
    if (this.#finished) return { ok: this.completed, unsent: this.pending.length, dropped: 0 };
    clearInterval(this.#timer);
    this.#finished = true;
    const deadline = Date.now() + deadlineMs;
    // A background round still waiting on the server: cancelled (what it sent is sent again at
    // the same offsets, which the server replaces).
    this.#roundAbort?.abort();
    await this.#busy;
    if (!this.#created && this.#init.offlineDir) this.#created = true;
    this.#commit();
    if (this.#init.offlineDir) {
      this.#writeOffline(exitcode);
      return { ok: true, unsent: 0, dropped: this.#dropped };
    }
    this.#uploads.push(["output.log", this.#outputAll.join("\n") + "\n"]);
    let ok = false;
    for (let i = 0; i < 3 && Date.now() < deadline && !ok; i++) {
      if (i > 0) await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
      try {
        if (!this.#created) await this.#create(deadline);
        // Files the early events became.
        this.#commit();
        if (this.#preempting) {
          await this.#stream({ preempting: true }, deadline);
          this.#preempting = false;
        }
        this.#uploads.push(["wandb-summary.json", this.#summaryLine()]);
        await this.#uploadPending(deadline);
        this.#summaryDirty = true;
        const body = this.#body()!;
        await this.#stream({ ...body.json, complete: true, exitcode }, deadline);
        body.done();
        ok = true;
      } catch (e) {
        this.#uploads = this.#uploads.filter(([n]) => n !== "wandb-summary.json");
        if (!this.#warned) {
          this.#warned = true;
          this.#say(`W&B: ${this.#s.baseUrl} is unreachable (${describe(e)})`);
        }
      }
    }
    this.completed = ok;
    const unsent = this.pending.length + this.#early.length;
    if (!ok) {
      this.#say(
        `W&B: could not reach ${this.#s.baseUrl} to finish run ${this.#init.id}; ` +
          `${unsent} rows were not sent (metrics.jsonl has them all)`,
      );
    } else if (this.#dropped > 0) {
      this.#say(`W&B: ${this.#dropped} rows were dropped while the server was unreachable`);
    }
    if (this.#skipped > 0) {
      this.#say(
        `W&B: ${this.#skipped} rows at steps up to ${this.#skipThrough} were not sent again ` +
          "(the server has those steps)",
      );
    }
    return { ok, unsent, dropped: this.#dropped };
  }

  // ---- start and resume ----

  async #create(deadline?: number): Promise<void> {
    const init = this.#init;
    let state: ServerState | null = null;
    if (init.resume) state = await this.#resumeStatus(deadline);
    const config = Object.fromEntries(
      Object.entries(init.config).map(([k, v]) => [k, { value: v }]),
    );
    const r = await this.#api.upsertBucket({
      id: this.#bucketId,
      name: init.id,
      project: init.project || null,
      entity: this.entity ?? null,
      groupName: init.group ?? null,
      displayName: init.displayName,
      notes: init.notes ?? null,
      commit: init.commit ?? null,
      config: wandbJson(config),
      host: init.host ?? null,
      program: init.program ?? null,
      tags: init.tags ?? null,
    }, this.#within(deadline));
    this.entity = r.entity ?? this.entity;
    this.project = r.project ?? this.project;
    if (!state && !r.inserted) state = await this.#resumeStatus(deadline);
    this.#created = true;
    this.#start(state);
  }

  /** The run's state on the server (null when it has no such run). */
  async #resumeStatus(deadline?: number): Promise<ServerState | null> {
    const r = await this.#api.resumeStatus(
      this.#init.project || null,
      this.entity ?? null,
      this.#init.id,
      this.#within(deadline),
    );
    if (!r) return null;
    this.#bucketId = r.bucketId;
    if (r.entity) this.entity = r.entity;
    return r.state;
  }

  #run() {
    return { entity: this.entity, project: this.project, id: this.#init.id };
  }

  #within(deadline?: number): Within {
    return { deadline, cancel: this.#roundAbort?.signal };
  }

  /** One file_stream post; a successful one is also a heartbeat. */
  async #stream(body: Row, deadline?: number): Promise<void> {
    await this.#api.fileStream(this.#run(), body, this.#within(deadline));
    this.#lastPost = Date.now();
  }

  /** Continues after what the server holds: offsets, runtime, summary, rows it lacks. */
  #start(state: ServerState | null): void {
    const s = state ?? NO_STATE;
    this.#historyOffset = s.historyLines;
    this.#outputOffset = s.logLines;
    this.#eventsOffset = s.eventsLines;
    this.#skipThrough = s.lastStep;
    const summary = { ...s.summary };
    delete summary._wandb;
    this.#summary = { ...summary, ...this.#summary };
    this.#summaryDirty = true;
    this.#runtimeBase = s.lastRuntime ?? 0;
    // Rows the server lacks, from the records kept locally.
    const rows = this.#init.historyRows ?? this.#rowsOf(this.#init.history ?? [], s);
    for (const row of rows) {
      if ((row._step as number) <= s.lastStep) continue;
      this.#add({ ...row });
      this.#runtimeBase = Math.max(this.#runtimeBase, numberOr(row._runtime, 0));
    }
    this.#commit();
    const resent = this.pending.length;
    if (state && resent > 0) {
      this.#say(
        `W&B: resuming run ${this.#init.id}: the server has ${s.historyLines} history rows; ` +
          `sending ${resent} more from metrics.jsonl`,
      );
    }
    // Runtime continues from what was logged before, not from this session's start.
    this.#runtimeBase = Math.max(this.#runtimeBase, ...rows.map((r) => numberOr(r._runtime, 0)));
    const early = this.#early;
    this.#early = [];
    for (const e of early) this.#log(e);
  }

  /** W&B rows of metrics.jsonl records: one per step, `_runtime` continuing the server's. */
  #rowsOf(events: Record<string, unknown>[], s: ServerState): Row[] {
    const rows: Row[] = [];
    const t0 = typeof events[0]?.time === "number" ? events[0].time as number : 0;
    const anchor = Number.isFinite(s.lastTimestamp) && s.lastRuntime !== undefined
      ? { runtime: s.lastRuntime, time: s.lastTimestamp! }
      : { runtime: 0, time: t0 };
    for (const e of events) {
      if (typeof e.step !== "number") continue;
      const time = typeof e.time === "number" ? e.time : anchor.time;
      const row: Row = {
        ...e,
        _step: e.step,
        _timestamp: time,
        _runtime: Math.max(0, anchor.runtime + time - anchor.time),
      };
      delete row.step;
      delete row.time;
      const last = rows.at(-1);
      if (last && last._step === row._step) Object.assign(last, row);
      else rows.push(row);
    }
    return rows;
  }

  // ---- files ----

  async #uploadPending(deadline?: number): Promise<void> {
    if (!this.#uploads.length) return;
    const files = this.#uploads.slice();
    if (this.#init.localDir) {
      for (const [name, text] of files) writeFileIn(this.#init.localDir, name, text);
    }
    await this.#api.upload(this.#run(), files, this.#within(deadline), (name) => {
      this.#uploads.splice(this.#uploads.findIndex(([n]) => n === name), 1);
      this.#uploaded.push(name);
    });
  }

  // ---- offline ----

  #startOffline(dir: string): void {
    Deno.mkdirSync(`${dir}/files`, { recursive: true });
    const init = this.#init;
    Deno.writeTextFileSync(
      `${dir}/config.json`,
      JSON.stringify({
        project: init.project || null,
        name: init.displayName,
        config: init.config,
        tags: init.tags,
        group: init.group,
        notes: init.notes,
        host: init.host,
        program: init.program,
        commit: init.commit,
      }) + "\n",
    );
    for (const [name, text] of this.#uploads) writeFileIn(`${dir}/files`, name, text);
    this.#uploads = [];
    // What an earlier session of this run wrote stands in for the server's state.
    const rows = readJsonLines(`${dir}/wandb-history.jsonl`);
    const last = rows.at(-1);
    let summary: Row = {};
    try {
      summary = parseWandbJson(Deno.readTextFileSync(`${dir}/wandb-summary.json`));
    } catch {
      // a first session, or one that was killed
    }
    this.#created = true;
    this.#start(
      rows.length
        ? {
          historyLines: rows.length,
          lastStep: last!._step as number,
          lastRuntime: maxRuntime(last, summary),
          lastTimestamp: numberOr(last!._timestamp, NaN),
          summary: { ...summary, ...last },
          logLines: 0,
          eventsLines: 0,
        }
        : null,
    );
    this.#writeOffline();
  }

  /** Appends what is queued to the offline folder; at the end, the summary and exit code. */
  #writeOffline(exitcode?: number): void {
    const dir = this.#init.offlineDir!;
    const append = (name: string, lines: string[]) => {
      if (lines.length) {
        Deno.writeTextFileSync(`${dir}/${name}`, lines.map((l) => l + "\n").join(""), {
          append: true,
        });
      }
    };
    append("wandb-history.jsonl", this.pending.splice(0));
    // As file_stream lines (with their times): wandb-sync sends them as they are.
    append("output.log", this.#output.splice(0));
    append("wandb-events.jsonl", this.#events.splice(0));
    if (exitcode !== undefined) {
      Deno.writeTextFileSync(`${dir}/wandb-summary.json`, this.#summaryLine() + "\n");
      Deno.writeTextFileSync(`${dir}/exitcode`, `${exitcode}\n`);
    }
  }
}

export function readJsonLines(path: string): Row[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return [];
  }
  const rows: Row[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      rows.push(parseWandbJson(line));
    } catch {
      // a line cut short by a kill
    }
  }
  return rows;
}

function writeFileIn(dir: string, name: string, text: string): void {
  try {
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(`${dir}/${name}`, text);
  } catch {
    // a local copy only
  }
}

function describe(e: unknown): string {
  const err = e as Error;
  if (err?.name === "TimeoutError") return "timed out";
  return (err?.message ?? String(e)).split("\n")[0].slice(0, 200);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
