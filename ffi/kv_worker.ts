/// <reference lib="deno.worker" />
/**
 * Owns the `PJRT_KeyValue*Callback`s given to `PJRT_Client_Create` (see kv_callbacks.ts). The
 * plugin calls them from its own threads; Deno runs them here, in this worker's isolate, and
 * the plugin's thread waits until they return. Each call forwards to the main thread, which
 * runs the (async) store, and blocks in `Atomics.wait` until the answer is in shared memory.
 * Calls are served one at a time.
 *
 * The args structs are read by our header's layout and their `struct_size` is never trusted:
 * XLA's helper (`ToCppKeyValueStore` in pjrt_c_api_helpers.cc) builds them on the stack and sets
 * only key, key_size, timeout, callback_error and user_arg. On success a get always fills
 * value, value_size and value_deleter_callback, since the plugin copies the value and calls the
 * deleter without checking; every other outcome returns a `PJRT_Error`.
 */
import {
  ERROR_CODE_NAMES,
  ErrorCode,
  PJRT_KeyValueGetCallback_Args as GetArgs,
  PJRT_KeyValuePutCallback_Args as PutArgs,
  PJRT_KeyValueTryGetCallback_Args as TryGetArgs,
} from "./pjrt_api.ts";
import type { StructLayout } from "./layout.ts";
import {
  CODE,
  CTRL_BYTES,
  DATA_INITIAL_BYTES,
  DATA_MAX_BYTES,
  ID,
  type KvReady,
  type KvRequest,
  LENGTH,
  STATE,
  STATUS,
  Status,
} from "./kv_protocol.ts";

/** How long past the plugin's own timeout a get waits for the store to answer at all. */
const SLACK_MS = 5_000;
/** Wait for puts and try-gets (which the store answers without waiting for other processes). */
const QUICK_MS = 60_000;
/** A negative timeout means "no limit" to us; the store still caps it. */
const NO_LIMIT_MS = 3_600_000;

const ctrl = new Int32Array(new SharedArrayBuffer(CTRL_BYTES));
// deno-lint-ignore no-explicit-any
const data = new (SharedArrayBuffer as any)(DATA_INITIAL_BYTES, {
  maxByteLength: DATA_MAX_BYTES,
}) as SharedArrayBuffer;
/** Values handed to the plugin and not yet released by its `value_deleter_callback`. */
const held = new Map<bigint, Uint8Array>();
let nextId = 1;

const signature = { parameters: ["pointer"], result: "pointer" } as const;
/** `PJRT_CallbackError`: (code, message, message_size) -> PJRT_Error*. */
const ERROR_FN = { parameters: ["i32", "buffer", "usize"], result: "pointer" } as const;

const deleter = Deno.UnsafeCallback.threadSafe(
  { parameters: ["pointer"], result: "void" } as const,
  (value) => {
    held.delete(address(value));
  },
);

const get = Deno.UnsafeCallback.threadSafe(signature, (ptr) =>
  guarded(ptr, GetArgs, (a) => {
    const key = readKey(a, GetArgs);
    const timeout = a.getInt32(GetArgs.offsetOf("timeout_in_ms"), true);
    const timeoutMs = timeout < 0 ? NO_LIMIT_MS : timeout;
    const r = ask({ id: 0, op: "get", key, timeoutMs }, timeoutMs + SLACK_MS);
    return r.status === Status.OK
      ? giveValue(a, GetArgs, r.bytes)
      : fail(a, GetArgs, r.code, `kv get "${key}": ${r.message}`);
  }));

const tryGet = Deno.UnsafeCallback.threadSafe(signature, (ptr) =>
  guarded(ptr, TryGetArgs, (a) => {
    const key = readKey(a, TryGetArgs);
    const r = ask({ id: 0, op: "tryGet", key }, QUICK_MS);
    if (r.status === Status.OK) return giveValue(a, TryGetArgs, r.bytes);
    if (r.status === Status.NOT_FOUND) {
      return fail(a, TryGetArgs, ErrorCode.NOT_FOUND, `kv "${key}" not found`);
    }
    return fail(a, TryGetArgs, r.code, `kv try_get "${key}": ${r.message}`);
  }));

const put = Deno.UnsafeCallback.threadSafe(signature, (ptr) =>
  guarded(ptr, PutArgs, (a) => {
    const key = readKey(a, PutArgs);
    const size = Number(a.getBigUint64(PutArgs.offsetOf("value_size"), true));
    const at = a.getBigUint64(PutArgs.offsetOf("value"), true);
    // The plugin's value lives only for this call: copy it before posting.
    const value = size > 0 ? new Uint8Array(bytesAt(at, size)).slice() : new Uint8Array(0);
    const r = ask({ id: 0, op: "put", key, value }, QUICK_MS);
    return r.status === Status.OK
      ? null
      : fail(a, PutArgs, r.code, `kv put "${key}": ${r.message}`);
  }));

