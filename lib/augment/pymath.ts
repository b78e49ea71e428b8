/**
 * Python's numeric semantics where the original's results depend on them
 * (round-half-to-even, float modulo, `round(x, n)`).
 */

/** Python 3 `round(x)`: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Python `round(x, ndigits)` for the small magnitudes Pillow's rotate uses: the exact decimal
 * expansion rounded to `ndigits` places (JS `toFixed` is exact too; it differs only on exact
 * decimal ties, which cos/sin values never are).
 */
export function roundDigits(x: number, ndigits: number): number {
  return Number(x.toFixed(ndigits));
}

/** Python float `a % b`: the result takes the sign of `b`. */
export function pyMod(a: number, b: number): number {
  const m = a % b;
  return m !== 0 && (m < 0) !== (b < 0) ? m + b : m;
}

/** Python `int(x)` for a float: truncation toward zero. */
export function pyInt(x: number): number {
  return Math.trunc(x);
}
