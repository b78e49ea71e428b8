/**
 * A byte stream that survives dropped and stalled connections: when a read fails or gets no
 * bytes for `stallTimeoutMs`, the connection is dropped and reopened at the byte offset already
 * delivered (HTTP `Range`, GCS `start`), after an exponential backoff. Callers see one
 * uninterrupted stream, or an error once the retries are spent.
 */
import { OpenError } from "./open_base.ts";

export interface Connection {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  /** Total length of the object when known, to tell a cut connection from the end. */
  totalLength?: number;
  /** Bytes at the start of this connection's data to drop (a server that ignored `Range`). */
  skip?: number;
  /** Abort the underlying request. */
  close(): void;
}

export interface RetryPolicy {
  stallTimeoutMs: number;
  retries: number;
  backoffMs: number;
}

export function retryPolicy(
  o: { stallTimeoutMs?: number; retries?: number; backoffMs?: number },
): RetryPolicy {
  return {
    stallTimeoutMs: o.stallTimeoutMs ?? 60_000,
    retries: o.retries ?? 5,
    backoffMs: o.backoffMs ?? 500,
  };
}

/**
 * Opens the first connection eagerly (so that a missing object fails at open time), then
 * streams. `connect(offset)` opens at a byte offset; it throws `OpenError` with `permanent` set
 * for failures that retrying cannot fix.
 */
export async function resumableStream(
  name: string,
  connect: (offset: number, signal: AbortSignal) => Promise<Connection>,
  policy: RetryPolicy,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  let offset = 0;
  let totalLength: number | undefined;
  let conn: Connection | undefined;
  let aborter = new AbortController();

  const open = async (): Promise<Connection> => {
    let lastError: unknown;
    for (let attempt = 0; attempt <= policy.retries; attempt++) {
      if (signal?.aborted) throw new OpenError(`${name}: cancelled`, true);
      if (attempt > 0) await sleep(Math.min(30_000, policy.backoffMs * 2 ** (attempt - 1)), signal);
      aborter = new AbortController();
      const timer = setTimeout(() => aborter.abort(), policy.stallTimeoutMs);
      try {
        const c = await connect(offset, aborter.signal);
        if (c.totalLength !== undefined) totalLength = c.totalLength;
        return c;
      } catch (e) {
        lastError = aborter.signal.aborted
          ? new OpenError(`${name}: no response within ${policy.stallTimeoutMs} ms`, false)
          : e;
        if (lastError instanceof OpenError && lastError.permanent) throw lastError;
      } finally {
        clearTimeout(timer);
      }
    }
    const why = lastError instanceof Error ? lastError.message : String(lastError);
    throw new OpenError(
      `${name}: failed after ${policy.retries + 1} attempts at byte ${offset}: ${why}`,
      false,
      { cause: lastError },
    );
  };

  conn = await open();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (let failures = 0;;) {
        try {
          let chunk = await readWithin(conn!, policy.stallTimeoutMs, name);
          if (chunk === null) {
            if (totalLength !== undefined && offset < totalLength) {
              throw new Error(`connection closed at byte ${offset} of ${totalLength}`);
            }
            conn!.close();
            controller.close();
            return;
          }
          if (conn!.skip) {
            const drop = Math.min(conn!.skip, chunk.length);
            conn!.skip -= drop;
            chunk = chunk.subarray(drop);
            if (chunk.length === 0) continue;
          }
          offset += chunk.length;
          controller.enqueue(chunk);
          return;
        } catch (e) {
          conn!.close();
          if (e instanceof OpenError && e.permanent) throw e;
          if (++failures > policy.retries) {
            throw new OpenError(
              `${name}: reading failed ${failures} times at byte ${offset}: ${
                (e as Error).message
              }`,
              false,
              { cause: e },
            );
          }
          await sleep(Math.min(30_000, policy.backoffMs * 2 ** (failures - 1)), signal);
          conn = await open();
        }
      }
    },
    cancel() {
      conn?.close();
    },
  });
}

/** One read, or an error when nothing arrives within `ms`. */
async function readWithin(conn: Connection, ms: number, name: string): Promise<Uint8Array | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      conn.close();
      reject(new Error(`${name}: stalled, no data for ${ms} ms`));
    }, ms);
  });
  try {
    const r = await Promise.race([conn.read(), stalled]);
    return r.done ? null : r.value;
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
