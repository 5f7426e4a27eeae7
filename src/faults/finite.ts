/**
 * Non-finite checks: a NaN or ±Infinity in weights, statistics or logits makes every number computed
 * from it meaningless, and silently so (an argmax over NaN logits is index 0: "accuracy 0.00%"). Jobs
 * call these at their boundaries and stop with a NonFiniteError that names what and where.
 */
import { NonFiniteError } from './errors';

type Floats = ArrayLike<number>;

/** Index of the first non-finite value, or -1. */
export function firstNonFinite(a: Floats): number {
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    // v - v is 0 for finite numbers and NaN for NaN and ±Infinity: one test per value.
    if (v - v !== 0) return i;
  }
  return -1;
}

function countNonFinite(a: Floats): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! - a[i]! !== 0) n++;
  return n;
}

/** Throws unless every tensor is finite; the message names the file, the tensor, and how many values. */
export function checkFiniteTensors(tensors: Iterable<[string, { data: Floats }]>, where: string, what = 'weights'): void {
  for (const [name, t] of tensors) {
    const i = firstNonFinite(t.data);
    if (i >= 0) {
      throw new NonFiniteError(
        what,
        `${where} [${name}]: ${countNonFinite(t.data)} of ${t.data.length} values are not finite (first: ${t.data[i]} at index ${i}); ` +
          `refusing to compute from ${what} that hold NaN or Infinity`,
      );
    }
  }
}

/** Support-pass statistics (A, G, g per linear): every array finite. */
export function checkFiniteStats(stats: Map<string, Record<string, unknown>>, where: string): void {
  for (const [name, s] of stats) {
    for (const [k, v] of Object.entries(s)) {
      if (!(v instanceof Float64Array || v instanceof Float32Array)) continue;
      const i = firstNonFinite(v);
      if (i >= 0) {
        throw new NonFiniteError(
          'statistics',
          `${where}: the support statistics ${name}.${k} hold ${countNonFinite(v)} non-finite values (the model's outputs overflow on the support data)`,
        );
      }
    }
  }
}
