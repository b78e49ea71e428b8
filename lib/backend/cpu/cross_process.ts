/**
 * The cross-process half of the CPU backend's all-reduce (replicas.ts): P processes, each with
 * N virtual devices, run one program of N x P replicas. At each all_reduce_sum every process
 * sends its N local parts over TCP to process 0, which adds all N x P parts in global replica
 * order (process 0's devices first), exactly as one process with N x P devices does, and sends
 * the sum back. So a P-process run computes what one process with N x P devices computes.
 *
 * Meetings are numbered in the order each process reaches them; every process runs the same
 * programs in the same order (the training loop's lockstep), so the k-th meeting is the same
 * all-reduce everywhere. Frames: u32 meeting, u32 dtype code, u32 byte length, then the bytes.
 */
import { allocArray, type DType, type TypedArray, viewArray } from "../../ir/dtype.ts";
import { addInOrder } from "./add_in_order.ts";

const DTYPES: DType[] = ["f32", "i32", "u32"];

/** One process's end of the exchange: `sum` of its local parts over every process. */
export abstract class ProcessSum {
  #meeting = 0;

  constructor(readonly processIndex: number, readonly processCount: number) {}

  /** This process's N local parts (in device order) -> the sum over all N x P parts. */
  sum(dtype: DType, parts: readonly TypedArray[]): Promise<TypedArray> {
    return this.meet(this.#meeting++, dtype, parts);
  }

  protected abstract meet(
    k: number,
    dtype: DType,
    parts: readonly TypedArray[],
  ): Promise<TypedArray>;

  abstract close(): void;

  /** Process 0: listens on `hostname` (any free port) for the other P - 1 processes. */
  static serve(hostname: string, processCount: number): ProcessSumServer {
    return new ProcessSumServer(hostname, processCount);
  }

  /** Process `index` (> 0): connects to process 0 at `address` (HOST:PORT). */
  static async connect(address: string, index: number, count: number): Promise<ProcessSum> {
    const [hostname, port] = [address.replace(/:\d+$/, ""), Number(/:(\d+)$/.exec(address)![1])];
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true); // many small frames, each waited for
    await writeFrame(conn, index, 0, new Uint8Array(0)); // hello: which process this is
    return new ProcessSumClient(conn, index, count);
  }
}

/** Process 0's end: adds every process's parts and answers each. */
export class ProcessSumServer extends ProcessSum {
  readonly #listener: Deno.Listener;
  readonly #conns: (Deno.Conn | undefined)[];
  readonly #pending = new Map<number, Meeting>();
  #error: Error | undefined;
  /** Resolves once every other process has connected. */
  readonly ready: Promise<void>;

  constructor(hostname: string, processCount: number) {
    super(0, processCount);
    this.#listener = Deno.listen({ hostname, port: 0 });
    this.#conns = new Array(processCount).fill(undefined);
    this.ready = this.#accept();
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  async #accept(): Promise<void> {
    for (let joined = 1; joined < this.processCount; joined++) {
      const conn = await this.#listener.accept() as Deno.TcpConn;
      conn.setNoDelay(true);
      const hello = await readFrame(conn);
      const p = hello?.k;
      if (p === undefined || !(p > 0 && p < this.processCount) || this.#conns[p]) {
        conn.close();
        throw new Error(`cpu all-reduce: a connection that is not a new process (${p})`);
      }
      this.#conns[p] = conn;
      this.#read(p, conn);
    }
  }

  async #read(p: number, conn: Deno.Conn): Promise<void> {
    try {
      for (;;) {
        const f = await readFrame(conn);
        if (!f) throw peerLost(p, "its connection closed");
        this.#arrive(f.k, p, DTYPES[f.code], f.bytes);
      }
    } catch (e) {
      this.#fail(asPeerLost(p, e as Error));
    }
  }

  protected meet(k: number, dtype: DType, parts: readonly TypedArray[]): Promise<TypedArray> {
    const m = this.#meeting(k);
    m.parts[0] = [...parts];
    this.#complete(k, m, dtype);
    return m.promise;
  }

  #meeting(k: number): Meeting {
    let m = this.#pending.get(k);
    if (!m) {
      const { promise, resolve, reject } = Promise.withResolvers<TypedArray>();
      m = { parts: new Array(this.processCount).fill(undefined), promise, resolve, reject };
      promise.catch(() => {}); // a failure is also thrown to whoever awaits it
      this.#pending.set(k, m);
      if (this.#error) reject(this.#error);
    }
    return m;
  }

  #arrive(k: number, p: number, dtype: DType, bytes: Uint8Array): void {
    const m = this.#meeting(k);
    m.parts[p] = [bytesAs(dtype, bytes)]; // split into devices by process 0's part count
    this.#complete(k, m, dtype);
  }

  #complete(k: number, m: Meeting, dtype: DType): void {
    if (m.parts.some((x) => x === undefined)) return;
    this.#pending.delete(k);
    const local = m.parts[0]!;
    const n = local[0].length, N = local.length;
    const ordered: TypedArray[] = [...local];
    for (let p = 1; p < this.processCount; p++) {
      const all = m.parts[p]![0];
      if (all.length !== n * N) {
        return m.reject(
          new Error(
            `cpu all-reduce #${k}: process ${p} sent ${all.length} values, process 0 expects ` +
              `${N} devices x ${n}: do the processes run the same program and --devices?`,
          ),
        );
      }
      for (let d = 0; d < N; d++) ordered.push(all.subarray(d * n, (d + 1) * n));
    }
    const out = addInOrder(dtype, ordered);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    Promise.all(
      this.#conns.slice(1).map((c, i) =>
        writeFrame(c!, k, DTYPES.indexOf(dtype), bytes).catch((e) => {
          throw asPeerLost(i + 1, e as Error);
        })
      ),
    ).then(() => m.resolve(out), (e) => this.#fail(e as Error));
  }

  #fail(e: Error): void {
    this.#error ??= e;
    for (const m of this.#pending.values()) m.reject(this.#error);
    this.#pending.clear();
  }

  close(): void {
    this.#fail(new Error("the cpu all-reduce was closed"));
    for (const c of this.#conns) c?.close();
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
  }
}

