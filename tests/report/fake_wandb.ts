/**
 * A W&B server for tests, on 127.0.0.1: it answers the part of the protocol that a training run
 * uses as W&B does (as recorded against the official client, wandb 0.30) and records what it
 * receives.
 *
 * - `POST /graphql` with HTTP Basic auth `api:KEY`: `Viewer`; `UpsertBucket` (creates or updates
 *   a run: display name, config, tags, group, notes, host, program, commit; `inserted`);
 *   `RunResumeStatus` (null bucket for a new run, else `historyLineCount`, `historyTail` (a JSON
 *   list of JSON rows), `summaryMetrics`, `logLineCount`, `eventsLineCount`); `CreateRunFiles`
 *   (an upload URL per file on this server).
 * - `PUT /upload/RUN/NAME`: the file's bytes (no auth: the URL is the permission, as W&B's
 *   signed URLs).
 * - `POST /files/ENTITY/PROJECT/RUN/file_stream`: `{files: {NAME: {offset, content}}}` (lines
 *   at their offset replace what is there), `uploaded`, `preempting`, `complete` + `exitcode`;
 *   `{}` is a heartbeat. JSON with `NaN`/`Infinity` tokens is read as Python's json reads it.
 */
export interface FakeRun {
  entity: string;
  project: string;
  id: string;
  displayName?: string;
  config?: Record<string, unknown>;
  tags?: string[];
  group?: string;
  notes?: string;
  host?: string;
  program?: string;
  commit?: string;
  upserts: number;
  /** History lines by offset (a resent offset replaces the line). */
  history: Record<string, unknown>[];
  /** System metrics lines (wandb-events.jsonl) by offset. */
  events: Record<string, unknown>[];
  /** output.log lines by offset, as streamed. */
  output: string[];
  summary: Record<string, unknown>;
  /** Uploaded files by name (the latest upload). */
  files: Map<string, string>;
  /** Names reported in `uploaded`. */
  uploaded: string[];
  /** When each file_stream post arrived (ms), and which were empty heartbeats. */
  posts: { at: number; heartbeat: boolean; preempting: boolean }[];
  preempting: boolean;
  complete: boolean;
  exitcode?: number;
}

export interface FakeWandb {
  url: string;
  key: string;
  runs: Map<string, FakeRun>;
  /** Every request body as received, to check that no secret is echoed into them. */
  bodies: string[];
  /** GraphQL operations in order. */
  ops: string[];
  /** Requests refused for a wrong or missing key. */
  unauthorized: number;
  /** Answers every request with this status while set (an outage). */
  failWith: number | null;
  /** Answers file_stream posts with this status while set (history cannot be sent). */
  failStreamWith: number | null;
  close(): Promise<void>;
}

export const FAKE_ENTITY = "fake-entity";

export function startFakeWandb(key = "k".repeat(40), port = 0): FakeWandb {
  const runs = new Map<string, FakeRun>();
  const bodies: string[] = [];
  const ops: string[] = [];
  const uploads = new Map<string, Map<string, string>>();
  const fake: FakeWandb = {
    url: "",
    key,
    runs,
    bodies,
    ops,
    unauthorized: 0,
    failWith: null,
    failStreamWith: null,
    close: async () => {
      await server.shutdown();
    },
  };
  const expectedAuth = `Basic ${btoa(`api:${key}`)}`;
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    const body = await req.text();
    bodies.push(body);
    if (fake.failWith !== null) return new Response("outage", { status: fake.failWith });
    const path = new URL(req.url).pathname;
    const up = path.match(/^\/upload\/([^/]+)\/(.+)$/);
    if (req.method === "PUT" && up) {
      const [run, name] = [decodeURIComponent(up[1]), decodeURIComponent(up[2])];
      if (!uploads.has(run)) uploads.set(run, new Map());
      uploads.get(run)!.set(name, body);
      for (const r of runs.values()) if (r.id === run) r.files.set(name, body);
      return new Response("");
    }
    if (req.headers.get("authorization") !== expectedAuth) {
      fake.unauthorized++;
      return new Response("unauthorized", { status: 401 });
    }
    if (req.method === "POST" && path === "/graphql") {
      return graphql(fake, JSON.parse(body));
    }
    const m = path.match(/^\/files\/([^/]+)\/([^/]+)\/([^/]+)\/file_stream$/);
    if (req.method === "POST" && m) {
      if (fake.failStreamWith !== null) {
        return new Response("outage", { status: fake.failStreamWith });
      }
      const run = runs.get(
        runKey(...m.slice(1, 4).map(decodeURIComponent) as [string, string, string]),
      );
      if (!run) return new Response("run not found", { status: 404 });
      fileStream(run, parsePythonJson(body));
      return Response.json({ exitcode: null, limits: {} });
    }
    return new Response("not found", { status: 404 });
  });
  fake.url = `http://127.0.0.1:${server.addr.port}`;
  return fake;
}

function runKey(entity: string, project: string, id: string): string {
  return `${entity}/${project}/${id}`;
}

