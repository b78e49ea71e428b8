/// <reference lib="deno.worker" />
/**
 * The heartbeat of a process of a multi-process job (distributed.ts, KvStore), in a worker of its
 * own: a long synchronous step on the main thread must not look like a hung process. It keeps one
 * request open to the coordinator's `/alive/<process>`, renewed as each is answered, until it is
 * terminated or the coordinator is gone.
 */
self.onmessage = async (e: MessageEvent<{ url: string }>) => {
  for (;;) {
    try {
      const r = await fetch(e.data.url);
      await r.body?.cancel();
    } catch {
      return; // the coordinator is gone: the main thread's own requests say so
    }
  }
};