class ProcessSumClient extends ProcessSum {
  readonly #waiting = new Map<number, (r: TypedArray | Error) => void>();
  #error: Error | undefined;

  constructor(readonly conn: Deno.Conn, index: number, count: number) {
    super(index, count);
    this.#read();
  }

  async #read(): Promise<void> {
    try {
      for (;;) {
        const f = await readFrame(this.conn);
        if (!f) throw peerLost(0, "its connection closed");
        const w = this.#waiting.get(f.k);
        this.#waiting.delete(f.k);
        w?.(bytesAs(DTYPES[f.code], f.bytes));
      }
    } catch (e) {
      this.#error ??= asPeerLost(0, e as Error);
      for (const w of this.#waiting.values()) w(this.#error);
      this.#waiting.clear();
    }
  }

  protected async meet(k: number, dtype: DType, parts: readonly TypedArray[]): Promise<TypedArray> {
    if (this.#error) throw this.#error;
    const n = parts[0].length;
    const all = allocArray(dtype, n * parts.length);
    parts.forEach((p, d) => all.set(p, d * n));
    const result = new Promise<TypedArray | Error>((r) => this.#waiting.set(k, r));
    try {
      await writeFrame(
        this.conn,
        k,
        DTYPES.indexOf(dtype),
        new Uint8Array(all.buffer, all.byteOffset, all.byteLength),
      );
    } catch (e) {
      throw asPeerLost(0, e as Error);
    }
    const r = await result;
    if (r instanceof Error) throw r;
    return r;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** Process `p`'s end of the exchange failed: it stopped, was killed or crashed. */
function peerLost(p: number, why: string): Error {
  return new Error(
    `process ${p} left the cpu all-reduce: ${why} (it stopped, was killed or crashed)`,
  );
}

/** A connection error (reset, broken pipe) as the loss of the process at its other end. */
function asPeerLost(p: number, e: Error): Error {
  return e.message.startsWith(`process ${p} left`)
    ? e
    : peerLost(p, `its connection failed (${e.message})`);
}

interface Meeting {
  /** Per process: its local parts (process 0), or all its parts in one array (the others). */
  parts: (TypedArray[] | undefined)[];
  promise: Promise<TypedArray>;
  resolve: (v: TypedArray) => void;
  reject: (e: Error) => void;
}

/** The frame's bytes (a buffer of its own from readExact, at offset 0) viewed as `dtype`. */
function bytesAs(dtype: DType, bytes: Uint8Array): TypedArray {
  return viewArray(dtype, bytes.buffer as ArrayBuffer);
}

/** One write per frame: a header written on its own would wait for the peer's delayed ACK. */
async function writeFrame(conn: Deno.Conn, k: number, code: number, bytes: Uint8Array) {
  const frame = new Uint8Array(12 + bytes.byteLength);
  const v = new DataView(frame.buffer);
  v.setUint32(0, k, true);
  v.setUint32(4, code, true);
  v.setUint32(8, bytes.byteLength, true);
  frame.set(bytes, 12);
  await writeAll(conn, frame);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.byteLength;) off += await conn.write(bytes.subarray(off));
}

/** The next frame, or null at a clean end of the stream. */
async function readFrame(
  conn: Deno.Conn,
): Promise<{ k: number; code: number; bytes: Uint8Array } | null> {
  const head = await readExact(conn, 12, true);
  if (!head) return null;
  const v = new DataView(head.buffer);
  const bytes = (await readExact(conn, v.getUint32(8, true), false))!;
  return { k: v.getUint32(0, true), code: v.getUint32(4, true), bytes };
}

async function readExact(conn: Deno.Conn, n: number, endOk: boolean): Promise<Uint8Array | null> {
  const buf = new Uint8Array(n);
  for (let off = 0; off < n;) {
    const got = await conn.read(buf.subarray(off));
    if (got === null) {
      if (endOk && off === 0) return null;
      throw new Error("cpu all-reduce: the connection ended inside a frame");
    }
    off += got;
  }
  return buf;
}
