/**
 * A small pickle machine for PyTorch checkpoints. Reading runs the opcodes torch (protocols 2-5)
 * emits, with globals resolved through an allow-list, as `torch.load(weights_only=True)` does:
 * nothing in the file can run code, and `weightsOnlyGlobal` refuses any global outside torch's
 * own list (`pickle_globals.ts`), naming it. Writing emits protocol 2 as `torch.save` does.
 */
import { concat } from "./msgpack_encode.ts";
import { WEIGHTS_ONLY_GLOBALS } from "./pickle_globals.ts";

// Python 2 module names that protocol 2 writes (torch.save pickles `builtins.set` as
// `__builtin__ set`), mapped as torch's IMPORT_MAPPING does.
const IMPORT_MAPPING: Record<string, string> = { __builtin__: "builtins", copy_reg: "copyreg" };

/**
 * `module.name` when `torch.load(weights_only=True)` would resolve it; otherwise throws, naming
 * the global (`posix.system`, `builtins.eval`): such a file is refused, never partly read.
 */
export function weightsOnlyGlobal(module: string, name: string): string {
  const full = `${IMPORT_MAPPING[module] ?? module}.${name}`;
  if (!WEIGHTS_ONLY_GLOBALS.has(full)) {
    throw new Error(
      `the pickle uses the global ${full}, which torch.load(weights_only=True) does not allow ` +
        "(a checkpoint holds only tensors and plain values; this file may run code in Python)",
    );
  }
  return full;
}

/** A Python global (module + name) resolved by the caller. */
export interface PickleGlobal {
  module: string;
  name: string;
}

export interface UnpickleHooks {
  /** Resolves `module.name` to a callable (for REDUCE) or a marker value; throw to refuse. */
  findClass(module: string, name: string): unknown;
  /** Resolves a BINPERSID id (torch: the storage tuple). */
  persistentLoad(pid: unknown): unknown;
  /** Applies a callable from findClass to its arguments (REDUCE / NEWOBJ). */
  call(fn: unknown, args: unknown[]): unknown;
  /** BUILD: sets state on an object (torch: Parameter / tensor state); may return the object. */
  build?(obj: unknown, state: unknown): unknown;
}

/** Dicts read from a pickle: string keys in insertion order. */
export type PyDict = Map<unknown, unknown>;

