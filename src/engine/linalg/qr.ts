/**
 * Thin Householder QR in f64. Works on a transposed copy (columns as contiguous rows) so every reflector
 * application is a pair of unit-stride loops.
 */
import { transpose } from './matmul';

export interface QrResult {
  /** [m, k] with orthonormal columns, k = min(m, n). */
  Q: Float64Array;
  /** [k, n], upper triangular (upper trapezoidal when n > m). */
  R: Float64Array;
  k: number;
}

/** A = Q·R for row-major A [m, n]. Q spans range(A) even when A is rank deficient (reflectors stay orthogonal). */
export function qr(a: Float64Array, m: number, n: number): QrResult {
  if (a.length !== m * n) throw new Error(`qr: got ${a.length} elements, expected ${m}x${n}`);
  const k = Math.min(m, n);
  const cols = transpose(a, m, n); // cols[j*m + i] = A[i, j]
  const vs: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const cj = j * m;
    let norm2 = 0;
    for (let i = j; i < m; i++) norm2 += cols[cj + i]! * cols[cj + i]!;
    const norm = Math.sqrt(norm2);
    const v = new Float64Array(m - j);
    if (norm === 0) {
      // Zero column: identity reflector (v = 0), R[j,j] = 0.
      vs.push(v);
      continue;
    }
    const x0 = cols[cj + j]!;
    // Sign chosen against x0 to avoid cancellation in v0.
    const alpha = x0 >= 0 ? -norm : norm;
    for (let i = j; i < m; i++) v[i - j] = cols[cj + i]!;
    v[0]! -= alpha;
    let vn2 = 0;
    for (let i = 0; i < v.length; i++) vn2 += v[i]! * v[i]!;
    const vn = Math.sqrt(vn2);
    for (let i = 0; i < v.length; i++) v[i]! /= vn;
    vs.push(v);
    cols[cj + j] = alpha;
    for (let i = j + 1; i < m; i++) cols[cj + i] = 0;
    for (let c = j + 1; c < n; c++) {
      const cc = c * m;
      let d = 0;
      for (let i = j; i < m; i++) d += v[i - j]! * cols[cc + i]!;
      d *= 2;
      for (let i = j; i < m; i++) cols[cc + i]! -= d * v[i - j]!;
    }
  }
  const R = new Float64Array(k * n);
  for (let i = 0; i < k; i++) for (let j = i; j < n; j++) R[i * n + j] = cols[j * m + i]!;
  // Q = H_0 ... H_{k-1} applied to the first k columns of I.
  const qt = new Float64Array(k * m); // qt[c*m + i] = Q[i, c]
  for (let c = 0; c < k; c++) {
    const qc = c * m;
    qt[qc + c] = 1;
    for (let j = Math.min(c, k - 1); j >= 0; j--) {
      const v = vs[j]!;
      let d = 0;
      for (let i = j; i < m; i++) d += v[i - j]! * qt[qc + i]!;
      if (d === 0) continue;
      d *= 2;
      for (let i = j; i < m; i++) qt[qc + i]! -= d * v[i - j]!;
    }
  }
  return { Q: transpose(qt, k, m), R, k };
}
