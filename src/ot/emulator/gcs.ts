/**
 * GradOT's Gradient-preserving Compression Score, GCS(δ) = ‖G δ A‖₁ − λ⟨g, δ⟩, in closed form for the
 * rank-1 deletions that DRD and SCP consider. Lower GCS = cheaper to remove (small gradient shift, large
 * first-order loss increase ⟨g, δ⟩), so selection REMOVES the lowest scores (see select.ts).
 *
 * These closed forms are OUR READING of the paper (its §2.3-§2.5 leave them implicit): every
 * reading lives in one small function below and has an id in GCS_READINGS that a compression report records.
 *
 * The identity everything rests on: for a rank-1 δ = −c·u vᵀ, G δ A = −c (G u)(A v)ᵀ, and the entrywise
 * L1 norm of an outer product is the product of the two vectors' L1 norms, so ‖G δ A‖₁ = |c|·‖G u‖₁·‖A v‖₁.
 * (A and G are symmetric, so Aᵀv = A v.)
 *
 * Bias reading: the Hessian block used is that of the parameters the deletion edits. When a deletion
 * removes a bias entry too (SCP's up/gate row j + b[j]), the layer is treated as [W | b] acting on
 * x̃ = [x; 1], with Ã = E[x̃ x̃ᵀ] (kfac.augmentedA) and δ̃ = −e_j [w_j; b_j]ᵀ, so the bias is "the
 * corresponding term with x = 1" inside one rank-1 deletion. Deletions that leave the bias alone (a DRD
 * component, a down-projection column) use the plain weight-only A, which is the paper's formula.
 */
import { hostMatmul } from '../../engine/linalg/matmul';
import type { LinearStats } from './kfac';
import { augmentedA } from './kfac';

export const GCS_READINGS = {
  drd: 'drd/kfac-rank1-l1-product/weight-only-A/v1',
  scp: 'scp/kfac-sum-over-matrices/bias-as-x1-column/v1',
} as const;

export interface ScoreParts {
  /** ‖G δ A‖₁ per candidate (gradient-shift term). */
  gradShift: Float64Array;
  /** ⟨g, δ⟩ per candidate: first-order loss increase when the candidate is removed. */
  lossIncrease: Float64Array;
  /** gradShift − λ·lossIncrease. */
  score: Float64Array;
  lambda: number;
  reading: string;
}

/** GCS from its two terms; the only place λ enters. */
export function gcsFromTerms(gradShift: number, lossIncrease: number, lambda: number): number {
  return gradShift - lambda * lossIncrease;
}

/** L1 norms of the columns of a row-major [rows, cols] matrix. */
export function columnL1(m: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j]! += Math.abs(m[i * cols + j]!);
  return out;
}

function toF64(a: ArrayLike<number>): Float64Array {
  return a instanceof Float64Array ? a : Float64Array.from(a);
}

// ---------------------------------------------------------------------------------------------------------
// DRD: singular components of an attention projection.

export interface SvdFactors {
  /** [out, r] */
  U: Float64Array;
  /** [r] */
  S: Float64Array;
  /** [r, in] */
  Vt: Float64Array;
  rank: number;
}

/**
 * DRD reading: removing component k of W = Σ σ_k u_k v_kᵀ is δ_k = −σ_k u_k v_kᵀ, so
 *   gradShift_k = σ_k ‖G u_k‖₁ ‖A v_k‖₁,  lossIncrease_k = ⟨g, δ_k⟩ = −σ_k u_kᵀ g v_k,
 *   GCS_k = σ_k ‖G u_k‖₁ ‖A v_k‖₁ + λ σ_k u_kᵀ g v_k.
 */
export function drdScores(f: SvdFactors, stats: Pick<LinearStats, 'A' | 'G' | 'g' | 'inDim' | 'outDim'>, lambda: number): ScoreParts {
  const { rank: r } = f;
  const out = stats.outDim;
  const inn = stats.inDim;
  if (f.U.length !== out * r || f.Vt.length !== r * inn) throw new Error('drdScores: factor shapes do not match the stats');
  const GU = hostMatmul(stats.G, f.U, { m: out, n: r, k: out }); // [out, r]
  const AV = hostMatmul(stats.A, f.Vt, { m: inn, n: r, k: inn, transB: true }); // [in, r]
  const gV = hostMatmul(stats.g, f.Vt, { m: out, n: r, k: inn, transB: true }); // [out, r]
  const gu = columnL1(GU, out, r);
  const av = columnL1(AV, inn, r);
  const gradShift = new Float64Array(r);
  const lossIncrease = new Float64Array(r);
  const score = new Float64Array(r);
  for (let k = 0; k < r; k++) {
    let ugv = 0;
    for (let i = 0; i < out; i++) ugv += f.U[i * r + k]! * gV[i * r + k]!;
    gradShift[k] = Math.abs(f.S[k]!) * gu[k]! * av[k]!;
    lossIncrease[k] = -f.S[k]! * ugv;
    score[k] = gcsFromTerms(gradShift[k]!, lossIncrease[k]!, lambda);
  }
  return { gradShift, lossIncrease, score, lambda, reading: GCS_READINGS.drd };
}

