/**
 * A job's string key-value store (process 0's coordinator, lib/train/distributed.ts) as the
 * byte store a PJRT plugin gets at client creation (ffi/kv_callbacks.ts). Values travel as
 * base64, since plugin values are binary (NCCL ids) and the coordinator's are text; keys get a
 * "pjrt/" prefix so that they never meet the job's own keys.
 */
import type { KeyValueStore } from "../../../ffi/kv_callbacks.ts";

/** The coordinator's store, as structure (backends import no train code). */
export interface StringKeyValueStore {
  /** Throws an error named "TimeoutError" when no process put `key` within `timeoutMs`. */
  get(key: string, timeoutMs: number): Promise<string>;
  put(key: string, value: string): Promise<void>;
}

export function pjrtKeyValueStore(store: StringKeyValueStore): KeyValueStore {
  const prefixed = (key: string) => `pjrt/${key}`;
  return {
    get: async (key, timeoutMs) => fromBase64(await store.get(prefixed(key), timeoutMs)),
    put: (key, value) => store.put(prefixed(key), toBase64(value)),
    tryGet: async (key) => {
      try {
        return fromBase64(await store.get(prefixed(key), 0));
      } catch (e) {
        if (e instanceof Error && e.name === "TimeoutError") return undefined;
        throw e;
      }
    },
  };
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
