/**
 * A small WebAssembly binary emitter: enough to write the CPU backend's SIMD kernels from
 * TypeScript (there is no wat compiler in the toolchain). Functions are built with structured
 * helpers (`block`, `loop`, `forRange`) so that the kernels read like code, not bytes.
 */

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";

export interface Local {
  readonly index: number;
  readonly type: ValType;
}

/** Opcodes used by the kernels (single byte ones, plus 0xfd-prefixed SIMD ones in `SIMD`). */
export const OP = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  return: 0x0f,
  drop: 0x1a,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  f32Load: 0x2a,
  f64Load: 0x2b,
  i32Store: 0x36,
  f32Store: 0x38,
  f64Store: 0x39,
  i32Const: 0x41,
  f32Const: 0x43,
  f64Const: 0x44,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GtS: 0x4a,
  i32LeS: 0x4c,
  i32GeS: 0x4e,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32And: 0x71,
  i32Shl: 0x74,
  i32ShrU: 0x76,
  i32Or: 0x72,
  f32Eq: 0x5b,
  f32Ne: 0x5c,
  f32Lt: 0x5d,
  f32Gt: 0x5e,
  f32Le: 0x5f,
  f32Ge: 0x60,
  f32Neg: 0x8c,
  f32Sqrt: 0x91,
  f32Add: 0x92,
  f32Sub: 0x93,
  f32Mul: 0x94,
  f32Div: 0x95,
  f64Sqrt: 0x9f,
  f64Add: 0xa0,
  f64Mul: 0xa2,
  f64Div: 0xa3,
  f32DemoteF64: 0xb6,
  f64PromoteF32: 0xbb,
} as const;

export const SIMD = {
  v128Load: 0x00,
  v128Load32Splat: 0x09,
  v128Store: 0x0b,
  v128Const: 0x0c,
  i8x16Shuffle: 0x0d,
  f32x4Splat: 0x13,
  f64x2Splat: 0x14,
  i32x4Splat: 0x11,
  f32x4ExtractLane: 0x1f,
  f32x4ReplaceLane: 0x20,
  f32x4Eq: 0x41,
  f32x4Ne: 0x42,
  f32x4Lt: 0x43,
  f32x4Gt: 0x44,
  f32x4Le: 0x45,
  f32x4Ge: 0x46,
  v128Not: 0x4d,
  v128Or: 0x50,
  v128Bitselect: 0x52,
  f32x4DemoteF64x2Zero: 0x5e,
  f64x2PromoteLowF32x4: 0x5f,
  f32x4Neg: 0xe1,
  f32x4Sqrt: 0xe3,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
  f64x2Sqrt: 0xef,
  f64x2Div: 0xf3,
  f32x4RelaxedMadd: 0x105,
} as const;

const TYPE_CODE: Record<ValType, number> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
};

/** One function body under construction. Parameters are locals 0..n-1. */
export class FuncBuilder {
  readonly params: Local[];
  readonly #locals: ValType[] = [];
  readonly #code: number[] = [];
  readonly #prologue: number[] = [];
  readonly #consts = new Map<string, Local>();

  constructor(readonly name: string, params: ValType[], readonly results: ValType[] = []) {
    this.params = params.map((type, index) => ({ index, type }));
  }

  local(type: ValType): Local {
    const index = this.params.length + this.#locals.length;
    this.#locals.push(type);
    return { index, type };
  }

  /**
   * A v128 local holding the 16 given bytes, set once at function entry: loops then read a
   * register instead of rematerializing the constant every iteration.
   */
  constV128(bytes: readonly number[]): Local {
    const key = bytes.join(",");
    let l = this.#consts.get(key);
    if (!l) {
      l = this.local("v128");
      this.#prologue.push(0xfd, ...uleb(SIMD.v128Const), ...bytes, OP.localSet, ...uleb(l.index));
      this.#consts.set(key, l);
    }
    return l;
  }
  /** Pushes f64x2 (v, v) from a hoisted constant. */
  f64x2(v: number): this {
    return this.get(this.constV128([...new Uint8Array(Float64Array.of(v, v).buffer)]));
  }
  /** Pushes f32x4 (v, v, v, v) from a hoisted constant. */
  f32x4(v: number): this {
    return this.get(this.constV128([...new Uint8Array(Float32Array.of(v, v, v, v).buffer)]));
  }
  /** Pushes a v128 of raw bytes from a hoisted constant. */
  v128(bytes: readonly number[]): this {
    return this.get(this.constV128(bytes));
  }

  /** Raw bytes: an opcode and its immediates. */
  emit(...bytes: number[]): this {
    this.#code.push(...bytes);
    return this;
  }

