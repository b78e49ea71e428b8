/**
 * The PJRT key-value rendezvous across processes: P Deno processes (process 0 serving the
 * coordinator's store on 127.0.0.1) each create a fake-plugin client whose kv callbacks reach
 * that store through pjrt/kv_bridge.ts; the fake puts its own key and gets every other one, as
 * the CUDA plugin does across hosts.
 */
import { assert, assertEquals } from "../../assert.ts";
import { buildFakePlugins } from "../../ffi/fake_plugin/build.ts";
import { pjrtKeyValueStore } from "../../../lib/backend/pjrt/kv_bridge.ts";

const CHILD = new URL("./kv_child.ts", import.meta.url).pathname;
const plugins = await buildFakePlugins({ full: [] });

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `pjrt kv: ${name}`, ignore: plugins === null, fn });
}

for (const P of [2, 3]) {
  test(`${P} processes complete the rendezvous through process 0's store`, async () => {
    const port = freePort();
    const outs = await Promise.all(
      Array.from({ length: P }, (_, i) => runChild(i, P, port, 15_000)),
    );
    outs.forEach((o, i) => {
      assertEquals(o.code, 0, `process ${i}: ${o.stdout} ${o.stderr}`);
      const others = Array.from({ length: P }, (_, p) => p).filter((p) => p !== i);
      assertEquals(JSON.parse(o.stdout), {
        rendezvous: `put fake/node/${i}; try_get ok; got ${others.join(" ")}; exec 0 ` +
          (i === 0 ? "put;" : "got;"),
        replicas: P,
        value: [2, 4],
      });
    });
  });
}

test("a peer that never comes gives a clear timeout error, not a hang", async () => {
  const t0 = performance.now();
  const o = await runChild(0, 2, freePort(), 500);
  const ms = performance.now() - t0;
  assertEquals(o.code, 1, o.stderr);
  assertEquals(JSON.parse(o.stdout), {
    error: "PJRT_Client_Create failed (DEADLINE_EXCEEDED): fake rendezvous: fake/node/1: kv " +
      'get "fake/node/1": kv get pjrt/fake/node/1: no process put it within 500 ms',
  });
  assert(ms < 20_000, `took ${ms} ms`);
});

Deno.test("pjrt kv: the bridge carries binary values as text under pjrt/ keys", async () => {
  const text = new Map<string, string>();
  const store = pjrtKeyValueStore({
    get: (key) => {
      const v = text.get(key);
      if (v !== undefined) return Promise.resolve(v);
      return Promise.reject(Object.assign(new Error(`${key} missing`), { name: "TimeoutError" }));
    },
    put: (key, value) => Promise.resolve(void text.set(key, value)),
  });
  const big = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 31) & 255);
  await store.put("nccl/id", big);
  assertEquals([...text.keys()], ["pjrt/nccl/id"]);
  assertEquals(await store.get("nccl/id", 10), big);
  assertEquals(await store.tryGet!("nccl/id"), big);
  assertEquals(await store.tryGet!("absent"), undefined);
});

async function runChild(index: number, processes: number, port: number, timeoutMs: number) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CHILD,
      plugins!.full,
      String(processes),
      String(index),
      String(port),
      String(timeoutMs),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
