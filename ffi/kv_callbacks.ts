/**
 * The key-value store a plugin may need at `PJRT_Client_Create` to find its peers (the CUDA
 * plugin across hosts exchanges its topology and NCCL ids this way; libtpu does not need one).
 *
 * The store is the caller's: anything with `get`/`put` (and optionally `tryGet`) over bytes,
 * sync or async. The plugin calls the PJRT callbacks from its own threads and expects them to
 * block until the value is there, so the callbacks live in a worker (kv_worker.ts) that blocks
 * in `Atomics.wait`, while this thread's event loop (free, because `PJRT_Client_Create` runs
 * `nonblocking`) runs the store and writes the answer into shared memory. The store is only
 * reachable while the JS thread is not itself blocked in a plugin call: launches that may use
 * it (a program's first run on CUDA, which sets up its NCCL cliques) go through
 * `PjrtExecutable.executeAsync`; later runs reuse the cliques and are plain calls.
 */
import {
  CODE,
  DATA_MAX_BYTES,
  ID,
  type KvReady,
  type KvRequest,
  LENGTH,
  STATE,
  STATUS,
  Status,
} from "./kv_protocol.ts";
import { ErrorCode } from "./pjrt_api.ts";

export interface KeyValueStore {
  /** The value of `key`, waiting up to `timeoutMs` for a process to put it; throws otherwise. */
  get(key: string, timeoutMs: number): Promise<Uint8Array> | Uint8Array;
  put(key: string, value: Uint8Array): Promise<void> | void;
  /** The value of `key` if present now, else undefined (`kv_try_get_callback`). */
  tryGet?(key: string): Promise<Uint8Array | undefined> | Uint8Array | undefined;
}

/** The callback pointers for `PJRT_Client_Create_Args`; dispose after the client is destroyed. */
export class KvCallbacks implements Disposable {
  private constructor(
    private readonly worker: Worker,
    readonly get: Deno.PointerObject,
    readonly put: Deno.PointerObject,
    readonly tryGet: Deno.PointerObject | null,
  ) {}

  static async start(store: KeyValueStore): Promise<KvCallbacks> {
    const worker = new Worker(new URL("./kv_worker.ts", import.meta.url), { type: "module" });
    const ready = await new Promise<KvReady>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<KvReady>) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`the PJRT key-value worker failed to start: ${e.message}`));
      };
    }).catch((e) => {
      worker.terminate();
      throw e;
    });
    const ctrl = new Int32Array(ready.ctrl);
    worker.onmessage = (e: MessageEvent<KvRequest>) => serve(store, e.data, ctrl, ready.data);
    const ptr = (a: bigint) => Deno.UnsafePointer.create(a)!;
    return new KvCallbacks(
      worker,
      ptr(ready.get),
      ptr(ready.put),
      store.tryGet ? ptr(ready.tryGet) : null,
    );
  }

  [Symbol.dispose](): void {
    this.worker.terminate();
  }
}

async function serve(
  store: KeyValueStore,
  r: KvRequest,
  ctrl: Int32Array,
  data: SharedArrayBuffer,
): Promise<void> {
  let status: number = Status.OK, code: number = ErrorCode.OK;
  let bytes: Uint8Array = new Uint8Array(0);
  try {
    if (r.op === "get") bytes = await store.get(r.key, r.timeoutMs);
    else if (r.op === "put") await store.put(r.key, r.value);
    else {
      const v = await store.tryGet!(r.key);
      if (v === undefined) status = Status.NOT_FOUND;
      else bytes = v;
    }
  } catch (e) {
    status = Status.ERROR;
    code = e instanceof Error && e.name === "TimeoutError"
      ? ErrorCode.DEADLINE_EXCEEDED
      : ErrorCode.UNKNOWN;
    bytes = new TextEncoder().encode(e instanceof Error ? e.message : String(e));
  }
  if (bytes.length > DATA_MAX_BYTES) {
    status = Status.ERROR;
    code = ErrorCode.RESOURCE_EXHAUSTED;
    bytes = new TextEncoder().encode(
      `the value has ${bytes.length} bytes; the bridge carries at most ${DATA_MAX_BYTES}`,
    );
  }
  // Claim the answer slot: if the worker gave up waiting (ID no longer r.id), drop the answer;
  // once claimed (ID -1), the worker waits for it even past its time limit.
  if (Atomics.compareExchange(ctrl, ID, r.id, -1) !== r.id) return;
  // deno-lint-ignore no-explicit-any
  const growable = data as any as { byteLength: number; grow(n: number): void };
  if (bytes.length > growable.byteLength) growable.grow(bytes.length);
  new Uint8Array(data, 0, bytes.length).set(bytes);
  ctrl[STATUS] = status;
  ctrl[CODE] = code;
  ctrl[LENGTH] = bytes.length;
  Atomics.store(ctrl, STATE, 1);
  Atomics.notify(ctrl, STATE);
}