// ---------------------------------------------------------------------------------------------------------
// SCP: MLP channels.

export interface MlpWeights {
  /** Intermediate width (channels). */
  dff: number;
  /** Hidden size. */
  d: number;
  /** [dff, d] */
  upW: ArrayLike<number>;
  /** [dff] */
  upB?: ArrayLike<number>;
  /** [dff, d] (gated MLPs) */
  gateW?: ArrayLike<number>;
  /** [dff] */
  gateB?: ArrayLike<number>;
  /** [d, dff] */
  downW: ArrayLike<number>;
}

export interface MlpStats {
  up: LinearStats;
  gate?: LinearStats;
  down: LinearStats;
}

/**
 * Row-deletion terms of an input-side matrix (up or gate): δ_j = −e_j w̃_jᵀ with w̃_j = [w_j; b_j] when a
 * bias exists (Ã augmented), else w_j (plain A).
 *   gradShift_j = ‖G e_j‖₁ · ‖Ã w̃_j‖₁,  lossIncrease_j = −(g_j·w_j + gBias_j·b_j).
 */
export function rowDeletionTerms(
  W: ArrayLike<number>,
  b: ArrayLike<number> | undefined,
  s: LinearStats,
): { gradShift: Float64Array; lossIncrease: Float64Array } {
  const rows = s.outDim;
  const d = s.inDim;
  const hasB = b !== undefined;
  const din = hasB ? d + 1 : d;
  const Wt = new Float64Array(rows * din); // [rows, din] = w̃ rows
  for (let j = 0; j < rows; j++) {
    for (let i = 0; i < d; i++) Wt[j * din + i] = W[j * d + i]!;
    if (hasB) Wt[j * din + d] = b[j]!;
  }
  const A = hasB ? augmentedA(s) : s.A;
  const AW = hostMatmul(Wt, A, { m: rows, n: din, k: din }); // row j = (Ã w̃_j)ᵀ (Ã symmetric)
  const gCol = columnL1(s.G, rows, rows); // ‖G e_j‖₁ (column j of G)
  const gradShift = new Float64Array(rows);
  const lossIncrease = new Float64Array(rows);
  for (let j = 0; j < rows; j++) {
    let l1 = 0;
    for (let i = 0; i < din; i++) l1 += Math.abs(AW[j * din + i]!);
    gradShift[j] = gCol[j]! * l1;
    let dot = 0;
    for (let i = 0; i < d; i++) dot += s.g[j * d + i]! * W[j * d + i]!;
    if (hasB) dot += s.gBias[j]! * b[j]!;
    lossIncrease[j] = -dot;
  }
  return { gradShift, lossIncrease };
}

/**
 * Column-deletion terms of the output-side matrix (down, [d, dff]): δ_j = −c_j e_jᵀ (the down bias is not
 * touched, so weight-only A):  gradShift_j = ‖G c_j‖₁ · ‖A e_j‖₁,  lossIncrease_j = −g[:, j]·c_j.
 */
export function columnDeletionTerms(W: ArrayLike<number>, s: LinearStats): { gradShift: Float64Array; lossIncrease: Float64Array } {
  const d = s.outDim;
  const cols = s.inDim;
  const GW = hostMatmul(s.G, toF64(W), { m: d, n: cols, k: d }); // column j = G c_j
  const gc = columnL1(GW, d, cols);
  const ae = columnL1(s.A, cols, cols);
  const gradShift = new Float64Array(cols);
  const lossIncrease = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    gradShift[j] = gc[j]! * ae[j]!;
    let dot = 0;
    for (let i = 0; i < d; i++) dot += s.g[i * cols + j]! * W[i * cols + j]!;
    lossIncrease[j] = -dot;
  }
  return { gradShift, lossIncrease };
}

/**
 * SCP reading: channel j's score sums, over the matrices its deletion edits (up row + bias, gate row +
 * bias, down column), each matrix's own KFAC gradient shift (KFAC is block-diagonal across layers) and
 * first-order loss increase: GCS_j = Σ_M ‖G_M δ_M A_M‖₁ − λ Σ_M ⟨g_M, δ_M⟩.
 */