/** JSON as Python's json reads it: `NaN`, `Infinity`, `-Infinity` are numbers. */
export function parsePythonJson(text: string): any {
  const mark = "\u0001nf:";
  const marked = text.replace(
    /"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g,
    (m) => m.startsWith('"') ? m : JSON.stringify(mark + m),
  );
  return JSON.parse(
    marked,
    (_k, v) => typeof v === "string" && v.startsWith(mark) ? Number(v.slice(mark.length)) : v,
  );
}

function opOf(query: string): string {
  return query.match(/\b(?:query|mutation)\s+([A-Za-z0-9_]+)/)?.[1] ?? "?";
}

function graphql(
  fake: FakeWandb,
  req: { query: string; variables?: Record<string, any> },
): Response {
  const runs = fake.runs;
  const v = req.variables ?? {};
  const op = opOf(req.query);
  fake.ops.push(op);
  const data = (d: unknown) => Response.json({ data: d });
  if (op === "Viewer") {
    return data({ viewer: { id: "u", entity: FAKE_ENTITY, flags: null, teams: { edges: [] } } });
  }
  if (op === "UpsertBucket") {
    const entity = v.entity || FAKE_ENTITY;
    const project = v.project || "uncategorized";
    const id = v.name as string;
    const key = runKey(entity, project, id);
    const inserted = !runs.has(key);
    const run: FakeRun = runs.get(key) ?? {
      entity,
      project,
      id,
      upserts: 0,
      history: [],
      events: [],
      output: [],
      summary: {},
      files: new Map(),
      uploaded: [],
      posts: [],
      preempting: false,
      complete: false,
    };
    run.upserts++;
    // A resumed run is running again.
    run.complete = false;
    run.preempting = false;
    run.exitcode = undefined;
    const set = <K extends keyof FakeRun>(k: K, value: unknown) => {
      if (value !== undefined && value !== null) run[k] = value as FakeRun[K];
    };
    set("displayName", v.displayName);
    if (v.config) run.config = parsePythonJson(v.config);
    set("tags", v.tags);
    set("group", v.groupName);
    set("notes", v.notes);
    set("host", v.host);
    set("program", v.program);
    set("commit", v.commit);
    runs.set(key, run);
    return data({
      upsertBucket: {
        bucket: {
          id: btoa(key),
          name: id,
          displayName: run.displayName ?? id,
          config: JSON.stringify(run.config ?? {}),
          historyLineCount: run.history.length,
          project: { id: btoa(project), name: project, entity: { id: "e", name: entity } },
        },
        inserted,
      },
    });
  }
  if (op === "RunResumeStatus") {
    const entity = v.entity || FAKE_ENTITY;
    const project = v.project || "uncategorized";
    const run = runs.get(runKey(entity, project, v.name));
    return data({
      model: {
        id: "p",
        name: project,
        entity: { id: "e", name: entity },
        bucket: run
          ? {
            id: btoa(runKey(entity, project, run.id)),
            name: run.id,
            displayName: run.displayName,
            summaryMetrics: pythonJson(run.summary),
            historyLineCount: run.history.length,
            historyTail: JSON.stringify(run.history.slice(-10).map(pythonJson)),
            logLineCount: run.output.length,
            eventsLineCount: run.events.length,
            eventsTail: JSON.stringify(run.events.slice(-10).map(pythonJson)),
            config: JSON.stringify(run.config ?? {}),
            tags: run.tags ?? [],
            notes: run.notes ?? null,
          }
          : null,
      },
    });
  }
  if (op === "CreateRunFiles") {
    const files = (v.files ?? []) as string[];
    return data({
      createRunFiles: {
        runID: "r",
        uploadHeaders: [],
        files: files.map((name) => ({
          name,
          uploadUrl: `${fake.url}/upload/${encodeURIComponent(v.run)}/${encodeURIComponent(name)}`,
        })),
      },
    });
  }
  return Response.json({ errors: [{ message: `unknown operation ${op}` }] }, { status: 400 });
}

/** JSON as Python writes it (NaN, Infinity tokens). */
function pythonJson(v: unknown): string {
  return JSON.stringify(
    v,
    (_k, x) => typeof x === "number" && !Number.isFinite(x) ? `\u0001${x}` : x,
  )
    .replace(/"\\u0001(NaN|Infinity|-Infinity)"/g, "$1");
}

function fileStream(run: FakeRun, body: Record<string, any>): void {
  const keys = Object.keys(body);
  run.posts.push({ at: Date.now(), heartbeat: keys.length === 0, preempting: !!body.preempting });
  for (const [name, chunk] of Object.entries<any>(body.files ?? {})) {
    const lines = chunk.content as string[];
    if (name === "wandb-history.jsonl") {
      lines.forEach((l, i) => run.history[chunk.offset + i] = parsePythonJson(l));
    } else if (name === "wandb-events.jsonl") {
      lines.forEach((l, i) => run.events[chunk.offset + i] = parsePythonJson(l));
    } else if (name === "output.log") {
      lines.forEach((l, i) => run.output[chunk.offset + i] = l);
    } else if (name === "wandb-summary.json") {
      run.summary = lines.length ? parsePythonJson(lines.at(-1)!) : run.summary;
    }
  }
  if (Array.isArray(body.uploaded)) run.uploaded.push(...body.uploaded);
  if (body.preempting) run.preempting = true;
  if (body.complete) {
    run.complete = true;
    run.exitcode = body.exitcode;
  }
}
