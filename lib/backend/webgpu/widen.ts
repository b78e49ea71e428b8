/**
 * Byte uploads widened on the device. u8 and bool tensors live as one u32 word per element
 * (`storage.ts`); widening an image batch on the host took 61 ms per 256 ViT images and sent
 * four times the bytes. Instead the bytes are written as they are, four to a word, into a
 * scratch buffer, and a kernel spreads them to words.
 */
import { grid } from "./codegen.ts";
import type { GpuContext } from "./device.ts";
import type { BufferPool, PooledBuffer } from "./pool.ts";
import { WORD } from "./storage.ts";

const WORKGROUP = 64;

// Each thread widens one packed word into (up to) four elements of the window bound as `out`.
const CODE = `
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<storage, read> packed: array<u32>;
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let w = gid.x + gid.y * nwg.x * ${WORKGROUP}u;
  let n = arrayLength(&out);
  if (w * 4u >= n) { return; }
  let v = packed[w];
  for (var j = 0u; j < 4u; j++) {
    if (w * 4u + j < n) { out[w * 4u + j] = (v >> (8u * j)) & 0xffu; }
  }
}`;

export class ByteWidener {
  readonly #ctx: GpuContext;
  #pipeline: GPUComputePipeline | undefined;

  constructor(ctx: GpuContext) {
    this.#ctx = ctx;
  }

  /** Uploads `bytes` into `dst` (one word per byte), recording and submitting the widening. */
  upload(bytes: Uint8Array, dst: PooledBuffer, pool: BufferPool): void {
    const { device, limits, tuning } = this.#ctx;
    const n = bytes.length;
    const padded = Math.ceil(n / 4) * 4;
    const scratch = pool.acquire(padded);
    const data = n === padded && bytes.buffer instanceof ArrayBuffer
      ? bytes as Uint8Array<ArrayBuffer>
      : (() => {
        const p = new Uint8Array(padded);
        p.set(bytes);
        return p;
      })();
    device.queue.writeBuffer(scratch.buffer, 0, data, 0, padded);
    this.#pipeline ??= device.createComputePipeline({
      label: "widen_u8",
      layout: "auto",
      compute: {
        module: device.createShaderModule({ code: CODE, label: "widen_u8" }),
        entryPoint: "main",
      },
    });
    // Windows of `span` elements: the output window (4 bytes each) fits one binding, and both
    // offsets (span x 4 bytes out, span bytes in) are aligned.
    const align = limits.minStorageBufferOffsetAlignment;
    const span = Math.floor(tuning.chunks.chunkBytes / WORD / align) * align;
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(this.#pipeline);
    for (let start = 0; start < n; start += span) {
      const count = Math.min(span, n - start);
      const bindGroup = device.createBindGroup({
        layout: this.#pipeline.getBindGroupLayout(0),
        entries: [
          {
            binding: 0,
            resource: { buffer: dst.buffer, offset: start * WORD, size: count * WORD },
          },
          {
            binding: 1,
            resource: { buffer: scratch.buffer, offset: start, size: Math.ceil(count / 4) * 4 },
          },
        ],
      });
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...grid(Math.ceil(count / 4 / WORKGROUP)));
    }
    pass.end();
    device.queue.submit([encoder.finish()]);
    // The queue runs in order: the next user of the scratch buffer writes after this pass.
    pool.release(scratch);
  }
}