export function scpScores(w: MlpWeights, stats: MlpStats, lambda: number): ScoreParts {
  const { dff, d } = w;
  if (stats.up.outDim !== dff || stats.up.inDim !== d || stats.down.outDim !== d || stats.down.inDim !== dff) {
    throw new Error(`scpScores: stats shapes do not match an MLP with d=${d}, dff=${dff}`);
  }
  if ((w.gateW === undefined) !== (stats.gate === undefined)) throw new Error('scpScores: gate weights and gate stats must come together');
  const parts = [rowDeletionTerms(w.upW, w.upB, stats.up), columnDeletionTerms(w.downW, stats.down)];
  if (w.gateW && stats.gate) parts.push(rowDeletionTerms(w.gateW, w.gateB, stats.gate));
  const gradShift = new Float64Array(dff);
  const lossIncrease = new Float64Array(dff);
  const score = new Float64Array(dff);
  for (const p of parts)
    for (let j = 0; j < dff; j++) {
      gradShift[j]! += p.gradShift[j]!;
      lossIncrease[j]! += p.lossIncrease[j]!;
    }
  for (let j = 0; j < dff; j++) score[j] = gcsFromTerms(gradShift[j]!, lossIncrease[j]!, lambda);
  return { gradShift, lossIncrease, score, lambda, reading: GCS_READINGS.scp };
}

// ---------------------------------------------------------------------------------------------------------
// Brute force (reference for tests and for a reading check at run time on small layers).

/** ‖G δ A‖₁ (entrywise) and ⟨g, δ⟩ for an explicit δ [out, in]. A may be the augmented factor. */
export function bruteForceTerms(
  delta: Float64Array,
  out: number,
  inn: number,
  G: Float64Array,
  A: Float64Array,
  g: Float64Array,
): { gradShift: number; lossIncrease: number } {
  const GdA = hostMatmul(hostMatmul(G, delta, { m: out, n: inn, k: out }), A, { m: out, n: inn, k: inn });
  let l1 = 0;
  for (let i = 0; i < GdA.length; i++) l1 += Math.abs(GdA[i]!);
  let dot = 0;
  for (let i = 0; i < delta.length; i++) dot += g[i]! * delta[i]!;
  return { gradShift: l1, lossIncrease: dot };
}

// ---------------------------------------------------------------------------------------------------------
// λ scaling readings.

/**
 * How λ is applied. 'raw' is the formula as written (λ carries the units of ‖GδA‖₁ / ⟨g,δ⟩, which depend
 * on the model, the layer and the loss scale, so a good λ varies wildly between matrices). 'balanced'
 * makes λ dimensionless per scored matrix (or MLP): λ_eff = λ · Σ gradShift / Σ |lossIncrease| over that
 * matrix's candidates, so λ = 1 weighs the two terms equally in total. Recorded in reports.
 */
export type LambdaMode = 'raw' | 'balanced';

export const LAMBDA_READINGS: Record<LambdaMode, string> = {
  raw: 'lambda/raw/v1',
  balanced: 'lambda/balanced-per-matrix-sum-ratio/v1',
};

/** The top of λ's useful range in the UIs and the documented sweep (docs/ot-compression.md, "λ"). */
export const LAMBDA_UI_MAX = 8;

/** Spearman rank correlation (average ranks for ties), for comparing two score vectors' orderings. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`spearman: ${a.length} vs ${b.length} values`);
  const ranks = (x: ArrayLike<number>): Float64Array => {
    const idx = Array.from({ length: x.length }, (_, i) => i).sort((i, j) => x[i]! - x[j]!);
    const r = new Float64Array(x.length);
    for (let s = 0; s < idx.length; ) {
      let e = s;
      while (e + 1 < idx.length && x[idx[e + 1]!] === x[idx[s]!]) e++;
      for (let k = s; k <= e; k++) r[idx[k]!] = (s + e) / 2;
      s = e + 1;
    }
    return r;
  };
  const ra = ranks(a),
    rb = ranks(b);
  const n = ra.length;
  const m = (n - 1) / 2;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (ra[i]! - m) * (rb[i]! - m);
    saa += (ra[i]! - m) ** 2;
    sbb += (rb[i]! - m) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Effective λ for one scored set under `mode`. */
export function effectiveLambda(parts: Pick<ScoreParts, 'gradShift' | 'lossIncrease'>, lambda: number, mode: LambdaMode): number {
  if (mode === 'raw') return lambda;
  let gs = 0,
    li = 0;
  for (let i = 0; i < parts.gradShift.length; i++) {
    gs += parts.gradShift[i]!;
    li += Math.abs(parts.lossIncrease[i]!);
  }
  return li === 0 ? lambda : (lambda * gs) / li;
}

/** Scores again with another λ (terms unchanged); `lambda` in the result is the effective one. */
export function rescore(parts: ScoreParts, lambda: number, mode: LambdaMode): ScoreParts {
  const eff = effectiveLambda(parts, lambda, mode);
  const score = new Float64Array(parts.score.length);
  for (let i = 0; i < score.length; i++) score[i] = gcsFromTerms(parts.gradShift[i]!, parts.lossIncrease[i]!, eff);
  return { ...parts, score, lambda: eff };
}
