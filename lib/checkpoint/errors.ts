/**
 * Errors raised while reading or writing checkpoints. The message always names the file (or
 * "<bytes>" for in-memory input) and, when known, the key inside it.
 */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    readonly problem: string,
  ) {
    super(`${file}${key ? `: key "${key}"` : ""}: ${problem}`);
    this.name = "CheckpointError";
  }
}

/** A read ran past the end of the input: a truncated file. */
export class TruncatedError extends Error {
  constructor(readonly position: number, readonly wanted: number) {
    super(
      `unexpected end of data at byte ${position} (wanted ${wanted} more bytes): truncated file?`,
    );
    this.name = "TruncatedError";
  }
}

/** An error about one key of a tree, before the file it belongs to is known. */
export class KeyedError extends Error {
  constructor(readonly key: string, message: string) {
    super(message);
    this.name = "KeyedError";
  }
}

/** Rewraps any error as a CheckpointError naming `file` and `key`; CheckpointErrors pass through. */
export function asCheckpointError(e: unknown, file: string, key?: string): CheckpointError {
  if (e instanceof CheckpointError) return e;
  if (e instanceof Deno.errors.NotFound) return new CheckpointError(file, key, "file not found");
  if (e instanceof KeyedError) return new CheckpointError(file, e.key, e.message);
  const message = e instanceof Error ? e.message : String(e);
  return new CheckpointError(file, key, message);
}
