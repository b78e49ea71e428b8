/**
 * The key-value callbacks called directly, as a plugin's thread would (a `nonblocking` call runs
 * them off this thread, which stays free to run the store): values larger than the shared
 * buffer's first size, empty values, the deleter, and errors through `callback_error`.
 */
import { assert, assertEquals } from "../assert.ts";
import { type KeyValueStore, KvCallbacks } from "../../ffi/kv_callbacks.ts";
import {
  PJRT_KeyValueGetCallback_Args as GetArgs,
  PJRT_KeyValuePutCallback_Args as PutArgs,
} from "../../ffi/pjrt_api.ts";
import { StructBuffer } from "../../ffi/struct_buffer.ts";

const CALLBACK = { parameters: ["buffer"], result: "pointer", nonblocking: true } as const;

/** A fake `PJRT_CallbackError`: records (code, message) and returns a recognisable pointer. */
function callbackError() {
  const sentinel = new Uint8Array(8);
  const seen: [number, string][] = [];
  const cb = Deno.UnsafeCallback.threadSafe(
    { parameters: ["i32", "pointer", "usize"], result: "pointer" } as const,
    (code, message, size) => {
      const bytes = Deno.UnsafePointerView.getArrayBuffer(message!, Number(size));
      seen.push([code, new TextDecoder().decode(bytes)]);
      return Deno.UnsafePointer.of(sentinel);
    },
  );
  const slot = new BigUint64Array([BigInt(Deno.UnsafePointer.value(cb.pointer))]);
  return {
    slot,
    seen,
    isSentinel: (p: Deno.PointerValue) =>
      Deno.UnsafePointer.equals(p, Deno.UnsafePointer.of(sentinel)),
    [Symbol.dispose]: () => cb.close(),
  };
}

async function callGet(kv: KvCallbacks, key: string, errors: { slot: BigUint64Array }) {
  const k = new TextEncoder().encode(key);
  const a = new StructBuffer(GetArgs).setPtr("key", k).setU64("key_size", k.length)
    .setI32("timeout_in_ms", 200).setPtr("callback_error", errors.slot);
  const error = await new Deno.UnsafeFnPointer(
    kv.get as Deno.PointerObject<typeof CALLBACK>,
    CALLBACK,
  )
    .call(a.bytes);
  const at = a.getPtr("value");
  const size = a.getSize("value_size");
  const value = at === null ? null : new Uint8Array(
    Deno.UnsafePointerView.getArrayBuffer(at, Math.max(1, size)).slice(0, size),
  );
  const deleter = a.getPtr("value_deleter_callback");
  if (deleter !== null) {
    const del = { parameters: ["pointer"], result: "void", nonblocking: true } as const;
    await new Deno.UnsafeFnPointer(deleter as Deno.PointerObject<typeof del>, del).call(at);
  }
  return { error, value, deleter, keep: k };
}

Deno.test("kv callbacks: a 300 kB value and an empty one reach the plugin; the deleter runs", async () => {
  const big = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 255);
  const store: KeyValueStore = {
    get: (key) => key === "big" ? big : new Uint8Array(0),
    put: () => {},
  };
  using errors = callbackError();
  using kv = await KvCallbacks.start(store);
  assertEquals(kv.tryGet, null, "no tryGet in the store, no kv_try_get_callback");
  const got = await callGet(kv, "big", errors);
  assertEquals(got.error, null);
  assert(got.deleter !== null);
  assertEquals(got.value!.length, big.length);
  assertEquals(got.value, big);
  const empty = await callGet(kv, "empty", errors);
  assertEquals([empty.error, empty.value!.length], [null, 0]);
  assertEquals(errors.seen, []);
});

Deno.test("kv callbacks: store errors go through callback_error with a code", async () => {
  const store: KeyValueStore = {
    get: () => {
      throw new DOMException("nobody put it", "TimeoutError");
    },
    put: () => Promise.reject(new Error("coordinator gone")),
  };
  using errors = callbackError();
  using kv = await KvCallbacks.start(store);
  const got = await callGet(kv, "k", errors);
  assert(errors.isSentinel(got.error), "the callback returns what callback_error made");
  assertEquals(got.value, null);

  const value = new Uint8Array([1, 2, 3]);
  const key = new TextEncoder().encode("p");
  const a = new StructBuffer(PutArgs).setPtr("key", key).setU64("key_size", 1)
    .setPtr("value", value).setU64("value_size", 3).setPtr("callback_error", errors.slot);
  const put = new Deno.UnsafeFnPointer(kv.put as Deno.PointerObject<typeof CALLBACK>, CALLBACK);
  assert(errors.isSentinel(await put.call(a.bytes)));

  assertEquals(errors.seen, [[4, 'kv get "k": nobody put it'], [
    2,
    'kv put "p": coordinator gone',
  ]]);
  keepAlive(value, key);
});

Deno.test("kv callbacks: struct_size is not read (XLA leaves it unset); a get fills every out field", async () => {
  const puts: string[] = [];
  const store: KeyValueStore = {
    get: () => new Uint8Array([7, 0, 255]),
    put: (k, v) => void puts.push(`${k}=${v}`),
  };
  using errors = callbackError();
  using kv = await KvCallbacks.start(store);
  // As XLA's ToCppKeyValueStore builds them: on the stack, struct_size 0 here, the out fields
  // garbage.
  const garbage = 0xa5a5a5a5a5a5a5a5n;
  const k = new TextEncoder().encode("k");
  const g = new StructBuffer(GetArgs).setU64("struct_size", 0).setPtr("key", k)
    .setU64("key_size", 1).setI32("timeout_in_ms", 100).setPtr("callback_error", errors.slot)
    .setU64("value", garbage).setU64("value_size", garbage)
    .setU64("value_deleter_callback", garbage);
  const get = new Deno.UnsafeFnPointer(kv.get as Deno.PointerObject<typeof CALLBACK>, CALLBACK);
  assertEquals(await get.call(g.bytes), null);
  const at = g.getPtr("value")!;
  assertEquals(g.getSize("value_size"), 3);
  assertEquals([...new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(at, 3))], [7, 0, 255]);
  assert(Deno.UnsafePointer.value(g.getPtr("value_deleter_callback")) !== garbage);
  const p = new StructBuffer(PutArgs).setU64("struct_size", 0).setPtr("key", k)
    .setU64("key_size", 1).setPtr("value", k).setU64("value_size", 1)
    .setPtr("callback_error", errors.slot);
  const put = new Deno.UnsafeFnPointer(kv.put as Deno.PointerObject<typeof CALLBACK>, CALLBACK);
  assertEquals(await put.call(p.bytes), null);
  assertEquals(puts, ["k=107"]);
  assertEquals(errors.seen, []);
  keepAlive(k);
});

Deno.test("kv callbacks: without callback_error a failed get still fills an (empty) value", async () => {
  const store: KeyValueStore = {
    get: () => Promise.reject(new Error("down")),
    put: () => {},
  };
  using kv = await KvCallbacks.start(store);
  const got = await callGet(kv, "k", { slot: new BigUint64Array([0n]) });
  assertEquals(got.error, null);
  assert(got.deleter !== null, "the plugin calls the deleter unconditionally");
  assertEquals(got.value?.length, 0);
});

function keepAlive(..._v: unknown[]) {}
