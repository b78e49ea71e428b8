/**
 * optax.warmup_cosine_decay_schedule, evaluated in float32 arithmetic (every operation rounded
 * with Math.fround) in optax's operation order, so values match the jitted original.
 */
export interface WarmupCosine {
  initValue: number;
  peakValue: number;
  warmupSteps: number;
  decaySteps: number;
  endValue: number;
}

export function warmupCosine(s: WarmupCosine): (step: number) => number {
  const f = Math.fround;
  // Python-float constants are combined in f64 before meeting f32 arrays, as in optax.
  const peak = f(s.peakValue);
  const cosineSteps = s.decaySteps - s.warmupSteps;
  const alpha64 = s.peakValue === 0 ? 0 : s.endValue / s.peakValue;
  const alpha = f(alpha64),
    oneMinusAlpha = f(1 - alpha64),
    initMinusPeak = f(s.initValue - s.peakValue);
  return (step: number) => {
    if (step < s.warmupSteps) {
      // linear_schedule: (init - end) * (1 - count / transition_steps) + end
      const count = f(Math.min(Math.max(step, 0), s.warmupSteps));
      const frac = f(1 - f(count / s.warmupSteps));
      return f(f(initMinusPeak * frac) + peak);
    }
    if (cosineSteps <= 0) return f(peak * f(f(oneMinusAlpha * 0.5) + alpha));
    // cosine_decay_schedule(peak, cosineSteps, alpha) at count = step - warmup
    const count = f(Math.min(step - s.warmupSteps, cosineSteps));
    const cosine = f(0.5 * f(1 + cosf(f(f(f(Math.PI) * count) / cosineSteps))));
    const decayed = f(f(oneMinusAlpha * cosine) + alpha);
    return f(peak * decayed);
  };
}

/** A constant schedule (for tests and fine-grained experiments). */
export function constantSchedule(value: number): (step: number) => number {
  return () => Math.fround(value);
}

/**
 * float32 cos as the original computes it: XLA on CPU calls libm's `cosf`, which is not always
 * correctly rounded, so `Math.fround(Math.cos(x))` can differ by one ulp. Use glibc's cosf
 * through FFI when it can be loaded, else fall back to the rounded f64 cos.
 */
function cosf(x: number): number {
  if (libmCosf === undefined) {
    libmCosf = null;
    try {
      if (Deno.build.os === "linux") {
        const lib = Deno.dlopen("libm.so.6", { cosf: { parameters: ["f32"], result: "f32" } });
        libmCosf = lib.symbols.cosf as (x: number) => number;
      }
    } catch {
      // no FFI permission or no glibc: rounded f64 cos, at most one ulp away
    }
  }
  return libmCosf ? libmCosf(x) : Math.fround(Math.cos(x));
}

let libmCosf: ((x: number) => number) | null | undefined;
