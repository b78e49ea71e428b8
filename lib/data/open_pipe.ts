/**
 * `pipe:CMD` shards: the stdout of `sh -c CMD`, as webdataset runs them. Exit status 0, or 141
 * (killed by SIGPIPE after the reader stopped early), is success; anything else errors the
 * stream with the command, the status and the end of its stderr. A command that writes nothing
 * for `stallTimeoutMs` is killed.
 *
 * `sh` runs in a process group of its own, and stopping a shard kills the whole group: a command
 * such as `curl ... | tar ...` or `cat x.tar; sleep 60` leaves no child behind. Groups still
 * alive when the process exits are killed on `unload`.
 */
import { OpenError, type OpenOptions } from "./open_base.ts";

export function openPipe(
  command: string,
  options: OpenOptions,
  signal?: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const stallMs = options.stallTimeoutMs ?? 60_000;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("sh", {
      args: ["-c", command],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // A new process group (setsid), so that the command's children can be killed with it.
      detached: true,
    }).spawn();
  } catch (e) {
    return Promise.reject(
      new OpenError(`pipe:${command}: could not start sh (${(e as Error).message})`, true),
    );
  }
  const pid = child.pid;
  liveGroups.add(pid);
  const stderr = collectTail(child.stderr, 2000);
  const reader = child.stdout.getReader();
  let finished = false;
  const kill = () => {
    if (finished) return;
    finished = true;
    killGroup(pid);
  };
  signal?.addEventListener("abort", kill, { once: true });
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("stalled")), stallMs);
      });
      try {
        const r = await Promise.race([reader.read(), stalled]);
        if (!r.done) {
          controller.enqueue(r.value);
          return;
        }
      } catch (e) {
        kill();
        await child.status;
        const why = (e as Error).message === "stalled"
          ? `wrote nothing for ${stallMs} ms and was killed`
          : (e as Error).message;
        controller.error(new OpenError(`pipe:${command}: ${why}`, false));
        return;
      } finally {
        clearTimeout(timer);
      }
      const status = await child.status;
      // sh is done; whatever it started in the background goes with it.
      kill();
      if (status.code === 0 || status.code === 141) {
        controller.close();
      } else {
        const tail = (await stderr).trim();
        controller.error(
          new OpenError(
            `pipe:${command}: exited with status ${status.code}` +
              (tail ? `; stderr: ${tail}` : ""),
            true,
          ),
        );
      }
    },
    async cancel() {
      kill();
      await reader.cancel().catch(() => {});
      await child.status;
    },
  });
  return Promise.resolve(stream);
}

/** Process groups of running `pipe:` commands. */
const liveGroups = new Set<number>();
let unloadHooked = false;

function killGroup(pid: number): void {
  if (!unloadHooked) {
    unloadHooked = true;
    globalThis.addEventListener("unload", () => liveGroups.forEach(killGroup));
  }
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch {
    // the whole group already exited
  }
  liveGroups.delete(pid);
}

async function collectTail(stream: ReadableStream<Uint8Array>, max: number): Promise<string> {
  let tail = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) {
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-max);
    }
  } catch {
    // the process was killed
  }
  return tail;
}
