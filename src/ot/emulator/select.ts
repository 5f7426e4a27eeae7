/**
 * From scores to kept structure.
 *
 * Reading (SELECT_READING, recorded in reports):
 * - DRD: the top ceil(5%) of all min(m,n) components by σ are always kept (the paper's rule, so the
 *   dominant directions the score is computed around survive); the 5% counts inside the rank budget (when
 *   the budget is smaller than the 5%, the top-`rank` by σ are kept). Among the rest we REMOVE the
 *   components with the LOWEST GCS (cheap for the gradients, large loss increase) and keep the remaining
 *   highest-GCS ones up to the rank. Ties go to the larger σ (lower index), for determinism.
 * - Factors: W' = A·B with A = U_K·diag(σ_K) [out, r] and B = V_Kᵀ [r, in]. σ goes entirely into A
 *   (not split as √σ on both): the middle is frozen, so conditioning for training does not matter, and
 *   B then has orthonormal rows, which keeps the two factors' scales easy to read in a report.
 * - SCP: keep the `width` channels with the highest GCS (remove the lowest), ids sorted ascending so the
 *   sliced matrices keep the original channel order.
 */
import type { MlpWeights, SvdFactors } from './gcs';

export const SELECT_READING = 'select/always-top-5pct-sigma-in-budget/remove-lowest-gcs/A=US,B=Vt/v1';
export const ALWAYS_KEEP_FRACTION = 0.05;

export function alwaysKeepCount(total: number, fraction = ALWAYS_KEEP_FRACTION): number {
  return Math.min(total, Math.ceil(fraction * total));
}

/** Indices (ascending) of the components to keep. S is the σ of every component (any order). */
export function selectComponents(
  S: ArrayLike<number>,
  scores: ArrayLike<number>,
  rank: number,
  alwaysKeepFraction = ALWAYS_KEEP_FRACTION,
): number[] {
  const total = S.length;
  if (scores.length !== total) throw new Error(`selectComponents: ${scores.length} scores for ${total} components`);
  if (!(Number.isInteger(rank) && rank >= 0)) throw new Error(`selectComponents: bad rank ${rank}`);
  if (rank >= total) return Array.from({ length: total }, (_, i) => i);
  const bySigma = Array.from({ length: total }, (_, i) => i).sort((a, b) => S[b]! - S[a]! || a - b);
  const protectedCount = Math.min(rank, alwaysKeepCount(total, alwaysKeepFraction));
  const kept = bySigma.slice(0, protectedCount);
  const rest = bySigma.slice(protectedCount);
  // Stable sort over the σ order: equal scores keep the larger σ.
  rest.sort((a, b) => scores[b]! - scores[a]!);
  kept.push(...rest.slice(0, rank - protectedCount));
  return kept.sort((a, b) => a - b);
}

export interface LowRankFactors {
  /** [out, r] = U_K·diag(σ_K) */
  a: Float64Array;
  /** [r, in] = V_Kᵀ */
  b: Float64Array;
  rank: number;
  out: number;
  in: number;
}

export function lowRankFactors(f: SvdFactors, out: number, inn: number, kept: number[]): LowRankFactors {
  const r = kept.length;
  const a = new Float64Array(out * r);
  const b = new Float64Array(r * inn);
  kept.forEach((k, c) => {
    if (k < 0 || k >= f.rank) throw new Error(`lowRankFactors: component ${k} out of range`);
    for (let i = 0; i < out; i++) a[i * r + c] = f.U[i * f.rank + k]! * f.S[k]!;
    b.set(f.Vt.subarray(k * inn, k * inn + inn), c * inn);
  });
  return { a, b, rank: r, out, in: inn };
}

/** Ids (ascending) of the `width` channels with the highest score. */
export function selectChannels(scores: ArrayLike<number>, width: number): number[] {
  const n = scores.length;
  if (!(Number.isInteger(width) && width >= 1 && width <= n)) throw new Error(`selectChannels: width ${width} not in [1, ${n}]`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  return order.slice(0, width).sort((a, b) => a - b);
}

/** An MLP's matrices as the GCS scorer sees them, plus the down-projection bias slicing carries through. */
export interface MlpTensors extends MlpWeights {
  /** [d]: not sliced, carried through. */
  downB?: ArrayLike<number>;
}

export interface SlicedMlp {
  d: number;
  width: number;
  upW: Float64Array;
  upB?: Float64Array;
  gateW?: Float64Array;
  gateB?: Float64Array;
  downW: Float64Array;
  downB?: Float64Array;
}

/** Keeps rows `kept` of up/gate (and their bias entries) and the same columns of down. */
export function sliceMlp(m: MlpTensors, kept: number[]): SlicedMlp {
  const { d, dff } = m;
  const w = kept.length;
  for (let i = 0; i < w; i++) {
    if (kept[i]! < 0 || kept[i]! >= dff || (i > 0 && kept[i]! <= kept[i - 1]!))
      throw new Error('sliceMlp: kept ids must be ascending, unique, in range');
  }
  const rows = (W: ArrayLike<number>) => {
    const out = new Float64Array(w * d);
    kept.forEach((j, r) => {
      for (let i = 0; i < d; i++) out[r * d + i] = W[j * d + i]!;
    });
    return out;
  };
  const entries = (b: ArrayLike<number>) => Float64Array.from(kept, (j) => b[j]!);
  const downW = new Float64Array(d * w);
  for (let i = 0; i < d; i++)
    kept.forEach((j, c) => {
      downW[i * w + c] = m.downW[i * dff + j]!;
    });
  return {
    d,
    width: w,
    upW: rows(m.upW),
    downW,
    upB: m.upB ? entries(m.upB) : undefined,
    gateW: m.gateW ? rows(m.gateW) : undefined,
    gateB: m.gateB ? entries(m.gateB) : undefined,
    downB: m.downB ? Float64Array.from(m.downB) : undefined,
  };
}
