/** Scalar math the CPU backend needs beyond `Math`: erf to better than f32 precision. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 1) {
    // Maclaurin series: converges to 1e-17 in < 20 terms for |x| < 1.
    const x2 = x * x;
    let term = x, s = x;
    for (let n = 1; n < 30; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      s += t;
      if (Math.abs(t) < 1e-17) break;
    }
    return s * 1.1283791670955126;
  }
  // erfc by the Chebyshev fit of Numerical Recipes (relative error < 1.2e-7 on erfc, which is
  // < 0.16 here, so the absolute error of erf is < 2e-8).
  const t = 1 / (1 + 0.5 * ax);
  const y = t * Math.exp(
    -ax * ax - 1.26551223 +
      t * (1.00002368 +
          t * (0.37409196 +
              t * (0.09678418 +
                  t * (-0.18628806 +
                      t * (0.27886807 +
                          t *
                            (-1.13520398 +
                              t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
  );
  return x >= 0 ? 1 - y : y - 1;
}
