/**
 * Size-bucketed pool of storage buffers. Sizes round up to a bucket (powers of two up to 4 KiB,
 * then four buckets per octave, so at most 25% is wasted); released buffers wait in their
 * bucket for the next request of that size. Reuse is safe without waiting for the GPU: the
 * queue runs submissions in order.
 */

export interface PooledBuffer {
  readonly id: number;
  readonly buffer: GPUBuffer;
  /** Bucket size in bytes (>= the requested size). */
  readonly size: number;
}

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class BufferPool {
  readonly #device: GPUDevice;
  readonly #free = new Map<number, PooledBuffer[]>();
  #nextId = 1;
  #freeBytes = 0;
  /** Bytes of all live buffers (in use or waiting in the pool). */
  allocatedBytes = 0;
  /** Idle bytes kept before the largest idle buffers are destroyed. */
  maxIdleBytes: number;

  constructor(device: GPUDevice, maxIdleBytes = 1 << 30) {
    this.#device = device;
    this.maxIdleBytes = maxIdleBytes;
  }

  /**
   * A buffer of at least `bytes`: the bucket's size, or with `exact` the size rounded to 16
   * bytes (the planned slots of an executable, held for its lifetime, waste nothing).
   */
  acquire(bytes: number, exact = false): PooledBuffer {
    const size = exact ? Math.max(16, Math.ceil(bytes / 16) * 16) : bucketSize(bytes);
    const list = this.#free.get(size);
    if (list?.length) {
      this.#freeBytes -= size;
      return list.pop()!;
    }
    const buffer = this.#device.createBuffer({ size, usage: USAGE });
    this.allocatedBytes += size;
    return { id: this.#nextId++, buffer, size };
  }

  release(b: PooledBuffer): void {
    let list = this.#free.get(b.size);
    if (!list) this.#free.set(b.size, list = []);
    list.push(b);
    this.#freeBytes += b.size;
    if (this.#freeBytes > this.maxIdleBytes) this.trim(this.maxIdleBytes / 2);
  }

  /** Destroys idle buffers, largest first, until at most `keepBytes` stay idle. */
  trim(keepBytes = 0): void {
    const sizes = [...this.#free.keys()].sort((a, b) => b - a);
    for (const s of sizes) {
      const list = this.#free.get(s)!;
      while (list.length && this.#freeBytes > keepBytes) {
        list.pop()!.buffer.destroy();
        this.#freeBytes -= s;
        this.allocatedBytes -= s;
      }
    }
  }

  dispose(): void {
    this.trim(0);
  }
}

/** The bucket a request of `bytes` falls in. */
export function bucketSize(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes));
  if (b <= 4096) return 2 ** Math.ceil(Math.log2(b));
  const step = 2 ** (Math.floor(Math.log2(b)) - 2);
  return Math.ceil(b / step) * step;
}
