/**
 * Symmetric eigendecomposition by Householder tridiagonalization + implicit-shift QL (the classic
 * tred2/tqli pair, 0-indexed). About 3x cheaper than cyclic Jacobi for n in the hundreds; used to seed the
 * one-sided Jacobi SVD (svd.ts), which then only has to polish, so its accuracy needs are modest.
 */

export interface TridiagEigen {
  /** Eigenvalues, ascending order NOT guaranteed (callers sort). */
  values: Float64Array;
  /** [n, n]: row j is the unit eigenvector of values[j] (transposed layout, contiguous rows). */
  vectorsT: Float64Array;
}

export function symmetricEigenQL(input: Float64Array, n: number): TridiagEigen {
  if (input.length !== n * n) throw new Error(`symmetricEigenQL: got ${input.length} elements, expected ${n}x${n}`);
  const a = Float64Array.from(input);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  // --- tred2: a <- Q (orthogonal), d/e the tridiagonal.
  for (let i = n - 1; i >= 1; i--) {
    const l = i - 1;
    let h = 0;
    if (l > 0) {
      let scale = 0;
      for (let k = 0; k <= l; k++) scale += Math.abs(a[i * n + k]!);
      if (scale === 0) {
        e[i] = a[i * n + l]!;
      } else {
        for (let k = 0; k <= l; k++) {
          a[i * n + k]! /= scale;
          h += a[i * n + k]! * a[i * n + k]!;
        }
        let f = a[i * n + l]!;
        let g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
        e[i] = scale * g;
        h -= f * g;
        a[i * n + l] = f - g;
        f = 0;
        for (let j = 0; j <= l; j++) {
          a[j * n + i] = a[i * n + j]! / h;
          g = 0;
          for (let k = 0; k <= j; k++) g += a[j * n + k]! * a[i * n + k]!;
          for (let k = j + 1; k <= l; k++) g += a[k * n + j]! * a[i * n + k]!;
          e[j] = g / h;
          f += e[j]! * a[i * n + j]!;
        }
        const hh = f / (h + h);
        for (let j = 0; j <= l; j++) {
          f = a[i * n + j]!;
          g = e[j]! - hh * f;
          e[j] = g;
          for (let k = 0; k <= j; k++) a[j * n + k]! -= f * e[k]! + g * a[i * n + k]!;
        }
      }
    } else {
      e[i] = a[i * n + l]!;
    }
    d[i] = h;
  }
  d[0] = 0;
  e[0] = 0;
  for (let i = 0; i < n; i++) {
    const l = i - 1;
    if (d[i] !== 0) {
      for (let j = 0; j <= l; j++) {
        let g = 0;
        for (let k = 0; k <= l; k++) g += a[i * n + k]! * a[k * n + j]!;
        for (let k = 0; k <= l; k++) a[k * n + j]! -= g * a[k * n + i]!;
      }
    }
    d[i] = a[i * n + i]!;
    a[i * n + i] = 1;
    for (let j = 0; j <= l; j++) {
      a[j * n + i] = 0;
      a[i * n + j] = 0;
    }
  }
  // --- tqli on (d, e) accumulating into z = Qᵀ stored as rows (z[c*n + k] = Q[k, c]) for unit-stride updates.
  const z = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) z[c * n + r] = a[r * n + c]!;
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  // NR's test: e[m] is negligible when adding it does not change dd in floating point.
  implicitQL(d, e, z, n, (em, dd) => em + dd === dd, 'symmetricEigenQL: no convergence');
  return { values: d, vectorsT: z };
}

/**
 * Implicit-shift QL sweeps (tqli) on the tridiagonal (d, e) of size n, e[i] coupling i and i+1 (e[n-1] = 0),
 * rotating the rows of z (row c becomes eigenvector c when z starts as Qᵀ or the identity). d ends as the
 * eigenvalues, unsorted; `noConvergence` is the error after 60 iterations on one eigenvalue. `negligible(|e[m]|, |d[m]| + |d[m+1]|)` is the deflation test: each caller keeps its own.
 */
export function implicitQL(
  d: Float64Array,
  e: Float64Array,
  z: Float64Array,
  n: number,
  negligible: (em: number, dd: number) => boolean,
  noConvergence: string,
): void {
  for (let l = 0; l < n; l++) {
    let iter = 0;
    let m: number;
    do {
      for (m = l; m < n - 1; m++) {
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (negligible(Math.abs(e[m]!), dd)) break;
      }
      if (m !== l) {
        if (iter++ === 60) throw new Error(noConvergence);
        let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
        let r = Math.hypot(g, 1);
        g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? r : -r));
        let s = 1,
          c = 1,
          p = 0;
        let i: number;
        let early = false;
        for (i = m - 1; i >= l; i--) {
          let f = s * e[i]!;
          const b = c * e[i]!;
          r = Math.hypot(f, g);
          e[i + 1] = r;
          if (r === 0) {
            d[i + 1]! -= p;
            e[m] = 0;
            early = true;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1]! - p;
          r = (d[i]! - g) * s + 2 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
          const zi = i * n;
          const zi1 = (i + 1) * n;
          for (let k = 0; k < n; k++) {
            f = z[zi1 + k]!;
            z[zi1 + k] = s * z[zi + k]! + c * f;
            z[zi + k] = c * z[zi + k]! - s * f;
          }
        }
        if (early) continue;
        d[l]! -= p;
        e[l] = g;
        e[m] = 0;
      }
    } while (m !== l);
  }
}
