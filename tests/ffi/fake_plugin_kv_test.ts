/**
 * The key-value callbacks of `PJRT_Client_Create` against the fake plugin, in one process: the
 * fake calls them from a thread of its own (as the CUDA plugin does) and does a rendezvous of
 * "processes" whose other keys the test's store already holds. The multi-process version, with
 * process 0's coordinator, is tests/backend/pjrt/kv_test.ts.
 */
import { assert, assertEquals } from "../assert.ts";
import { PjrtClient } from "../../ffi/client.ts";
import { PjrtError } from "../../ffi/errors.ts";
import type { KeyValueStore } from "../../ffi/kv_callbacks.ts";
import { buildFakePlugins, openQueries } from "./fake_plugin/build.ts";

const plugins = await buildFakePlugins({ full: [] });
const fake = plugins ? openQueries(plugins.full) : null;
const quiet = () => {};

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `fake plugin kv: ${name}`, ignore: plugins === null, fn });
}

/** What the fake puts for node `p`: "node<p>", a 0 byte, 0xff. */
const nodeValue = (p: number) => new Uint8Array([...new TextEncoder().encode(`node${p}`), 0, 255]);

/** An in-memory store whose get waits (asynchronously) for the key, like the coordinator's. */
function memoryStore(o: { tryGet?: boolean } = {}) {
  const values = new Map<string, Uint8Array>();
  const calls: string[] = [];
  const store: KeyValueStore = {
    async get(key, timeoutMs) {
      calls.push(`get ${key} ${timeoutMs}`);
      const deadline = Date.now() + timeoutMs;
      while (!values.has(key)) {
        if (Date.now() > deadline) {
          throw new DOMException(`no process put ${key} within ${timeoutMs} ms`, "TimeoutError");
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      return values.get(key)!;
    },
    put(key, value) {
      calls.push(`put ${key}`);
      values.set(key, value.slice());
    },
  };
  if (o.tryGet !== false) {
    store.tryGet = (key) => {
      calls.push(`tryGet ${key}`);
      return values.get(key);
    };
  }
  return { store, values, calls };
}

const rendezvous = (self: number, processes: number, timeoutMs: number) => ({
  fake_processes: processes,
  fake_devices: 1,
  fake_process_index: self,
  fake_kv_rendezvous: timeoutMs,
});

async function createError(o: Parameters<typeof PjrtClient.open>[0]): Promise<PjrtError> {
  try {
    using _client = await PjrtClient.open(o);
  } catch (e) {
    assert(e instanceof PjrtError, `expected PjrtError, got ${e}`);
    return e;
  }
  throw new Error("PjrtClient.open succeeded");
}

test("the plugin puts its key and gets the others' from its own thread", async () => {
  const { store, values, calls } = memoryStore();
  values.set("fake/node/0", nodeValue(0));
  values.set("fake/node/2", nodeValue(2));
  const before = fake!.live();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  // Node 2 "arrives" 150 ms after the plugin asks for it: the plugin's get waits for it while
  // this thread's loop runs on (counted from the ask, so a slow start does not count).
  values.delete("fake/node/2");
  let ticksAtAsk = -1;
  const get = store.get;
  store.get = (key, timeoutMs) => {
    if (key === "fake/node/2" && ticksAtAsk < 0) {
      ticksAtAsk = ticks;
      setTimeout(() => values.set("fake/node/2", nodeValue(2)), 150);
    }
    return get(key, timeoutMs);
  };
  try {
    using client = await PjrtClient.open({
      pluginPath: plugins!.full,
      log: quiet,
      keyValueStore: store,
      options: rendezvous(1, 3, 5_000),
    });
    assertEquals(client.processIndex, 1);
  } finally {
    clearInterval(timer);
  }
  assertEquals(fake!.lastRendezvous(), "put fake/node/1; try_get ok; got 0 2;");
  assertEquals(values.get("fake/node/1"), nodeValue(1), "binary bytes arrive unchanged");
  assertEquals(calls, [
    "put fake/node/1",
    "tryGet fake/absent/1",
    "tryGet fake/node/1",
    "get fake/node/0 5000",
    "get fake/node/2 5000",
  ]);
  assert(ticksAtAsk >= 0, "the plugin asked for node 2");
  const waited = ticks - ticksAtAsk;
  assert(waited >= 10, `only ${waited} timer ticks while the plugin waited for node 2`);
  assertEquals(fake!.live(), before, "the callback errors (try_get NOT_FOUND) were destroyed");
});

test("executeAsync leaves this thread free for a plugin that uses the store while launching", async () => {
  const { store, values } = memoryStore();
  values.set("fake/node/0", nodeValue(0));
  using client = await PjrtClient.open({
    pluginPath: plugins!.full,
    log: quiet,
    keyValueStore: store,
    options: { ...rendezvous(1, 2, 5_000), fake_kv_on_execute: 1 },
  });
  assert(client.hasKeyValueStore);
  using add = await client.compile("add");
  const f32 = (v: number) => ({ elementType: 11, dims: [1], data: new Float32Array([v]) });
  using x = await client.bufferFromHost(f32(1));
  using y = await client.bufferFromHost(f32(2));
  // Process 0 "puts the clique id" only after the launch has started waiting for it.
  setTimeout(() => values.set("fake/clique/7", new TextEncoder().encode("clique7")), 100);
  const [[z]] = await add.executeAsync([[x, y]], { launchId: 7 });
  using _z = z;
  assertEquals([...new Float32Array((await z.toHost()).data.buffer)], [3]);
  assertEquals(fake!.lastRendezvous(), "put fake/node/1; try_get ok; got 0; exec 7 got;");
});

test("without tryGet the callback is not given; a synchronous store works", async () => {
  const { store, values } = memoryStore({ tryGet: false });
  values.set("fake/node/0", nodeValue(0));
  using _client = await PjrtClient.open({
    pluginPath: plugins!.full,
    log: quiet,
    keyValueStore: { get: (k) => values.get(k)!, put: (k, v) => void store.put(k, v) },
    options: rendezvous(1, 2, 1_000),
  });
  assertEquals(fake!.lastRendezvous(), "put fake/node/1; got 0;");
});

test("a get that times out fails the create with DEADLINE_EXCEEDED, not a hang", async () => {
  const { store } = memoryStore();
  const t0 = performance.now();
  const e = await createError({
    pluginPath: plugins!.full,
    log: quiet,
    keyValueStore: store,
    options: rendezvous(1, 2, 300),
  });
  const ms = performance.now() - t0;
  assertEquals(e.codeName, "DEADLINE_EXCEEDED");
  assertEquals(
    e.pluginMessage,
    'fake rendezvous: fake/node/0: kv get "fake/node/0": no process put fake/node/0 within 300 ms',
  );
  assert(ms < 3_000, `the timeout took ${ms} ms`);
});

test("a store error reaches the plugin through callback_error", async () => {
  const e = await createError({
    pluginPath: plugins!.full,
    log: quiet,
    keyValueStore: {
      get: () => new Uint8Array(),
      put: () => Promise.reject(new Error("coordinator 10.0.0.1:8476 refused the connection")),
    },
    options: rendezvous(0, 2, 300),
  });
  assertEquals(e.codeName, "UNKNOWN");
  assertEquals(
    e.pluginMessage,
    'fake rendezvous: put: kv put "fake/node/0": coordinator 10.0.0.1:8476 refused the connection',
  );
});

test("a plugin that needs the callbacks says so when none are given", async () => {
  const e = await createError({
    pluginPath: plugins!.full,
    log: quiet,
    options: rendezvous(0, 2, 300),
  });
  assertEquals(e.pluginMessage, "fake plugin: fake_kv_rendezvous needs the kv callbacks");
});
