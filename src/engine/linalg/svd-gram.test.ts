import { afterEach, describe, expect, it } from 'vitest';
import { gaussianArray } from './rng';
import { hostMatmul, transpose } from './matmul';
import { qr } from './qr';
import { symmetricEigen } from './eig';
import { dense, gemm64, setGemm64Simd } from './gemm64';
import { setRowKernels } from './rowops';
import { applyQ, symmetricEigenDC, tridiagEigenDC, tridiagonalize } from './syevd';
import { gramSvd } from './svd-gram';
import { exactSvd, jacobiSvd, setExactSvdReference } from './svd';

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** max |XᵀX - I| for X [rows, cols]. */
function orthoError(x: Float64Array, rows: number, cols: number): number {
  const g = hostMatmul(x, x, { m: cols, n: cols, k: rows, transA: true });
  let d = 0;
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) d = Math.max(d, Math.abs(g[i * cols + j]! - (i === j ? 1 : 0)));
  return d;
}

function randomSymmetric(n: number, seed: number): Float64Array {
  const X = gaussianArray(n * n, seed);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * n + j] = X[i * n + j]! + X[j * n + i]!;
  return A;
}

/** Q diag(values) Qᵀ with a random orthogonal Q. */
function withSpectrum(values: number[], seed: number): Float64Array {
  const n = values.length;
  const Q = qr(gaussianArray(n * n, seed), n, n).Q;
  const QL = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) QL[i * n + j] = Q[i * n + j]! * values[j]!;
  const A = hostMatmul(QL, Q, { m: n, n, k: n, transB: true });
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) A[i * n + j] = A[j * n + i] = 0.5 * (A[i * n + j]! + A[j * n + i]!);
  return A;
}

/** W = U diag(sigma) Vᵀ with random orthonormal U [m,k], V [n,k]. */
function knownSpectrum(m: number, n: number, sigma: ArrayLike<number>, seed: number): Float64Array {
  const k = sigma.length;
  const U = qr(gaussianArray(m * k, seed), m, k).Q;
  const V = qr(gaussianArray(n * k, seed + 1), n, k).Q;
  const us = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us[i * k + j] = U[i * k + j]! * sigma[j]!;
  return hostMatmul(us, V, { m, n, k, transB: true });
}

function checkEigen(A: Float64Array, n: number, r: { values: Float64Array; vectors: Float64Array }, tol: number) {
  let scale = 0;
  for (const x of A) scale = Math.max(scale, Math.abs(x));
  expect(orthoError(r.vectors, n, n)).toBeLessThan(1e-12);
  const AV = hostMatmul(A, r.vectors, { m: n, n, k: n });
  let res = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) res = Math.max(res, Math.abs(AV[i * n + j]! - r.vectors[i * n + j]! * r.values[j]!));
  expect(res).toBeLessThan(tol * Math.max(scale, 1e-300) * n);
  for (let i = 1; i < n; i++) expect(r.values[i]).toBeGreaterThanOrEqual(r.values[i - 1]!);
}

afterEach(() => {
  setGemm64Simd(true);
  setRowKernels(true);
  setExactSvdReference(false);
});

describe('gemm64 (WebAssembly f64x2 GEMM)', () => {
  // Sizes past every block edge (MC 64, NC 256, KC 256) and not multiples of the 4x4 tile.
  for (const simd of [true, false]) {
    it(`matches a naive triple loop for every transpose, accumulate and upper (${simd ? 'wasm' : 'js fallback'})`, () => {
      setGemm64Simd(simd);
      const m = 70,
        n = 261,
        k = 300;
      const A = gaussianArray(m * k, 1),
        B = gaussianArray(k * n, 2);
      const ref = new Float64Array(m * n);
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += A[i * k + p]! * B[p * n + j]!;
          ref[i * n + j] = s;
        }
      const At = transpose(A, m, k),
        Bt = transpose(B, k, n);
      for (const [a, b] of [
        [dense(A, k), dense(B, n)],
        [dense(At, m, true), dense(B, n)],
        [dense(A, k), dense(Bt, k, true)],
        [dense(At, m, true), dense(Bt, k, true)],
      ]) {
        const C = gaussianArray(m * n, 3); // overwritten, not accumulated
        gemm64(a!, b!, C, 0, n, m, n, k);
        expect(maxAbs(C, ref)).toBeLessThan(1e-12);
      }
      // Accumulate into a window of a larger matrix (ldc > n) without touching the rest.
      const ld = n + 5;
      const big = gaussianArray((m + 2) * ld, 4);
      const before = Float64Array.from(big);
      gemm64(dense(A, k), dense(B, n), big, 2 * ld + 3, ld, m, n, k, { accumulate: true });
      for (let i = 0; i < m + 2; i++)
        for (let j = 0; j < ld; j++) {
          const inWin = i >= 2 && j >= 3 && j < 3 + n;
          const want = inWin ? before[i * ld + j]! + ref[(i - 2) * n + (j - 3)]! : before[i * ld + j]!;
          expect(Math.abs(big[i * ld + j]! - want)).toBeLessThan(1e-12);
        }
      // Upper: a Gram matrix's upper triangle, from a float32 input.
      const W = Float32Array.from(gaussianArray(90 * 300, 5));
      const G = new Float64Array(90 * 90);
      gemm64(dense(W, 300), dense(W, 300, true), G, 0, 90, 90, 90, 300, { upper: true });
      for (let i = 0; i < 90; i++)
        for (let j = i; j < 90; j++) {
          let s = 0;
          for (let p = 0; p < 300; p++) s += W[i * 300 + p]! * W[j * 300 + p]!;
          expect(Math.abs(G[i * 90 + j]! - s)).toBeLessThan(1e-11);
        }
    });
  }
});

