/**
 * Full SVD through the Gram matrix of the short side, the default exact SVD (svd.ts `exactSvd`).
 *
 * For W [m, n], let Ws [k, l] be W (wide) or Wᵀ (tall), k = min(m, n). Then
 *   1. G = Ws Wsᵀ  [k, k], f64 GEMM (upper blocks only, mirrored);
 *   2. G = E Λ Eᵀ by tridiagonalization + divide and conquer (syevd.ts);
 *   3. Y = Eᵀ Ws  [k, l] (one GEMM); σ_j = |Y_j| and R_j = Y_j / σ_j.
 * W = E Σ R (wide) or Rᵀ Σ Eᵀ (tall).
 *
 * Accuracy: σ is NOT taken as sqrt(λ) (that would carry the Gram's absolute error eps·σ₁², i.e. a relative
 * error of eps·(σ₁/σ_j)² on small values) but as the norm of Eᵀ Ws, whose error is about eps·σ₁ absolute
 * (relative eps·σ₁/σ_j) plus a term quadratic in the eigenvector error. What the Gram does cost is the
 * orthogonality of R for small σ (|R_iᵀ R_j| ≈ eps·σ₁²/(σ_i σ_j)); rows with σ_j below POLISH·σ₁ are
 * therefore re-orthogonalized (block Gram-Schmidt twice against the larger rows, then among themselves).
 * Measured against the one-sided Jacobi reference and LAPACK in docs/svd.md.
 */
import { dense, gemm64, type Strided } from './gemm64';
import { symmetricEigenDC } from './syevd';
import { symmetricEigenQL } from './tridiag';

/** Rows of R with σ_j < POLISH·σ₁ are re-orthogonalized (their Gram-derived directions drift). */
const POLISH = 1e-3;

export interface GramSvdParts {
  U: Float64Array;
  S: Float64Array;
  Vt: Float64Array;
}

/** Timings of the last run's phases (ms), for the benchmark. */
export const gramSvdTimes = { gram: 0, eig: 0, project: 0, polish: 0 };

/**
 * `eig` picks the symmetric eigensolver: 'dc' (default, syevd.ts) or 'ql' (tridiag.ts: tred2 + implicit QL
 * with the vectors accumulated by plane rotations; kept for the benchmark's side-by-side, docs/svd.md).
 */
export function gramSvd(W: ArrayLike<number>, m: number, n: number, eig: 'dc' | 'ql' = 'dc'): GramSvdParts {
  const wide = m <= n;
  const k = wide ? m : n;
  const l = wide ? n : m;
  const Ws: Strided = wide ? dense(W, n) : dense(W, n, true);
  const WsT: Strided = { data: W, off: 0, rs: Ws.cs, cs: Ws.rs };
  let t = performance.now();
  const G = new Float64Array(k * k);
  gemm64(Ws, WsT, G, 0, k, k, k, l, { upper: true });
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) G[i * k + j] = G[j * k + i]!;
  gramSvdTimes.gram = performance.now() - t;
  t = performance.now();
  const E = eig === 'dc' ? symmetricEigenDC(G, k).vectors : qlVectors(G, k); // columns, ascending
  gramSvdTimes.eig = performance.now() - t;
  t = performance.now();
  const Y = new Float64Array(k * l);
  gemm64(dense(E, k, true), Ws, Y, 0, l, k, l, k);
  const sig = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    let s = 0;
    const o = j * l;
    for (let c = 0; c < l; c++) s += Y[o + c]! * Y[o + c]!;
    sig[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => sig[b]! - sig[a]! || b - a);
  const S = new Float64Array(k);
  const R = new Float64Array(k * l);
  const Ek = new Float64Array(k * k); // columns in descending σ order
  order.forEach((src, dst) => {
    S[dst] = sig[src]!;
    const inv = sig[src]! > 0 ? 1 / sig[src]! : 0;
    const so = src * l,
      doff = dst * l;
    for (let c = 0; c < l; c++) R[doff + c] = Y[so + c]! * inv;
    for (let r = 0; r < k; r++) Ek[r * k + dst] = E[r * k + src]!;
  });
  gramSvdTimes.project = performance.now() - t;
  t = performance.now();
  const smax = S[0] ?? 0;
  let j0 = 0;
  while (j0 < k && S[j0]! >= POLISH * smax && S[j0]! > 0) j0++;
  if (j0 < k) polishTail(R, k, l, j0);
  gramSvdTimes.polish = performance.now() - t;
  if (wide) return { U: Ek, S, Vt: R };
  // Tall: W = Rᵀ Σ Eᵀ.
  const U = new Float64Array(m * k);
  for (let j = 0; j < k; j++) for (let c = 0; c < l; c++) U[c * k + j] = R[j * l + c]!;
  const Vt = new Float64Array(k * k);
  for (let r = 0; r < k; r++) for (let c = 0; c < k; c++) Vt[c * k + r] = Ek[r * k + c]!;
  return { U, S, Vt };
}

