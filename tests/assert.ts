/**
 * Test assertions (JSR's @std/assert is out of reach here, so these wrap node:assert).
 * Import from every test: `import { assertEquals, assertAllClose } from "../assert.ts"`.
 */
import assert from "node:assert/strict";

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  assert.deepStrictEqual(actual, expected, msg);
}

export function assert_(cond: unknown, msg?: string): asserts cond {
  assert.ok(cond, msg);
}
export { assert_ as assert };

/** Asserts that `fn` throws (or rejects) with a message matching `pattern`. */
export function assertThrows(fn: () => unknown, pattern?: RegExp | string): void {
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    if (pattern) assertMessage(e, pattern);
  }
  if (!threw) throw new assert.AssertionError({ message: `expected a throw matching ${pattern}` });
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  pattern?: RegExp | string,
): Promise<void> {
  let threw = false;
  try {
    await fn();
  } catch (e) {
    threw = true;
    if (pattern) assertMessage(e, pattern);
  }
  if (!threw) {
    throw new assert.AssertionError({ message: `expected a rejection matching ${pattern}` });
  }
}

/**
 * Elementwise |a - b| <= atol + rtol * |b| over arrays of numbers. Reports the worst element.
 * Returns the max abs difference so tests can log it.
 */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-6, rtol = 0, msg = "" }: { atol?: number; rtol?: number; msg?: string } = {},
): number {
  if (actual.length !== expected.length) {
    throw new assert.AssertionError({
      message: `${msg} length ${actual.length} != expected ${expected.length}`,
    });
  }
  let worst = -1, worstExcess = 0, maxAbs = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], b = expected[i];
    if (Number.isNaN(a) !== Number.isNaN(b)) {
      worst = i;
      worstExcess = Infinity;
      break;
    }
    if (Number.isNaN(a) || a === b) continue;
    const d = Math.abs(a - b);
    maxAbs = Math.max(maxAbs, d);
    const excess = d - (atol + rtol * Math.abs(b));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    throw new assert.AssertionError({
      message: `${msg} element ${worst}: ${actual[worst]} vs expected ${expected[worst]} ` +
        `(atol ${atol}, rtol ${rtol}; max abs diff ${maxAbs})`,
    });
  }
  return maxAbs;
}

function assertMessage(e: unknown, pattern: RegExp | string): void {
  const message = e instanceof Error ? e.message : String(e);
  const ok = typeof pattern === "string" ? message.includes(pattern) : pattern.test(message);
  if (!ok) {
    throw new assert.AssertionError({ message: `error "${message}" does not match ${pattern}` });
  }
}
