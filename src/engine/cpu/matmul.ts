/**
 * CPU GEMM kernels on typed arrays.
 *
 * One fast kernel, `gemmNN` (C[m,n] = A[m,k]·B[k,n], row-major, contiguous), does all the work; transposed
 * operands are packed into that layout first (an O(mk) or O(kn) copy against O(mkn) work), because strided
 * inner loops defeat the JIT's bounds-check elimination and the cache.
 *
 * Kernel shape: cache blocking over k (KC) and n (NC) so the active B panel stays in L2, and a 4-row i-k-j
 * micro-loop: per B element loaded, four rows of C are updated, so the inner loop is one load of B, four
 * multiply-adds and four read-modify-writes of C rows that are hot in L1. A register-tiled variant (C tile
 * in locals) was measured too; see bench.ts / the report for the numbers that picked this one.
 */

import type { FloatArray } from '../backend';

const KC = 128;
const NC = 1024;

/** C[cOff + i*n + j] = sum_p A[aOff + i*k + p] * B[bOff + p*n + j]; C is overwritten. */
export function gemmNN(
  A: FloatArray, aOff: number, B: FloatArray, bOff: number, C: FloatArray, cOff: number,
  m: number, n: number, k: number,
): void {
  C.fill(0, cOff, cOff + m * n);
  if (m === 0 || n === 0 || k === 0) return;
  for (let j0 = 0; j0 < n; j0 += NC) {
    const j1 = Math.min(n, j0 + NC);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const p1 = Math.min(k, p0 + KC);
      let i = 0;
      for (; i + 4 <= m; i += 4) {
        const c0 = cOff + i * n;
        const c1 = c0 + n;
        const c2 = c1 + n;
        const c3 = c2 + n;
        const ar0 = aOff + i * k;
        const ar1 = ar0 + k;
        const ar2 = ar1 + k;
        const ar3 = ar2 + k;
        for (let p = p0; p < p1; p++) {
          const a0 = A[ar0 + p];
          const a1 = A[ar1 + p];
          const a2 = A[ar2 + p];
          const a3 = A[ar3 + p];
          const bo = bOff + p * n;
          for (let j = j0; j < j1; j++) {
            const b = B[bo + j];
            C[c0 + j] += a0 * b;
            C[c1 + j] += a1 * b;
            C[c2 + j] += a2 * b;
            C[c3 + j] += a3 * b;
          }
        }
      }
      for (; i < m; i++) {
        const c0 = cOff + i * n;
        const ar0 = aOff + i * k;
        for (let p = p0; p < p1; p++) {
          const a0 = A[ar0 + p];
          const bo = bOff + p * n;
          for (let j = j0; j < j1; j++) C[c0 + j] += a0 * B[bo + j];
        }
      }
    }
  }
}

/** out[c, r] = x[xOff + r*cols + c]: a [rows, cols] block transposed into a fresh [cols, rows] array. */
export function transposeInto(
  x: FloatArray, xOff: number, rows: number, cols: number, out: FloatArray, outOff: number,
): void {
  // Tiled so both the reads and the writes walk cache lines.
  const TB = 32;
  for (let r0 = 0; r0 < rows; r0 += TB) {
    const r1 = Math.min(rows, r0 + TB);
    for (let c0 = 0; c0 < cols; c0 += TB) {
      const c1 = Math.min(cols, c0 + TB);
      for (let r = r0; r < r1; r++) {
        const xo = xOff + r * cols;
        for (let c = c0; c < c1; c++) out[outOff + c * rows + r] = x[xo + c];
      }
    }
  }
}
