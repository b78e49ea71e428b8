/**
 * TensorBoard event files: `events.out.tfevents.TIME.HOST.PID.N` in the run's output directory,
 * written as the run goes, so that `tensorboard --logdir runs/` shows a run like any other.
 *
 * The format is TensorFlow's: a TFRecord file (each record: uint64 length, masked CRC32C of the
 * length, the bytes, masked CRC32C of the bytes; little-endian) of `Event` protos
 * (tensorflow/core/util/event.proto). The first event holds `file_version: "brain.Event:2"`;
 * metrics are `Summary.Value.simple_value` scalars under the same names as `metrics.jsonl`, one
 * event per logged train row or eval; the config is a text summary (the `text` plugin's tensor of
 * one DT_STRING). A resumed run writes a new file that starts with `SessionLog.START` at its
 * first step: TensorBoard then drops what the old file holds at and after that step (written
 * after the last save, then lost with the kill), so no step shows twice.
 *
 * Every event is appended to the file at once (one small write), so a kill loses nothing that
 * was logged.
 */

/** The event file of one run session; `scalars` and `text` append at once. */
export class TensorBoardWriter {
  readonly path: string;
  #closed = false;

  /** Opens a new event file in `dir`; `resumeStep` > 0 marks a restart at that step. */
  constructor(dir: string, opts: { resumeStep?: number; wallTime?: number } = {}) {
    const now = opts.wallTime ?? Date.now() / 1000;
    Deno.mkdirSync(dir, { recursive: true });
    const base = `events.out.tfevents.${Math.floor(now)}.${hostname()}.${Deno.pid}`;
    let n = 0;
    while (exists(`${dir}/${base}.${n}`)) n++;
    this.path = `${dir}/${base}.${n}`;
    const first = [event({ wallTime: now, step: 0, fileVersion: "brain.Event:2" })];
    if (opts.resumeStep && opts.resumeStep > 0) {
      first.push(event({ wallTime: now, step: opts.resumeStep + 1, sessionStart: true }));
    }
    this.#append(first);
  }

  /** One event at `step` with every finite or non-finite number of `values` as a scalar. */
  scalars(step: number, values: Record<string, unknown>, wallTime = Date.now() / 1000): void {
    const tags = Object.entries(values).filter(([, v]) => typeof v === "number") as [
      string,
      number,
    ][];
    if (tags.length === 0) return;
    this.#append([event({ wallTime, step, scalars: tags })]);
  }

  /** A text summary (markdown, as TensorBoard's text plugin renders it) at `step`. */
  text(tag: string, markdown: string, step = 0, wallTime = Date.now() / 1000): void {
    this.#append([event({ wallTime, step, text: [tag, markdown] })]);
  }

  close(): void {
    this.#closed = true;
  }

  #append(events: Uint8Array[]): void {
    if (this.#closed) return;
    Deno.writeFileSync(this.path, concat(events.map(tfRecord)), { append: true });
  }
}

// ---- TFRecord framing ----

/** One TFRecord: length, its masked CRC32C, the data, its masked CRC32C. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as TFRecord uses it. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's mask: rotate right by 15 and add a constant (so CRCs of CRCs differ). */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

// ---- protobuf encoding of the few messages used ----

interface EventFields {
  wallTime: number;
  step: number;
  fileVersion?: string;
  sessionStart?: boolean;
  scalars?: [string, number][];
  text?: [string, string];
}

/** tensorflow.Event: wall_time = 1 (double), step = 2 (int64), file_version = 3,
 * summary = 5, session_log = 7. */
function event(f: EventFields): Uint8Array {
  const parts: Uint8Array[] = [fieldDouble(1, f.wallTime), fieldVarint(2, f.step)];
  if (f.fileVersion !== undefined) parts.push(fieldBytes(3, utf8(f.fileVersion)));
  if (f.scalars || f.text) {
    // Summary: repeated Value value = 1. Value: tag = 1, simple_value = 2 (float),
    // tensor = 8 (TensorProto), metadata = 9 (SummaryMetadata).
    const values = (f.scalars ?? []).map(([tag, v]) =>
      fieldBytes(1, concat([fieldBytes(1, utf8(tag)), fieldFloat(2, v)]))
    );
    if (f.text) {
      const [tag, text] = f.text;
      // SummaryMetadata.plugin_data (1) = {plugin_name (1): "text"}.
      const metadata = fieldBytes(1, fieldBytes(1, utf8("text")));
      // TensorProto: dtype = 1 (DT_STRING = 7), tensor_shape = 2 (a scalar: empty),
      // string_val = 8.
      const tensor = concat([
        fieldVarint(1, 7),
        fieldBytes(2, new Uint8Array()),
        fieldBytes(8, utf8(text)),
      ]);
      values.push(
        fieldBytes(
          1,
          concat([fieldBytes(1, utf8(tag)), fieldBytes(8, tensor), fieldBytes(9, metadata)]),
        ),
      );
    }
    parts.push(fieldBytes(5, concat(values)));
  }
  // SessionLog: status = 1 (START = 1).
  if (f.sessionStart) parts.push(fieldBytes(7, fieldVarint(1, 1)));
  return concat(parts);
}

function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

function fieldVarint(field: number, n: number): Uint8Array {
  return new Uint8Array([...varint(field << 3), ...varint(Math.trunc(n))]);
}

function fieldDouble(field: number, x: number): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = (field << 3) | 1;
  new DataView(out.buffer).setFloat64(1, x, true);
  return out;
}

function fieldFloat(field: number, x: number): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = (field << 3) | 5;
  new DataView(out.buffer).setFloat32(1, x, true);
  return out;
}

function fieldBytes(field: number, data: Uint8Array): Uint8Array {
  return concat([new Uint8Array([...varint((field << 3) | 2), ...varint(data.length)]), data]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function hostname(): string {
  try {
    return Deno.hostname().replace(/[^A-Za-z0-9._-]/g, "_");
  } catch {
    return "localhost";
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
