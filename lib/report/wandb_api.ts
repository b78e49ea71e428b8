/**
 * The W&B HTTP API calls a run makes, as the official client (wandb 0.30, wandb-core) makes them:
 * GraphQL `UpsertBucket`, `RunResumeStatus`, `CreateRunFiles` at `{base}/graphql`, the PUT of a
 * file to its upload URL, and `POST {base}/files/ENTITY/PROJECT/ID/file_stream`. HTTP Basic auth
 * `api:KEY`; every request has a timeout (and the caller's deadline and cancel signal).
 */
import { parseWandbJson, wandbJson } from "./wandb_format.ts";

export interface WandbSettings {
  mode: "online" | "offline";
  baseUrl: string;
  /** Never printed or written anywhere; only sent as HTTP Basic auth `api:KEY`. */
  apiKey: string;
  entity?: string;
}

type Row = Record<string, unknown>;

/** What the server (or an offline folder) already holds of a run. */
export interface ServerState {
  historyLines: number;
  lastStep: number;
  lastRuntime?: number;
  lastTimestamp?: number;
  summary: Row;
  logLines: number;
  eventsLines: number;
}

export const NO_STATE: ServerState = {
  historyLines: 0,
  lastStep: -Infinity,
  summary: {},
  logLines: 0,
  eventsLines: 0,
};

/** When a request must end: a deadline (ms since the epoch) and a cancel signal. */
export interface Within {
  deadline?: number;
  cancel?: AbortSignal;
}

export class WandbApi {
  constructor(readonly settings: WandbSettings, readonly timeoutMs: number) {}

  /** `UpsertBucket`: creates the run or updates it; the names the server settled on. */
  async upsertBucket(
    vars: Row,
    w: Within,
  ): Promise<{ entity?: string; project?: string; inserted: boolean }> {
    const res = await this.graphql(UPSERT_BUCKET, vars, w);
    const bucket = res?.upsertBucket?.bucket;
    if (!bucket) throw new Error("UpsertBucket returned no run");
    return {
      entity: bucket.project?.entity?.name,
      project: bucket.project?.name,
      inserted: res.upsertBucket.inserted !== false,
    };
  }

  /** `RunResumeStatus`: the run's state on the server, or null when it has no such run. */
  async resumeStatus(
    project: string | null,
    entity: string | null,
    id: string,
    w: Within,
  ): Promise<{ bucketId: string | null; entity?: string; state: ServerState } | null> {
    const data = await this.graphql(RUN_RESUME_STATUS, { project, entity, name: id }, w);
    const b = data?.model?.bucket;
    if (!b) return null;
    const tail = parseList(b.historyTail).at(-1) as Row | undefined;
    const summary = (b.summaryMetrics ? parseWandbJson(b.summaryMetrics) : {}) as Row;
    const lines = numberOr(b.historyLineCount, 0);
    return {
      bucketId: b.id ?? null,
      entity: data.model.entity?.name,
      state: {
        historyLines: lines,
        lastStep: typeof tail?._step === "number"
          ? tail._step
          : typeof summary._step === "number" && lines > 0
          ? summary._step
          : -Infinity,
        lastRuntime: maxRuntime(tail, summary),
        lastTimestamp: numberOr(tail?._timestamp ?? summary._timestamp, NaN),
        summary,
        logLines: numberOr(b.logLineCount, 0),
        eventsLines: numberOr(b.eventsLineCount, 0),
      },
    };
  }

