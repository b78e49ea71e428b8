/**
 * Pull parsers written once as generators, driven either over bytes in memory (sync) or over a
 * file read in pieces (async), so that a multi-gigabyte checkpoint is never held twice.
 *
 * A parser yields requests: `{ n }` asks for the next n bytes (the answer is a view that stays
 * valid only until the next request); `{ into }` asks to fill a caller-owned buffer.
 */
import { TruncatedError } from "./errors.ts";

export type ReadRequest = { n: number; into?: undefined } | { into: Uint8Array; n?: undefined };
export type Parser<T> = Generator<ReadRequest, T, Uint8Array>;

/** Tracks how far a parser has read; shared with the parser for offsets in error messages. */
export interface Cursor {
  position: number;
}

/** Runs `parser` over `bytes`; the caller checks `cursor.position` for trailing bytes. */
export function runSync<T>(
  parser: Parser<T>,
  bytes: Uint8Array,
  cursor: Cursor = { position: 0 },
): T {
  let step = parser.next();
  while (!step.done) {
    const req = step.value;
    const want = req.into ? req.into.length : req.n!;
    if (cursor.position + want > bytes.length) {
      throw new TruncatedError(cursor.position, want - (bytes.length - cursor.position));
    }
    const view = bytes.subarray(cursor.position, cursor.position + want);
    cursor.position += want;
    if (req.into) {
      req.into.set(view);
      step = parser.next(req.into);
    } else {
      step = parser.next(view);
    }
  }
  return step.value;
}

/**
 * Runs `parser` over an open file, reading through a 1 MiB buffer. `trailing` tells whether the
 * file has bytes after the parsed value.
 */
export async function runAsync<T>(
  parser: Parser<T>,
  file: Deno.FsFile,
  cursor: Cursor = { position: 0 },
): Promise<{ value: T; trailing: boolean }> {
  const reader = new BufferedReader(file);
  let step = parser.next();
  while (!step.done) {
    const req = step.value;
    let answer: Uint8Array;
    if (req.into) {
      await reader.readInto(req.into, cursor.position);
      answer = req.into;
    } else {
      answer = await reader.take(req.n!, cursor.position);
    }
    cursor.position += answer.length;
    step = parser.next(answer);
  }
  return { value: step.value, trailing: !(await reader.atEnd()) };
}

/** Reads exactly n bytes. */
export function* readBytes(n: number): Parser<Uint8Array> {
  return yield { n };
}

export function* readU8(): Parser<number> {
  return (yield { n: 1 })[0];
}

export function* readU16(): Parser<number> {
  const b = yield { n: 2 };
  return (b[0] << 8) | b[1];
}

export function* readU32(): Parser<number> {
  const b = yield { n: 4 };
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

class BufferedReader {
  #buf = new Uint8Array(1 << 20);
  #start = 0;
  #end = 0;
  #eof = false;

  constructor(private file: Deno.FsFile) {}

  /** Next n bytes as a view into the buffer (valid until the next call). */
  async take(n: number, position: number): Promise<Uint8Array> {
    if (this.#end - this.#start < n) {
      if (n > this.#buf.length) {
        const bigger = new Uint8Array(n);
        bigger.set(this.#buf.subarray(this.#start, this.#end));
        this.#end -= this.#start;
        this.#start = 0;
        this.#buf = bigger;
      } else {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      while (this.#end < n) {
        const got = this.#eof ? null : await this.file.read(this.#buf.subarray(this.#end));
        if (got === null) {
          this.#eof = true;
          throw new TruncatedError(position, n - this.#end);
        }
        this.#end += got;
      }
    }
    const view = this.#buf.subarray(this.#start, this.#start + n);
    this.#start += n;
    return view;
  }

  /** Fills dst: from the buffer first, then straight from the file (no extra copy). */
  async readInto(dst: Uint8Array, position: number): Promise<void> {
    const buffered = Math.min(dst.length, this.#end - this.#start);
    dst.set(this.#buf.subarray(this.#start, this.#start + buffered));
    this.#start += buffered;
    let filled = buffered;
    while (filled < dst.length) {
      const got = this.#eof ? null : await this.file.read(dst.subarray(filled));
      if (got === null) {
        this.#eof = true;
        throw new TruncatedError(position + filled, dst.length - filled);
      }
      filled += got;
    }
  }

  /** True if nothing is left to read. */
  async atEnd(): Promise<boolean> {
    if (this.#end > this.#start) return false;
    if (this.#eof) return true;
    this.#start = this.#end = 0;
    const got = await this.file.read(this.#buf);
    if (got === null) {
      this.#eof = true;
      return true;
    }
    this.#end = got;
    return false;
  }
}
