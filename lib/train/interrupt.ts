/**
 * Interruption (SIGINT/SIGTERM): wherever the loop waits (for data, an evaluation batch), the
 * wait ends as soon as the signal fires, so that the state can be saved and the process can exit
 * within a cloud preemption's grace period.
 */
export class Interrupted extends Error {
  constructor() {
    super("interrupted");
    this.name = "Interrupted";
  }
}

/** `p`, or a rejection with Interrupted as soon as `signal` aborts (p is left running). */
export function unlessAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(new Interrupted());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      reject(new Interrupted());
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
