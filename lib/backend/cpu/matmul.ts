/**
 * Batched f32 matmul: out[b] = a[b] (m x k) @ bm[b] (k x n), all row-major and contiguous.
 * i-k-j order over row blocks so the inner loop streams contiguous rows of `bm` and `out`;
 * accumulation in a Float64Array row keeps sums accurate.
 */
export function matmulF32(
  a: Float32Array,
  bm: Float32Array,
  batch: number,
  m: number,
  k: number,
  n: number,
): Float32Array {
  const out = new Float32Array(batch * m * n);
  const acc = new Float64Array(n);
  const KB = 256;
  for (let b = 0; b < batch; b++) {
    const aOff = b * m * k, bOff = b * k * n, oOff = b * m * n;
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      const aRow = aOff + i * k;
      for (let k0 = 0; k0 < k; k0 += KB) {
        const k1 = Math.min(k, k0 + KB);
        let p = k0;
        // Four rows of `bm` per pass halve the passes over `acc`.
        for (; p + 3 < k1; p += 4) {
          const a0 = a[aRow + p], a1 = a[aRow + p + 1], a2 = a[aRow + p + 2], a3 = a[aRow + p + 3];
          const r0 = bOff + p * n, r1 = r0 + n, r2 = r1 + n, r3 = r2 + n;
          for (let j = 0; j < n; j++) {
            acc[j] += a0 * bm[r0 + j] + a1 * bm[r1 + j] + a2 * bm[r2 + j] + a3 * bm[r3 + j];
          }
        }
        for (; p < k1; p++) {
          const av = a[aRow + p];
          const r = bOff + p * n;
          for (let j = 0; j < n; j++) acc[j] += av * bm[r + j];
        }
      }
      const o = oOff + i * n;
      for (let j = 0; j < n; j++) out[o + j] = acc[j];
    }
  }
  return out;
}
