/// <reference lib="deno.worker" />
/**
 * Loader worker entry: runs one producer (producer.ts) and posts its batches to the loader,
 * transferring the pixel buffers (no copy). It builds a batch only while it holds a credit; the
 * loader returns a credit for each batch it hands on, which bounds memory (backpressure).
 */
import { redact } from "../config/redact.ts";
import { watchPipeGroups } from "./open_pipe.ts";
import { type ProducerConfig, type ProducerMessage, runProducer } from "./producer.ts";

export type ToWorker =
  | { type: "start"; config: ProducerConfig; credits: number }
  | { type: "credit"; n: number };

export type FromWorker =
  | ProducerMessage
  | { type: "end" }
  | { type: "error"; message: string }
  // A pipe: command's process group started (live) or killed here: the loader kills the live
  // ones when it terminates this worker, since this worker then runs no code of its own.
  | { type: "pipe"; pid: number; live: boolean };

watchPipeGroups((pid, live) => self.postMessage({ type: "pipe", pid, live } satisfies FromWorker));

let credits = 0;
let wake: (() => void) | undefined;

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  if (msg.type === "start") {
    credits = msg.credits;
    run(msg.config);
  } else if (msg.type === "credit") {
    credits += msg.n;
    wake?.();
  }
};

async function run(config: ProducerConfig): Promise<void> {
  try {
    const producer = runProducer(config);
    for (;;) {
      while (credits <= 0) await new Promise<void>((r) => wake = r);
      const { value, done } = await producer.next();
      if (done) break;
      if (value.type === "stats") {
        self.postMessage(value);
        continue;
      }
      credits--;
      const { images, labels } = value.batch;
      self.postMessage(value, [images.buffer, labels.buffer] as Transferable[]);
    }
    self.postMessage({ type: "end" } satisfies FromWorker);
  } catch (e) {
    const message = redact(e instanceof Error ? e.message : String(e));
    self.postMessage({ type: "error", message } satisfies FromWorker);
  }
}
