// AssemblyScript source of the SIMD resampling kernels (lib/augment/wasm/resample_wasm.ts holds
// the compiled module; rebuild with `deno run -A scripts/gen/build_augment_wasm.ts`).
//
// Both kernels implement one pass of Pillow's fixed-point convolution (Resample.c): the sum
// starts at 1 << 21, adds byte * coefficient (22-bit fixed point) over the taps, and the result
// is (sum >> 22) clamped to [0, 255]. Integer sums do not depend on their order, so the lanes
// below give exactly Pillow's values.
//
// Memory is laid out by the caller; inputs must be readable 16 bytes past their end and outputs
// writable 16 bytes past theirs (the kernels touch, but never use, those bytes).

// Horizontal pass over `rows` rows of interleaved RGB (`stride` bytes apart): for each output
// pixel xx, taps bounds[2xx + 1] pixels from pixel bounds[2xx] with coefficients kk[xx * ksize..].
export function hpass(
  src: usize, stride: i32, rows: i32, outW: i32,
  bounds: usize, kk: usize, ksize: i32, out: usize,
): void {
  const half = i32x4.splat(1 << 21);
  for (let y = 0; y < rows; y++) {
    const rowBase = src + <usize>(y * stride);
    let o = out + <usize>(y * outW * 3);
    for (let xx = 0; xx < outW; xx++) {
      const xmin = load<i32>(bounds + (<usize>xx << 3));
      const n = load<i32>(bounds + (<usize>xx << 3) + 4);
      let p = rowBase + <usize>(xmin * 3);
      let k = kk + <usize>(xx * ksize * 4);
      let acc = half;
      for (let i = 0; i < n; i++) {
        // One pixel (R, G, B and a spare byte) widened to four i32 lanes.
        const px = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p)));
        acc = i32x4.add(acc, i32x4.mul(px, i32x4.splat(load<i32>(k))));
        p += 3;
        k += 4;
      }
      const s = i32x4.shr_s(acc, 22);
      const b = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(s, s), i16x8.splat(0));
      // Four bytes written; the fourth is overwritten by the next pixel (or lands in padding).
      v128.store32_lane(o, b, 0);
      o += 3;
    }
  }
}

// Vertical pass: output row yy is the sum over taps t < bounds[2yy + 1] of source row
// bounds[2yy] + t (`stride` bytes apart) times kk[yy * ksize + t]; rows are `rowLen` bytes.
// Sixteen bytes are done at a time; a last partial strip spills into the next row's start, which
// is computed afterwards, or into the output's padding.
export function vpass(
  src: usize, stride: i32, rowLen: i32, outH: i32,
  bounds: usize, kk: usize, ksize: i32, out: usize,
): void {
  const half = i32x4.splat(1 << 21);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = load<i32>(bounds + (<usize>yy << 3));
    const n = load<i32>(bounds + (<usize>yy << 3) + 4);
    const kb = kk + <usize>(yy * ksize * 4);
    const base = src + <usize>(ymin * stride);
    const orow = out + <usize>(yy * rowLen);
    for (let j = 0; j < rowLen; j += 16) {
      let a0 = half, a1 = half, a2 = half, a3 = half;
      let p = base + <usize>j;
      for (let t = 0; t < n; t++) {
        const v = v128.load(p);
        const w = i32x4.splat(load<i32>(kb + (<usize>t << 2)));
        const lo = i16x8.extend_low_i8x16_u(v);
        const hi = i16x8.extend_high_i8x16_u(v);
        a0 = i32x4.add(a0, i32x4.mul(i32x4.extend_low_i16x8_u(lo), w));
        a1 = i32x4.add(a1, i32x4.mul(i32x4.extend_high_i16x8_u(lo), w));
        a2 = i32x4.add(a2, i32x4.mul(i32x4.extend_low_i16x8_u(hi), w));
        a3 = i32x4.add(a3, i32x4.mul(i32x4.extend_high_i16x8_u(hi), w));
        p += <usize>stride;
      }
      const n01 = i16x8.narrow_i32x4_s(i32x4.shr_s(a0, 22), i32x4.shr_s(a1, 22));
      const n23 = i16x8.narrow_i32x4_s(i32x4.shr_s(a2, 22), i32x4.shr_s(a3, 22));
      v128.store(orow + <usize>j, i8x16.narrow_i16x8_u(n01, n23));
    }
  }
}