  get(l: Local): this {
    return this.emit(OP.localGet, ...uleb(l.index));
  }
  set(l: Local): this {
    return this.emit(OP.localSet, ...uleb(l.index));
  }
  tee(l: Local): this {
    return this.emit(OP.localTee, ...uleb(l.index));
  }
  i32(v: number): this {
    return this.emit(OP.i32Const, ...sleb(v | 0));
  }
  op(code: number): this {
    return this.emit(code);
  }
  /** A 0xfd-prefixed SIMD instruction. */
  simd(code: number, ...imm: number[]): this {
    return this.emit(0xfd, ...uleb(code), ...imm);
  }
  /** `f32.const v` (v rounded to f32). */
  f32(v: number): this {
    return this.emit(OP.f32Const, ...new Uint8Array(Float32Array.of(v).buffer));
  }
  /** `f64.const v`. */
  f64(v: number): this {
    return this.emit(OP.f64Const, ...new Uint8Array(Float64Array.of(v).buffer));
  }
  /** A load/store with its memarg (`align` as log2 bytes, byte `offset`). */
  mem(code: number, align: number, offset = 0): this {
    return this.emit(code, align, ...uleb(offset));
  }
  simdMem(code: number, align: number, offset = 0): this {
    return this.simd(code, align, ...uleb(offset));
  }

  /** `local = local + v` for an i32 local. */
  addTo(l: Local, v: number | Local): this {
    this.get(l);
    if (typeof v === "number") this.i32(v);
    else this.get(v);
    return this.op(OP.i32Add).set(l);
  }

  block(body: () => void): this {
    this.emit(OP.block, 0x40);
    body();
    return this.emit(OP.end);
  }
  loop(body: () => void): this {
    this.emit(OP.loop, 0x40);
    body();
    return this.emit(OP.end);
  }
  /** `if (cond on stack) { then } else { otherwise }`. */
  ifElse(then: () => void, otherwise?: () => void): this {
    this.emit(OP.if, 0x40);
    then();
    if (otherwise) {
      this.emit(OP.else);
      otherwise();
    }
    return this.emit(OP.end);
  }

  /**
   * `for (i = start; i < end; i += step) body()` over i32 locals; `end` is re-read each
   * iteration. The body runs at least zero times (the guard is checked first).
   */
  forRange(i: Local, start: number | Local, end: number | Local, step: number, body: () => void) {
    const push = (v: number | Local) => (typeof v === "number" ? this.i32(v) : this.get(v));
    push(start);
    this.set(i);
    this.block(() => {
      this.get(i);
      push(end);
      this.op(OP.i32GeS).emit(OP.brIf, 0);
      this.loop(() => {
        body();
        this.addTo(i, step);
        this.get(i);
        push(end);
        this.op(OP.i32LtS).emit(OP.brIf, 0);
      });
    });
    return this;
  }

  /** The encoded body (locals + code + end) for the code section. */
  encode(): number[] {
    const groups: [number, ValType][] = [];
    for (const t of this.#locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const body = [
      ...uleb(groups.length),
      ...groups.flatMap(([n, t]) => [...uleb(n), TYPE_CODE[t]]),
      ...this.#prologue,
      ...this.#code,
      OP.end,
    ];
    return [...uleb(body.length), ...body];
  }
}

/**
 * A module importing one memory (`env.memory`, shared when `shared`) and exporting each
 * function by name.
 */
export function buildModule(
  funcs: FuncBuilder[],
  memory: { minPages: number; maxPages: number; shared: boolean },
): Uint8Array<ArrayBuffer> {
  const types: number[][] = funcs.map((f) => [
    0x60,
    ...uleb(f.params.length),
    ...f.params.map((p) => TYPE_CODE[p.type]),
    ...uleb(f.results.length),
    ...f.results.map((t) => TYPE_CODE[t]),
  ]);
  const importEntry = [
    ...name("env"),
    ...name("memory"),
    0x02,
    memory.shared ? 0x03 : 0x01,
    ...uleb(memory.minPages),
    ...uleb(memory.maxPages),
  ];
  const exports = funcs.flatMap((f, i) => [...name(f.name), 0x00, ...uleb(i)]);
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [...uleb(types.length), ...types.flat()]),
    ...section(2, [1, ...importEntry]),
    ...section(3, [...uleb(funcs.length), ...funcs.flatMap((_, i) => uleb(i))]),
    ...section(7, [...uleb(funcs.length), ...exports]),
    ...section(10, [...uleb(funcs.length), ...funcs.flatMap((f) => f.encode())]),
  ];
  return new Uint8Array(bytes);
}

export function uleb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

export function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function name(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...uleb(b.length), ...b];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}
