/**
 * How ffi/kv_worker.ts (which owns the key-value callbacks the plugin calls) and the main
 * thread (which owns the store) talk. The worker posts a request and blocks in `Atomics.wait`
 * on `ctrl`; the main thread answers through `ctrl` and the growable `data` buffer.
 */

/** `ctrl` (Int32Array) slots. */
export const STATE = 0; // 0 while waiting, 1 once answered
export const STATUS = 1; // Status below
export const CODE = 2; // PJRT_Error_Code when STATUS is ERROR
export const LENGTH = 3; // bytes of the value (or UTF-8 error message) in `data`
export const ID = 4; // the request being answered
export const CTRL_BYTES = 32;

export const Status = { OK: 0, NOT_FOUND: 1, ERROR: 2 } as const;

/** `data` starts at this size and grows up to the maximum value the bridge carries. */
export const DATA_INITIAL_BYTES = 64 * 1024;
export const DATA_MAX_BYTES = 64 * 1024 * 1024;

export type KvRequest =
  | { id: number; op: "get"; key: string; timeoutMs: number }
  | { id: number; op: "tryGet"; key: string }
  | { id: number; op: "put"; key: string; value: Uint8Array };

/** The worker's first message: its callbacks (as addresses) and the shared buffers. */
export interface KvReady {
  get: bigint;
  put: bigint;
  tryGet: bigint;
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
}