const ready: KvReady = {
  get: address(get.pointer),
  put: address(put.pointer),
  tryGet: address(tryGet.pointer),
  ctrl: ctrl.buffer as SharedArrayBuffer,
  data,
};
self.postMessage(ready);

type Answer =
  | { status: typeof Status.OK; bytes: Uint8Array }
  | { status: typeof Status.NOT_FOUND | typeof Status.ERROR; code: number; message: string };

/** Posts `request` to the main thread and blocks until it answers or `waitMs` pass. */
function ask(request: KvRequest, waitMs: number): Answer {
  const id = nextId++;
  Atomics.store(ctrl, STATE, 0);
  Atomics.store(ctrl, ID, id);
  self.postMessage({ ...request, id });
  if (
    Atomics.wait(ctrl, STATE, 0, waitMs) === "timed-out" &&
    Atomics.compareExchange(ctrl, ID, id, 0) === id // a late answer is dropped
  ) {
    return {
      status: Status.ERROR,
      code: ErrorCode.DEADLINE_EXCEEDED,
      message: `the key-value store did not answer within ${waitMs} ms`,
    };
  }
  // Answered, or the main thread claimed the slot just as the wait ran out: its answer follows.
  Atomics.wait(ctrl, STATE, 0);
  const bytes = new Uint8Array(data, 0, ctrl[LENGTH]).slice();
  const status = ctrl[STATUS];
  if (status === Status.OK) return { status, bytes };
  return {
    status: status as typeof Status.ERROR,
    code: ctrl[CODE],
    message: new TextDecoder().decode(bytes),
  };
}

/**
 * Runs a callback on a view of the plugin's args struct (laid out by our header; its
 * `struct_size` is not set by XLA, so it is not read). Whatever the callback throws becomes the
 * `PJRT_Error` returned, never a success with unset out fields.
 */
function guarded(
  ptr: Deno.PointerValue,
  layout: StructLayout,
  fn: (a: DataView) => Deno.PointerValue,
): Deno.PointerValue {
  if (ptr === null) {
    console.error(`PJRT key-value callback: ${layout.name} is a null pointer`);
    return null; // nothing to fill, nothing to report through
  }
  const a = new DataView(Deno.UnsafePointerView.getArrayBuffer(ptr, layout.size));
  try {
    return fn(a);
  } catch (e) {
    const message = `${layout.name}: ${e instanceof Error ? e.message : e}`;
    return fail(a, layout, ErrorCode.INTERNAL, message);
  }
}

function readKey(a: DataView, layout: StructLayout): string {
  const size = Number(a.getBigUint64(layout.offsetOf("key_size"), true));
  const at = a.getBigUint64(layout.offsetOf("key"), true);
  return size > 0 ? new TextDecoder().decode(bytesAt(at, size)) : "";
}

/** Hands `bytes` to the plugin; it copies them, then calls the deleter, which releases them. */
function giveValue(a: DataView, layout: StructLayout, bytes: Uint8Array): null {
  const copy = new Uint8Array(Math.max(1, bytes.length)); // an empty array has no address
  copy.set(bytes);
  const ptr = Deno.UnsafePointer.of(copy);
  held.set(address(ptr), copy);
  a.setBigUint64(layout.offsetOf("value"), address(ptr), true);
  a.setBigUint64(layout.offsetOf("value_size"), BigInt(bytes.length), true);
  a.setBigUint64(layout.offsetOf("value_deleter_callback"), address(deleter.pointer), true);
  return null;
}

/**
 * A `PJRT_Error*` made by the plugin's `callback_error`. A plugin that gave none cannot be told
 * of the failure: a get then gets an empty value (filled, so that the plugin's copy and deleter
 * call stay safe) and the failure is logged.
 */
function fail(a: DataView, layout: StructLayout, code: number, message: string) {
  const slot = a.getBigUint64(layout.offsetOf("callback_error"), true);
  const fn = slot === 0n ? 0n : new Deno.UnsafePointerView(pointer(slot)).getBigUint64(0);
  if (fn === 0n) {
    console.error(
      `PJRT key-value callback: ${message} (${ERROR_CODE_NAMES[code]}; the plugin gave no ` +
        "callback_error to report it)",
    );
    return layout === PutArgs ? null : giveValue(a, layout, new Uint8Array(0));
  }
  const text = new TextEncoder().encode(message);
  const make = new Deno.UnsafeFnPointer(
    pointer(fn) as Deno.PointerObject<typeof ERROR_FN>,
    ERROR_FN,
  );
  return make.call(code, text, BigInt(text.length));
}

function bytesAt(at: bigint, size: number): Uint8Array {
  return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer(at), size));
}

function pointer(at: bigint): Deno.PointerObject {
  return Deno.UnsafePointer.create(at)!;
}

function address(p: Deno.PointerValue): bigint {
  return BigInt(Deno.UnsafePointer.value(p));
}
