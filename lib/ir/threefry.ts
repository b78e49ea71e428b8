/**
 * Threefry2x32 with 20 rounds (Random123; the generator JAX uses), on plain numbers.
 * This is the host reference; the traced version in random.ts builds the same rounds from u32 ops
 * so that every backend draws the same bits.
 */
export function threefry2x32(
  k0: number,
  k1: number,
  c0: number,
  c1: number,
): [number, number] {
  const ks = [k0 >>> 0, k1 >>> 0, (k0 ^ k1 ^ 0x1bd11bda) >>> 0];
  let x0 = (c0 + ks[0]) >>> 0;
  let x1 = (c1 + ks[1]) >>> 0;
  for (let group = 0; group < 5; group++) {
    const rot = group % 2 === 0 ? ROTATIONS_A : ROTATIONS_B;
    for (const r of rot) {
      x0 = (x0 + x1) >>> 0;
      x1 = ((x1 << r) | (x1 >>> (32 - r))) >>> 0;
      x1 = (x1 ^ x0) >>> 0;
    }
    x0 = (x0 + ks[(group + 1) % 3]) >>> 0;
    x1 = (x1 + ks[(group + 2) % 3] + group + 1) >>> 0;
  }
  return [x0, x1];
}

/** Rotation constants of the two alternating groups of four rounds. */
export const ROTATIONS_A = [13, 15, 26, 6] as const;
export const ROTATIONS_B = [17, 29, 16, 24] as const;
