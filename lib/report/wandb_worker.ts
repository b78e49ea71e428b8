/// <reference lib="deno.worker" />
/**
 * Hosts the W&B sender (wandb_sender.ts) on its own thread: its heartbeat, system metrics and
 * uploads keep going while the training loop's thread is busy (a compile, an evaluation, a long
 * step). Messages: `{kind: "init", init}`, then the sender's; answers `{kind: "say", line}` and,
 * to `finish`, `{kind: "finished", ok, unsent, dropped}`.
 */
import { type SenderInit, type SenderMessage, WandbSender } from "./wandb_sender.ts";

let sender: WandbSender | null = null;

self.onmessage = async (e: MessageEvent<SenderMessage | { kind: "init"; init: SenderInit }>) => {
  const msg = e.data;
  if (msg.kind === "init") {
    sender = new WandbSender(msg.init, (line) => self.postMessage({ kind: "say", line }));
    return;
  }
  const result = sender?.handle(msg);
  if (msg.kind === "finish") {
    self.postMessage({
      kind: "finished",
      ...(await result ?? { ok: false, unsent: 0, dropped: 0 }),
    });
  }
};
