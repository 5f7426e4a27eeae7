/**
 * Test helpers shared by the engine's suites (and usable by other backends' suites): finite-difference
 * gradient checks and backend-vs-backend comparisons on fresh random inputs.
 */

import type { Backend, FloatArray } from './backend';
import { readSync } from './cpu/backend';
import { Rng } from './random';
import { Tensor, backward, numel, shapeStr } from './tensor';

export interface InputSpec {
  shape: number[];
  /** Values are drawn uniformly from [lo, hi) with a random sign unless `positive` (default lo 0.2, hi 1.2:
   *  away from zero so kinks such as relu's are not straddled by the finite difference). */
  lo?: number;
  hi?: number;
  positive?: boolean;
  /** Exclude from the gradient check (e.g. a frozen operand). */
  noGrad?: boolean;
}

/** Random input values, rounded to f32 so an f32 and an f64 backend see exactly the same numbers. */
export function randomInput(spec: InputSpec, rng: Rng): Float64Array {
  const lo = spec.lo ?? 0.2;
  const hi = spec.hi ?? 1.2;
  const a = new Float64Array(numel(spec.shape));
  for (let i = 0; i < a.length; i++) {
    const mag = lo + (hi - lo) * rng.next();
    const sign = spec.positive || rng.next() < 0.5 ? 1 : -1;
    a[i] = Math.fround(sign * mag);
  }
  return a;
}

export type OpFn = (xs: Tensor[]) => Tensor;

export interface GradCheckResult {
  maxAbsErr: number;
  maxRelErr: number;
  /** Worst element: which input, which index, analytic and numeric values. */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
  checked: number;
}

function weightedSum(y: FloatArray, r: Float64Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * r[i]!;
  return s;
}

/**
 * Checks d(sum_i r_i * f(x)_i)/dx against central differences, for a random fixed r, on a CPU f64 backend.
 * Returns the error summary; `rtol`/`atol` are applied by the caller (see expectGradOk in tests).
 */
export function gradCheck(be: Backend, fn: OpFn, specs: InputSpec[], seed: number, h = 1e-5): GradCheckResult {
  if (be.dtype !== 'f64') throw new Error('gradCheck needs an f64 backend');
  const rng = new Rng(seed);
  const values = specs.map((s) => randomInput(s, rng));
  const xs = specs.map((s, i) => new Tensor(be, s.shape, be.fromArray(values[i]!), !s.noGrad));
  const y = fn(xs);
  const r = new Float64Array(y.size);
  for (let i = 0; i < r.length; i++) r[i] = rng.uniform(-1, 1);
  backward(y, { grad: be.fromArray(r) });

  let maxAbsErr = 0;
  let maxRelErr = 0;
  let worst: GradCheckResult['worst'] = null;
  let checked = 0;
  for (let i = 0; i < specs.length; i++) {
    if (specs[i]!.noGrad) continue;
    const g = xs[i]!.grad;
    const analytic = g ? readSync(g.storage) : new Float64Array(xs[i]!.size);
    for (let j = 0; j < values[i]!.length; j++) {
      const f = (delta: number): number => {
        const vals = values.map((v, k) => {
          if (k !== i) return v;
          const c = v.slice();
          c[j]! += delta;
          return c;
        });
        const ts = specs.map((s, k) => new Tensor(be, s.shape, be.fromArray(vals[k]!), false));
        return weightedSum(readSync(fn(ts).storage), r);
      };
      const numeric = (f(h) - f(-h)) / (2 * h);
      const a = analytic[j]!;
      const abs = Math.abs(a - numeric);
      const rel = abs / Math.max(1, Math.abs(a), Math.abs(numeric));
      checked++;
      if (abs > maxAbsErr) maxAbsErr = abs;
      if (rel > maxRelErr) {
        maxRelErr = rel;
        worst = { input: i, index: j, analytic: a, numeric };
      }
    }
  }
  return { maxAbsErr, maxRelErr, worst, checked };
}

export interface CompareResult {
  /** max_i |a_i - b_i| / max_i |b_i| */
  relErr: number;
  maxAbsRef: number;
}

/** Relative max-norm difference of two arrays (b is the reference). */
export function compareArrays(a: ArrayLike<number>, b: ArrayLike<number>, what = 'arrays'): CompareResult {
  if (a.length !== b.length) throw new Error(`${what}: lengths differ (${a.length} vs ${b.length})`);
  let maxAbsRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) throw new Error(`${what}: non-finite value at ${i}`);
    maxAbsRef = Math.max(maxAbsRef, Math.abs(b[i]!));
    maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
  }
  return { relErr: maxAbsRef > 0 ? maxDiff / maxAbsRef : maxDiff, maxAbsRef };
}

/**
 * Runs `fn` forward and backward on two backends with identical random inputs and returns the relative
 * errors of the output and of each input gradient (`test` backend against `ref`).
 */
export async function compareBackends(
  test: Backend,
  ref: Backend,
  fn: OpFn,
  specs: InputSpec[],
  seed: number,
): Promise<{ out: CompareResult; grads: CompareResult[] }> {
  const run = async (be: Backend) => {
    const rng = new Rng(seed);
    const values = specs.map((s) => randomInput(s, rng));
    const xs = specs.map((s, i) => new Tensor(be, s.shape, be.fromArray(values[i]!), !s.noGrad));
    const y = fn(xs);
    const r = new Float64Array(y.size);
    for (let i = 0; i < r.length; i++) r[i] = Math.fround(rng.uniform(-1, 1));
    const yv = await y.read();
    backward(y, { grad: be.fromArray(r) });
    const gs: FloatArray[] = [];
    for (let i = 0; i < xs.length; i++) {
      if (specs[i]!.noGrad) continue;
      const g = xs[i]!.grad;
      gs.push(g ? await g.read() : new Float64Array(xs[i]!.size));
    }
    return { yv, gs, shape: y.shape };
  };
  const a = await run(test);
  const b = await run(ref);
  if (shapeStr(a.shape) !== shapeStr(b.shape)) throw new Error(`output shapes differ: ${shapeStr(a.shape)} vs ${shapeStr(b.shape)}`);
  return {
    out: compareArrays(a.yv, b.yv, 'output'),
    grads: a.gs.map((g, i) => compareArrays(g, b.gs[i]!, `grad ${i}`)),
  };
}