/**
 * Makes rows j0..k-1 of R [k, l] orthonormal and orthogonal to rows 0..j0-1, keeping each row's direction
 * as far as possible. Those rows come out of the Gram route only slightly non-orthogonal (by
 * ~eps·σ₁²/(σ_i σ_j)), so one classical Gram-Schmidt pass is exact enough for them: the whole tail is
 * projected off the head with two large GEMMs, then each block of 32 off the earlier tail blocks (GEMM) and
 * inside itself (modified Gram-Schmidt). A block in which some row lost over half its length (a
 * numerically rank-deficient tail, where the rows are mostly rounding noise) gets a second full pass
 * ("twice is enough"), and a row that still vanishes is replaced by a unit vector orthogonal to the rows
 * before it.
 */
function polishTail(R: Float64Array, k: number, l: number, j0: number): void {
  const BS = 32;
  const t = k - j0;
  const before = new Float64Array(k);
  for (let a = j0; a < k; a++) {
    let s = 0;
    for (let c = 0; c < l; c++) s += R[a * l + c]! * R[a * l + c]!;
    before[a] = Math.sqrt(s);
  }
  /** rows [r0, r1) -= (rows [r0, r1) · rows [p0, p1)ᵀ) · rows [p0, p1) */
  const project = (r0: number, r1: number, p0: number, p1: number) => {
    const rows = r1 - r0,
      w = p1 - p0;
    if (rows === 0 || w === 0) return;
    const P = new Float64Array(rows * w);
    gemm64(dense(R, l, false, r0 * l), dense(R, l, true, p0 * l), P, 0, w, rows, w, l);
    for (let i = 0; i < P.length; i++) P[i] = -P[i]!;
    gemm64(dense(P, w), dense(R, l, false, p0 * l), R, r0 * l, l, rows, l, w, { accumulate: true });
  };
  /** MGS inside [a0, a1) and normalization; returns the smallest norm ratio (after / `ref`). */
  const inBlock = (a0: number, a1: number, ref: Float64Array | null) => {
    let worst = Infinity;
    for (let a = a0; a < a1; a++) {
      const ao = a * l;
      for (let b = a0; b < a; b++) {
        const bo = b * l;
        let d = 0;
        for (let c = 0; c < l; c++) d += R[ao + c]! * R[bo + c]!;
        for (let c = 0; c < l; c++) R[ao + c]! -= d * R[bo + c]!;
      }
      let nrm = 0;
      for (let c = 0; c < l; c++) nrm += R[ao + c]! * R[ao + c]!;
      nrm = Math.sqrt(nrm);
      const ratio = ref ? (ref[a]! > 0 ? nrm / ref[a]! : 0) : nrm;
      worst = Math.min(worst, ratio);
      if (ratio < 0.5 && !ref) completeRow(R, l, a);
      else if (nrm > 0) for (let c = 0; c < l; c++) R[ao + c]! /= nrm;
    }
    return worst;
  };
  if (t > 0) project(j0, k, 0, j0);
  for (let a0 = j0; a0 < k; a0 += BS) {
    const a1 = Math.min(k, a0 + BS);
    project(a0, a1, j0, a0);
    if (inBlock(a0, a1, before) < 0.5) {
      project(a0, a1, 0, a0);
      inBlock(a0, a1, null);
    }
  }
}

/** Replaces row a of R [·, l] by a unit vector orthogonal to rows 0..a-1 (standard-basis candidates). */
function completeRow(R: Float64Array, l: number, a: number): void {
  const v = new Float64Array(l);
  for (let cand = 0; cand < l; cand++) {
    v.fill(0);
    v[cand] = 1;
    for (let pass = 0; pass < 2; pass++) {
      // Rows before a are orthonormal by now; rows after a are orthogonalized against a later.
      for (let b = 0; b < a; b++) {
        const bo = b * l;
        let d = 0;
        for (let c = 0; c < l; c++) d += R[bo + c]! * v[c]!;
        if (d !== 0) for (let c = 0; c < l; c++) v[c]! -= d * R[bo + c]!;
      }
    }
    let nrm = 0;
    for (let c = 0; c < l; c++) nrm += v[c]! * v[c]!;
    nrm = Math.sqrt(nrm);
    if (nrm > 0.5) {
      for (let c = 0; c < l; c++) R[a * l + c] = v[c]! / nrm;
      return;
    }
  }
}

/** Eigenvectors of G by tred2 + QL, as columns of a row-major [k, k] in ascending eigenvalue order. */
function qlVectors(G: Float64Array, k: number): Float64Array {
  const { values, vectorsT } = symmetricEigenQL(G, k);
  const order = Array.from({ length: k }, (_, i) => i).sort((a, b) => values[a]! - values[b]! || a - b);
  const E = new Float64Array(k * k);
  for (let r = 0; r < k; r++) for (let c = 0; c < k; c++) E[r * k + c] = vectorsT[order[c]! * k + r]!;
  return E;
}