/** Runs a pickle program and returns its result. */
export function unpickle(bytes: Uint8Array, hooks: UnpickleHooks): unknown {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const need = (n: number) => {
    if (p + n > bytes.length) throw new Error(`pickle truncated at byte ${p}`);
  };
  const u8 = () => (need(1), bytes[p++]);
  const u16 = () => (need(2), p += 2, v.getUint16(p - 2, true));
  const u32 = () => (need(4), p += 4, v.getUint32(p - 4, true));
  const i32 = () => (need(4), p += 4, v.getInt32(p - 4, true));
  const raw = (n: number) => (need(n), p += n, bytes.subarray(p - n, p));
  const str = (n: number) => DECODER.decode(raw(n));
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw new Error(`pickle truncated at byte ${p}`);
    const s = DECODER.decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) throw new Error(`pickle stack underflow at byte ${p}`);
    return stack.pop();
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) throw new Error(`pickle: no MARK at byte ${p}`);
    return stack.splice(m);
  };
  const top = () => stack[stack.length - 1];
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof Map)) throw new Error(`pickle: SETITEM on a non-dict at byte ${p}`);
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  };

  while (true) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        raw(8);
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(Object.freeze([]));
        break;
      case 0x74: // TUPLE
        stack.push(Object.freeze(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(Object.freeze([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push(Object.freeze([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push(Object.freeze([a, b, c]));
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: { // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x61: { // APPEND
        const x = pop();
        (top() as unknown[]).push(x);
        break;
      }
      case 0x65: { // APPENDS
        const xs = popMark();
        (top() as unknown[]).push(...xs);
        break;
      }
      case 0x73: { // SETITEM
        const val = pop(), key = pop();
        setItems(top(), [key, val]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x8a: { // LONG1
        const n = u8();
        stack.push(readLong(raw(n)));
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        p += 8;
        stack.push(v.getFloat64(p - 8, false));
        break;
      case 0x58: // BINUNICODE
        stack.push(str(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(u8()));
        break;
      case 0x8d: // BINUNICODE8
        need(8);
        p += 8;
        stack.push(str(Number(v.getBigUint64(p - 8, true))));
        break;
      case 0x42: // BINBYTES
        stack.push(raw(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(raw(u8()).slice());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw new Error(`pickle: memo ${k} unset at byte ${at}`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line(), name = line();
        stack.push(hooks.findClass(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        stack.push(hooks.findClass(String(module), String(name)));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(hooks.persistentLoad(pop()));
        break;
      case 0x52: { // REDUCE
        const args = pop(), fn = pop();
        stack.push(hooks.call(fn, args as unknown[]));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop(), cls = pop();
        stack.push(hooks.call(cls, args as unknown[]));
        break;
      }
      case 0x62: { // BUILD
        const state = pop(), obj = pop();
        if (!hooks.build) throw new Error(`pickle: BUILD not allowed at byte ${at}`);
        stack.push(hooks.build(obj, state));
        break;
      }
      default:
        throw new Error(`pickle: unsupported opcode 0x${op.toString(16)} at byte ${at}`);
    }
  }
}

/** Builds a protocol-2 pickle. */
export class PickleWriter {
  #parts: Uint8Array[] = [];
  #buf = new Uint8Array(1 << 16);
  #n = 0;

  constructor() {
    this.op(0x80, 2); // PROTO 2
  }

  op(...bytes: number[]): this {
    for (const b of bytes) this.#byte(b);
    return this;
  }

  mark(): this {
    return this.op(0x28);
  }

  /** GLOBAL module\nname\n */
  global(module: string, name: string): this {
    this.op(0x63);
    this.#bytes(ENCODER.encode(`${module}\n${name}\n`));
    return this;
  }

  str(s: string): this {
    const b = ENCODER.encode(s);
    this.op(0x58);
    this.#u32(b.length);
    this.#bytes(b);
    return this;
  }

  int(x: number): this {
    if (Number.isInteger(x) && x >= 0 && x < 0x100) return this.op(0x4b, x);
    if (Number.isInteger(x) && x >= 0 && x < 0x10000) return this.op(0x4d, x & 0xff, x >> 8);
    if (Number.isInteger(x) && x >= -0x80000000 && x <= 0x7fffffff) {
      this.op(0x4a);
      this.#u32(x >>> 0);
      return this;
    }
    const b = longBytes(BigInt(x));
    this.op(0x8a, b.length);
    this.#bytes(b);
    return this;
  }

  /** A tuple of already-pushed-by-callback items. */
  tuple(items: (() => void)[]): this {
    if (items.length === 0) return this.op(0x29);
    if (items.length <= 3) {
      items.forEach((f) => f());
      return this.op([0x85, 0x86, 0x87][items.length - 1]);
    }
    this.mark();
    items.forEach((f) => f());
    return this.op(0x74);
  }

  ints(xs: readonly number[]): this {
    return this.tuple(xs.map((x) => () => this.int(x)));
  }

  finish(): Uint8Array {
    this.op(0x2e); // STOP
    this.#flush();
    return concat(this.#parts);
  }

  #byte(b: number) {
    if (this.#n === this.#buf.length) this.#flush();
    this.#buf[this.#n++] = b;
  }

  #u32(x: number) {
    this.op(x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24);
  }

  #bytes(b: Uint8Array) {
    this.#flush();
    this.#parts.push(b);
  }

  #flush() {
    if (this.#n) this.#parts.push(this.#buf.slice(0, this.#n));
    this.#n = 0;
  }
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder("utf-8", { fatal: true });

/** Little-endian two's complement (pickle LONG1) to a number (or bigint beyond 2^53). */
function readLong(b: Uint8Array): number | bigint {
  let x = 0n;
  for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
  if (b.length && b[b.length - 1] & 0x80) x -= 1n << BigInt(8 * b.length);
  return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(x)
    : x;
}

function longBytes(x: bigint): Uint8Array {
  const out: number[] = [];
  let v = x;
  while (true) {
    const byte = Number(v & 0xffn);
    out.push(byte);
    v >>= 8n;
    if ((v === 0n && !(byte & 0x80)) || (v === -1n && byte & 0x80)) break;
  }
  return Uint8Array.from(out);
}