describe('symmetric eigensolver (tridiagonalization + divide and conquer)', () => {
  it('tridiagonalization: WebAssembly (fused) and JS paths agree, and Q T Qᵀ = A', () => {
    const n = 75;
    const A = randomSymmetric(n, 9);
    const w = tridiagonalize(A, n);
    setRowKernels(false);
    const j = tridiagonalize(A, n);
    // Same arithmetic up to summation order (entries of A are O(1), n = 75).
    expect(maxAbs(w.d, j.d)).toBeLessThan(1e-11);
    expect(maxAbs(w.e, j.e)).toBeLessThan(1e-11);
    const Q = new Float64Array(n * n);
    for (let i = 0; i < n; i++) Q[i * n + i] = 1;
    applyQ(w, n, Q, 16);
    const T = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      T[i * n + i] = w.d[i]!;
      if (i < n - 1) T[i * n + i + 1] = T[(i + 1) * n + i] = w.e[i]!;
    }
    const QTQ = hostMatmul(hostMatmul(Q, T, { m: n, n, k: n }), Q, { m: n, n, k: n, transB: true });
    expect(maxAbs(QTQ, A)).toBeLessThan(1e-12);
    expect(orthoError(Q, n, n)).toBeLessThan(1e-13);
  });

  it('random symmetric 150x150: residual and orthogonality at working precision, values = cyclic Jacobi', () => {
    const n = 150;
    const A = randomSymmetric(n, 10);
    const r = symmetricEigenDC(A, n);
    checkEigen(A, n, r, 1e-15);
    const ref = symmetricEigen(A, n).values; // descending
    for (let i = 0; i < n; i++) expect(Math.abs(r.values[i]! - ref[n - 1 - i]!)).toBeLessThan(1e-11);
  });

  it('clustered, repeated and zero eigenvalues (deflation paths) stay exact and orthogonal', () => {
    const n = 120;
    const vals = Array.from({ length: n }, (_, i) => (i < 40 ? 0 : i < 70 ? 1 : i < 72 ? 1 + 1e-13 * i : 2 + i / n));
    const A = withSpectrum(vals, 11);
    const r = symmetricEigenDC(A, n);
    checkEigen(A, n, r, 1e-15);
    const sorted = [...vals].sort((a, b) => a - b);
    for (let i = 0; i < n; i++) expect(Math.abs(r.values[i]! - sorted[i]!)).toBeLessThan(1e-13);
  });

  it('tridiagonal with a zero coupling and with Wilkinson-style close pairs', () => {
    const n = 101;
    const d = Float64Array.from({ length: n }, (_, i) => Math.abs(i - 50));
    const e = new Float64Array(n - 1).fill(1);
    e[50] = 0; // decoupled at the split point
    const T = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      T[i * n + i] = d[i]!;
      if (i < n - 1) T[i * n + i + 1] = T[(i + 1) * n + i] = e[i]!;
    }
    const r = tridiagEigenDC(Float64Array.from(d), e, n);
    checkEigen(T, n, r, 1e-15);
  });
});

