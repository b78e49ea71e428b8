/**
 * A W&B server for tests, on 127.0.0.1: it speaks the part of the protocol that a training run
 * uses and records what it receives.
 *
 * - `POST /graphql`: `UpsertBucket` (creates or updates a run), `Viewer` (the default entity) and
 *   `RunResumeStatus` (a run's history line count), with HTTP Basic auth `api:KEY`.
 * - `POST /files/ENTITY/PROJECT/RUN/file_stream`: `{files: {"wandb-history.jsonl": {offset,
 *   content}, "wandb-summary.json": ...}}`, and `{complete: true, exitcode}` at the end.
 */
export interface FakeRun {
  entity: string;
  project: string;
  id: string;
  displayName?: string;
  config?: Record<string, unknown>;
  upserts: number;
  /** History lines by offset (a resent offset replaces the line, as the real server does). */
  history: Record<string, unknown>[];
  summary: Record<string, unknown>;
  complete: boolean;
  exitcode?: number;
}

export interface FakeWandb {
  url: string;
  key: string;
  runs: Map<string, FakeRun>;
  /** Every request body as received, to check that no secret is echoed into them. */
  bodies: string[];
  /** Requests refused for a wrong or missing key. */
  unauthorized: number;
  /** Answers every request with this status while set (an outage). */
  failWith: number | null;
  close(): Promise<void>;
}

export const FAKE_ENTITY = "fake-entity";

export function startFakeWandb(key = "k".repeat(40), port = 0): FakeWandb {
  const runs = new Map<string, FakeRun>();
  const bodies: string[] = [];
  const fake: FakeWandb = {
    url: "",
    key,
    runs,
    bodies,
    unauthorized: 0,
    failWith: null,
    close: async () => {
      await server.shutdown();
    },
  };
  const expectedAuth = `Basic ${btoa(`api:${key}`)}`;
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    const body = await req.text();
    bodies.push(body);
    if (fake.failWith !== null) return new Response("outage", { status: fake.failWith });
    if (req.headers.get("authorization") !== expectedAuth) {
      fake.unauthorized++;
      return new Response("unauthorized", { status: 401 });
    }
    const path = new URL(req.url).pathname;
    if (req.method === "POST" && path === "/graphql") return graphql(runs, JSON.parse(body));
    const m = path.match(/^\/files\/([^/]+)\/([^/]+)\/([^/]+)\/file_stream$/);
    if (req.method === "POST" && m) {
      const run = runs.get(runKey(m[1], m[2], m[3]));
      if (!run) return new Response("run not found", { status: 404 });
      fileStream(run, JSON.parse(body));
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

function graphql(
  runs: Map<string, FakeRun>,
  req: { query: string; variables?: Record<string, any> },
): Response {
  const v = req.variables ?? {};
  if (/upsertBucket\s*\(/.test(req.query)) {
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
      summary: {},
      complete: false,
    };
    run.upserts++;
    if (v.displayName !== undefined) run.displayName = v.displayName;
    if (v.config !== undefined) run.config = JSON.parse(v.config);
    runs.set(key, run);
    return Response.json({
      data: {
        upsertBucket: {
          bucket: {
            id: btoa(key),
            name: id,
            displayName: run.displayName ?? id,
            project: { id: btoa(project), name: project, entity: { id: "e", name: entity } },
          },
          inserted,
        },
      },
    });
  }
  if (/\bviewer\b/.test(req.query)) {
    return Response.json({
      data: { viewer: { id: "u", entity: FAKE_ENTITY, flags: null, teams: { edges: [] } } },
    });
  }
  if (/historyLineCount/.test(req.query)) {
    const run = runs.get(runKey(v.entity || FAKE_ENTITY, v.project, v.name));
    return Response.json({
      data: {
        model: run
          ? {
            id: "p",
            name: run.project,
            entity: { id: "e", name: run.entity },
            bucket: {
              id: "r",
              name: run.id,
              historyLineCount: run.history.length,
            },
          }
          : null,
      },
    });
  }
  return Response.json({ errors: [{ message: "unknown query" }] }, { status: 400 });
}

function fileStream(run: FakeRun, body: Record<string, any>): void {
  for (const [name, chunk] of Object.entries<any>(body.files ?? {})) {
    const lines = (chunk.content as string[]).map((l) => JSON.parse(l));
    if (name === "wandb-history.jsonl") {
      lines.forEach((l, i) => run.history[chunk.offset + i] = l);
    } else if (name === "wandb-summary.json") {
      run.summary = lines.at(-1) ?? run.summary;
    }
  }
  if (body.complete) {
    run.complete = true;
    run.exitcode = body.exitcode;
  }
}