  /** `CreateRunFiles`, then a PUT of each file to its upload URL; `done(name)` after each. */
  async upload(
    run: { entity?: string; project: string; id: string },
    files: [string, string][],
    w: Within,
    done: (name: string) => void,
  ): Promise<void> {
    const data = await this.graphql(CREATE_RUN_FILES, {
      entity: run.entity,
      project: run.project,
      run: run.id,
      files: files.map(([n]) => n),
    }, w);
    const urls = new Map<string, string>(
      (data?.createRunFiles?.files ?? []).map((f: { name: string; uploadUrl: string }) => [
        f.name,
        f.uploadUrl,
      ]),
    );
    const headers: Record<string, string> = {};
    for (const h of data?.createRunFiles?.uploadHeaders ?? []) {
      const [k, ...v] = String(h).split(":");
      headers[k.trim()] = v.join(":").trim();
    }
    for (const [name, text] of files) {
      const url = urls.get(name);
      if (!url) throw new Error(`CreateRunFiles gave no upload URL for ${name}`);
      const res = await fetch(url, { method: "PUT", headers, body: text, signal: this.signal(w) });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`HTTP ${res.status} uploading ${name}`);
      done(name);
    }
  }

  /** One file_stream post (`{}` is a heartbeat). */
  async fileStream(run: { entity?: string; project: string; id: string }, body: Row, w: Within) {
    const seg = (s: string | undefined) => encodeURIComponent(s ?? "");
    const url = `${this.settings.baseUrl}/files/${seg(run.entity)}/${seg(run.project)}/${
      seg(run.id)
    }/file_stream`;
    await (await this.post(url, body, w)).body?.cancel();
  }

  async graphql(query: string, variables: Row, w: Within): Promise<any> {
    const res = await this.post(`${this.settings.baseUrl}/graphql`, { query, variables }, w);
    const body = await res.json();
    if (body.errors?.length) throw new Error(`GraphQL: ${body.errors[0].message}`);
    return body.data;
  }

  signal(w: Within): AbortSignal {
    const timeout = AbortSignal.timeout(
      w.deadline === undefined
        ? this.timeoutMs
        : Math.max(1, Math.min(this.timeoutMs, w.deadline - Date.now())),
    );
    return w.cancel ? AbortSignal.any([timeout, w.cancel]) : timeout;
  }

  async post(url: string, body: unknown, w: Within): Promise<Response> {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Basic ${btoa(`api:${this.settings.apiKey}`)}`,
        "user-agent": "deit3-deno",
      },
      body: wandbJson(body),
      signal: this.signal(w),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status} from ${new URL(url).pathname}`);
    }
    return res;
  }
}

// The official client's queries (wandb-core 0.30), with the fields this client reads.
const UPSERT_BUCKET = `mutation UpsertBucket($id: String, $name: String, $project: String,
  $entity: String, $groupName: String, $description: String, $displayName: String,
  $notes: String, $commit: String, $config: JSONString, $host: String, $debug: Boolean,
  $program: String, $repo: String, $jobType: String, $state: String, $sweep: String,
  $tags: [String!], $summaryMetrics: JSONString) {
  upsertBucket(input: {id: $id, name: $name, groupName: $groupName, modelName: $project,
    entityName: $entity, description: $description, displayName: $displayName, notes: $notes,
    config: $config, commit: $commit, host: $host, debug: $debug, jobProgram: $program,
    jobRepo: $repo, jobType: $jobType, state: $state, sweep: $sweep, tags: $tags,
    summaryMetrics: $summaryMetrics}) {
    bucket { id name displayName description config sweepName
      project { id name entity { id name } } historyLineCount }
    inserted
  }
}`;

const RUN_RESUME_STATUS = `query RunResumeStatus($project: String, $entity: String,
  $name: String!) {
  model(name: $project, entityName: $entity) {
    id name entity { id name }
    bucket(name: $name, missingOk: true) { id name summaryMetrics displayName logLineCount
      historyLineCount eventsLineCount historyTail eventsTail config tags notes
      wandbConfig(keys: ["t"]) }
  }
}`;

const CREATE_RUN_FILES = `mutation CreateRunFiles($entity: String!, $project: String!,
  $run: String!, $files: [String!]!) {
  createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run,
    files: $files}) {
    runID uploadHeaders files { name uploadUrl }
  }
}`;

function parseList(text: unknown): unknown[] {
  if (typeof text !== "string" || !text) return [];
  try {
    const list = parseWandbJson(text);
    return Array.isArray(list)
      ? list.map((x) => typeof x === "string" ? parseWandbJson(x) : x)
      : [];
  } catch {
    return [];
  }
}

export function maxRuntime(...rows: (Row | undefined)[]): number | undefined {
  const values = rows.flatMap((r) => [
    r?._runtime,
    (r?._wandb as Row | undefined)?.runtime,
  ]).filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  return values.length ? Math.max(...values) : undefined;
}

export function numberOr(v: unknown, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}
