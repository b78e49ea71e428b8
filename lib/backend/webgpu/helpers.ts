/**
 * WGSL helper functions, emitted into a kernel only when its code uses them. Each helper names
 * the helpers it calls, so `helperSource` can emit a closed, ordered set.
 */

interface Helper {
  deps: string[];
  code: string;
}

/** erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)); 12 terms reach 1e-9 for |x| < 1. */
const ERF_SERIES = Array.from({ length: 12 }, (_, n) => {
  let fact = 1;
  for (let i = 2; i <= n; i++) fact *= i;
  return ((n % 2 ? -1 : 1) / (fact * (2 * n + 1))) * (2 / Math.sqrt(Math.PI));
});

/** tanh(x) = x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - 1382x^11/155925 for small |x|. */
const TANH_SERIES = [1, -1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925];

/** erfc(x) = t exp(-x^2 + P(t)), t = 1 / (1 + x/2): Numerical Recipes' Chebyshev fit. */
const ERFC_FIT = [
  -1.26551223,
  1.00002368,
  0.37409196,
  0.09678418,
  -0.18628806,
  0.27886807,
  -1.13520398,
  1.48851587,
  -0.82215223,
  0.17087277,
];

function horner(coeffs: number[], v: string, vec = false): string {
  const c = (x: number) => (vec ? `vec4f(${f32Lit(x)})` : f32Lit(x));
  let s = c(coeffs[coeffs.length - 1]);
  for (let i = coeffs.length - 2; i >= 0; i--) s = `fma(${s}, ${v}, ${c(coeffs[i])})`;
  return s;
}

function f32Lit(v: number): string {
  const f = Math.fround(v);
  return f < 0 ? `(${f}f)` : `${f}f`;
}

const HELPERS: Record<string, Helper> = {
  f32_isnan: {
    deps: [],
    // Bit test: comparisons like `x != x` may be folded away by the shader compiler.
    code: `fn f32_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }`,
  },
  f32_max: {
    deps: ["f32_isnan"],
    code: `fn f32_max(a: f32, b: f32) -> f32 { return select(b, a, f32_isnan(a) || a > b); }`,
  },
  f32_min: {
    deps: ["f32_isnan"],
    code: `fn f32_min(a: f32, b: f32) -> f32 { return select(b, a, f32_isnan(a) || a < b); }`,
  },
  f32_tanh: {
    deps: [],
    // Series near 0 keeps relative accuracy; elsewhere 1 - 2/(e^2|x| + 1), which saturates to
    // exactly +-1 instead of overflowing.
    code: `fn f32_tanh(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.3f) {
    let x2 = x * x;
    return x * ${horner(TANH_SERIES, "x2")};
  }
  let t = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
  return select(t, -t, x < 0.0f);
}`,
  },
  f32_erf: {
    deps: [],
    // |x| < 1: Maclaurin series; otherwise erfc by the Numerical Recipes Chebyshev fit (as the
    // CPU backend), whose relative error < 1.2e-7 on erfc <= 0.16.
    code: `fn f32_erf(x: f32) -> f32 {
  let a = abs(x);
  if (a < 1.0f) {
    let x2 = x * x;
    return x * ${horner(ERF_SERIES, "x2")};
  }
  let t = 1.0f / (1.0f + 0.5f * a);
  let p = ${horner(ERFC_FIT, "t")};
  let y = t * exp(p - a * a);
  return select(1.0f - y, y - 1.0f, x < 0.0f);
}`,
  },
  f32_isnan4: {
    deps: [],
    code: `fn f32_isnan4(x: vec4f) -> vec4<bool> {
  return (bitcast<vec4u>(x) & vec4u(0x7fffffffu)) > vec4u(0x7f800000u);
}`,
  },
  f32_max4: {
    deps: ["f32_isnan4"],
    code:
      `fn f32_max4(a: vec4f, b: vec4f) -> vec4f { return select(b, a, f32_isnan4(a) | (a > b)); }`,
  },
  f32_min4: {
    deps: ["f32_isnan4"],
    code:
      `fn f32_min4(a: vec4f, b: vec4f) -> vec4f { return select(b, a, f32_isnan4(a) | (a < b)); }`,
  },
  f32_tanh4: {
    deps: [],
    // f32_tanh on four lanes: both branches, then a per-lane select.
    code: `fn f32_tanh4(x: vec4f) -> vec4f {
  let a = abs(x);
  let x2 = x * x;
  let small = x * ${horner(TANH_SERIES, "x2", true)};
  let t = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
  return select(select(t, -t, x < vec4f(0.0f)), small, a < vec4f(0.3f));
}`,
  },
  f32_erf4: {
    deps: [],
    code: `fn f32_erf4(x: vec4f) -> vec4f {
  let a = abs(x);
  let x2 = x * x;
  let small = x * ${horner(ERF_SERIES, "x2", true)};
  let t = 1.0f / (1.0f + 0.5f * a);
  let p = ${horner(ERFC_FIT, "t", true)};
  let y = t * exp(p - a * a);
  return select(select(1.0f - y, y - 1.0f, x < vec4f(0.0f)), small, a < vec4f(1.0f));
}`,
  },
  cvt_f32_i32: {
    deps: ["f32_isnan"],
    code: `fn cvt_f32_i32(v: f32) -> i32 {
  if (f32_isnan(v)) { return 0i; }
  if (v >= 2147483648.0f) { return 2147483647i; }
  if (v < -2147483648.0f) { return i32(-2147483647 - 1); }
  return i32(v);
}`,
  },
  cvt_f32_u32: {
    deps: ["f32_isnan"],
    code: `fn cvt_f32_u32(v: f32) -> u32 {
  if (f32_isnan(v) || v <= -1.0f) { return 0u; }
  if (v >= 4294967296.0f) { return 4294967295u; }
  return u32(max(v, 0.0f));
}`,
  },
  cvt_f32_u8: {
    deps: ["f32_isnan"],
    code: `fn cvt_f32_u8(v: f32) -> u32 {
  if (f32_isnan(v)) { return 0u; }
  return u32(clamp(trunc(v), 0.0f, 255.0f));
}`,
  },
  cvt_f32_bf16: {
    deps: ["f32_isnan"],
    // Round to nearest even, NaN stays NaN (as f32ToBf16 in lib/ir/dtype.ts).
    code: `fn cvt_f32_bf16(v: f32) -> u32 {
  let u = bitcast<u32>(v);
  if (f32_isnan(v)) { return (u >> 16u) | 0x40u; }
  return ((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u) & 0xffffu;
}`,
  },
};

/** Source of the named helpers and everything they call, each once, dependencies first. */
export function helperSource(names: Iterable<string>): string {
  const out: string[] = [];
  const done = new Set<string>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    const h = HELPERS[name];
    if (!h) throw new Error(`webgpu: unknown WGSL helper ${name}`);
    done.add(name);
    for (const d of h.deps) visit(d);
    out.push(h.code);
  };
  for (const n of [...names].sort()) visit(n);
  return out.join("\n");
}