describe('exact SVD through the Gram matrix vs the one-sided Jacobi reference', () => {
  const cases: [string, number, number, () => Float64Array | Float32Array][] = [
    ['random wide', 60, 170, () => gaussianArray(60 * 170, 21)],
    ['random tall float32', 170, 60, () => Float32Array.from(gaussianArray(170 * 60, 22))],
    ['random square', 90, 90, () => gaussianArray(90 * 90, 23)],
    [
      'decaying spectrum (σ₁/σ_min = 1e4)',
      80,
      200,
      () =>
        knownSpectrum(
          80,
          200,
          Array.from({ length: 80 }, (_, i) => Math.pow(1e-4, i / 79)),
          24,
        ),
    ],
  ];
  for (const [label, m, n, make] of cases) {
    it(`${label} ${m}x${n}: σ to 1e-10 relative, U and V orthonormal, reconstruction to 1e-12`, () => {
      const W = make();
      const r = exactSvd(W, m, n);
      const ref = jacobiSvd(W, m, n);
      const k = Math.min(m, n);
      for (let i = 0; i < k; i++) expect(Math.abs(r.S[i]! - ref.S[i]!) / ref.S[i]!).toBeLessThan(1e-10);
      expect(orthoError(r.U, m, k)).toBeLessThan(1e-10);
      expect(orthoError(transpose(r.Vt, k, n), n, k)).toBeLessThan(1e-10);
      const us = new Float64Array(m * k);
      for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us[i * k + j] = r.U[i * k + j]! * r.S[j]!;
      const rec = hostMatmul(us, r.Vt, { m, n, k });
      let scale = 0;
      for (let i = 0; i < W.length; i++) scale = Math.max(scale, Math.abs(W[i]!));
      expect(maxAbs(rec, Float64Array.from(W))).toBeLessThan(1e-12 * scale * Math.sqrt(n));
      // Singular vectors agree with the reference up to sign where σ is well separated.
      for (let j = 0; j < k; j++) {
        const gap = Math.min(j > 0 ? ref.S[j - 1]! - ref.S[j]! : Infinity, j < k - 1 ? ref.S[j]! - ref.S[j + 1]! : Infinity);
        if (gap < 1e-3 * ref.S[0]!) continue;
        let dot = 0;
        for (let i = 0; i < n; i++) dot += r.Vt[j * n + i]! * ref.Vt[j * n + i]!;
        expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(1e-8);
      }
    });
  }

  it('rank-deficient and zero matrices: exact zeros and a complete orthonormal basis', () => {
    const m = 30,
      n = 50;
    const W = knownSpectrum(m, n, [7, 3, 1e-2], 31);
    const r = gramSvd(W, m, n);
    expect(Math.abs(r.S[0]! - 7)).toBeLessThan(1e-13);
    expect(Math.abs(r.S[2]! - 1e-2) / 1e-2).toBeLessThan(1e-10);
    for (let i = 3; i < m; i++) expect(r.S[i]).toBeLessThan(1e-13);
    expect(orthoError(r.U, m, m)).toBeLessThan(1e-12);
    expect(orthoError(transpose(r.Vt, m, n), n, m)).toBeLessThan(1e-12);
    const z = exactSvd(new Float64Array(6 * 9), 6, 9);
    expect(Array.from(z.S)).toEqual(new Array(6).fill(0));
    expect(orthoError(z.U, 6, 6)).toBeLessThan(1e-14);
    expect(orthoError(transpose(z.Vt, 6, 9), 9, 6)).toBeLessThan(1e-14);
  });

  it('without WebAssembly kernels (JS GEMM and tridiagonalization) gives the same factors', () => {
    const m = 50,
      n = 120;
    const W = gaussianArray(m * n, 51);
    const a = exactSvd(W, m, n);
    setGemm64Simd(false);
    setRowKernels(false);
    const b = exactSvd(W, m, n);
    for (let i = 0; i < m; i++) expect(Math.abs(a.S[i]! - b.S[i]!) / a.S[i]!).toBeLessThan(1e-12);
    for (let j = 0; j < m; j++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += a.Vt[j * n + i]! * b.Vt[j * n + i]!;
      expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(1e-9);
    }
  });

  it('names a non-finite input value and where it is', () => {
    const W = gaussianArray(4 * 6, 61);
    W[9] = NaN;
    expect(() => exactSvd(W, 4, 6)).toThrow(/non-finite value NaN at row 1, column 3 of the 4x6 input/);
  });

  it('setExactSvdReference switches exactSvd to the Jacobi reference', () => {
    const W = gaussianArray(20 * 30, 41);
    setExactSvdReference(true);
    const a = exactSvd(W, 20, 30);
    setExactSvdReference(false);
    expect(Array.from(a.S)).toEqual(Array.from(jacobiSvd(W, 20, 30).S));
  });
});
