import { describe, expect, it } from 'vitest';
import { gaussianArray } from './rng';
import { hostMatmul, transpose } from './matmul';
import { qr } from './qr';
import { symmetricEigen } from './eig';
import { _exactTallVariant, chooseSvdMethod, exactSvd, randomizedSvd, randomizedSvdAsync, svd, type SvdResult } from './svd';
import { symmetricEigenQL } from './tridiag';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
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

function reconstruct(r: SvdResult): Float64Array {
  const us = new Float64Array(r.m * r.rank);
  for (let i = 0; i < r.m; i++) for (let j = 0; j < r.rank; j++) us[i * r.rank + j] = r.U[i * r.rank + j]! * r.S[j]!;
  return hostMatmul(us, r.Vt, { m: r.m, n: r.n, k: r.rank });
}

function frob(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

/** W = U diag(sigma) Vᵀ with random orthonormal U [m,k], V [n,k]. */
function knownSpectrum(m: number, n: number, sigma: Float64Array, seed: number): Float64Array {
  const k = sigma.length;
  const U = qr(gaussianArray(m * k, seed), m, k).Q;
  const V = qr(gaussianArray(n * k, seed + 1), n, k).Q;
  const us = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us[i * k + j] = U[i * k + j]! * sigma[j]!;
  return hostMatmul(us, V, { m, n, k, transB: true });
}

describe('matmul', () => {
  it('hostMatmul handles every transpose combination against a naive triple loop', () => {
    const m = 5,
      n = 7,
      k = 3;
    const A = gaussianArray(m * k, 1);
    const B = gaussianArray(k * n, 2);
    const ref = new Float64Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) s += A[i * k + l]! * B[l * n + j]!;
        ref[i * n + j] = s;
      }
    const At = transpose(A, m, k);
    const Bt = transpose(B, k, n);
    expect(maxAbsDiff(hostMatmul(A, B, { m, n, k }), ref)).toBeLessThan(1e-14);
    expect(maxAbsDiff(hostMatmul(At, B, { m, n, k, transA: true }), ref)).toBeLessThan(1e-14);
    expect(maxAbsDiff(hostMatmul(A, Bt, { m, n, k, transB: true }), ref)).toBeLessThan(1e-14);
    expect(maxAbsDiff(hostMatmul(At, Bt, { m, n, k, transA: true, transB: true }), ref)).toBeLessThan(1e-14);
  });
});

describe('qr', () => {
  for (const [m, n] of [
    [9, 4],
    [6, 6],
    [4, 9],
    [37, 13],
  ] as const) {
    it(`reconstructs ${m}x${n} with orthonormal Q and triangular R`, () => {
      const A = gaussianArray(m * n, m * 100 + n);
      const { Q, R, k } = qr(A, m, n);
      expect(k).toBe(Math.min(m, n));
      expect(maxAbsDiff(hostMatmul(Q, R, { m, n, k }), A)).toBeLessThan(1e-12);
      expect(orthoError(Q, m, k)).toBeLessThan(1e-12);
      for (let i = 0; i < k; i++) for (let j = 0; j < Math.min(i, n); j++) expect(R[i * n + j]).toBe(0);
    });
  }
  it('keeps Q orthonormal for a rank-deficient input', () => {
    const m = 10,
      n = 4;
    const A = gaussianArray(m * n, 5);
    for (let i = 0; i < m; i++) A[i * n + 2] = A[i * n + 0]! * 2 - A[i * n + 1]!; // col 2 dependent
    const { Q, R } = qr(A, m, n);
    expect(orthoError(Q, m, n)).toBeLessThan(1e-12);
    expect(maxAbsDiff(hostMatmul(Q, R, { m, n, k: n }), A)).toBeLessThan(1e-12);
  });
});

describe('symmetricEigen', () => {
  it('diagonalizes a random symmetric matrix: A V = V Λ, V orthonormal, values descending', () => {
    const n = 12;
    const X = gaussianArray(n * n, 7);
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * n + j] = X[i * n + j]! + X[j * n + i]!;
    const { values, vectors } = symmetricEigen(A, n);
    expect(orthoError(vectors, n, n)).toBeLessThan(1e-12);
    const AV = hostMatmul(A, vectors, { m: n, n, k: n });
    const VL = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) VL[i * n + j] = vectors[i * n + j]! * values[j]!;
    expect(maxAbsDiff(AV, VL)).toBeLessThan(1e-11);
    for (let i = 1; i < n; i++) expect(values[i]).toBeLessThanOrEqual(values[i - 1]!);
    let tr = 0,
      sum = 0;
    for (let i = 0; i < n; i++) {
      tr += A[i * n + i]!;
      sum += values[i]!;
    }
    expect(Math.abs(tr - sum)).toBeLessThan(1e-11);
  });
});

describe('exact SVD (one-sided Jacobi)', () => {
  for (const [m, n] of [
    [1, 1],
    [1, 5],
    [5, 1],
    [7, 7],
    [13, 5],
    [5, 13],
    [40, 17],
    [17, 40],
    [33, 33],
  ] as const) {
    it(`reconstructs random ${m}x${n} to 1e-10 with orthonormal U, V and descending S`, () => {
      const A = gaussianArray(m * n, 1000 + m * 31 + n);
      const r = exactSvd(A, m, n);
      const k = Math.min(m, n);
      expect(r.rank).toBe(k);
      expect(maxAbsDiff(reconstruct(r), A)).toBeLessThan(1e-10);
      expect(orthoError(r.U, m, k)).toBeLessThan(1e-10);
      expect(orthoError(transpose(r.Vt, k, n), n, k)).toBeLessThan(1e-10);
      for (let i = 1; i < k; i++) expect(r.S[i]).toBeLessThanOrEqual(r.S[i - 1]!);
      for (let i = 0; i < k; i++) expect(r.S[i]).toBeGreaterThanOrEqual(0);
    });
  }

  it('recovers a known spectrum exactly and completes U for a rank-deficient matrix', () => {
    const m = 20,
      n = 12;
    const sigma = Float64Array.from([9, 5, 3, 1, 0.5]);
    const W = knownSpectrum(m, n, sigma, 3);
    const r = exactSvd(W, m, n);
    for (let i = 0; i < 5; i++) expect(Math.abs(r.S[i]! - sigma[i]!)).toBeLessThan(1e-12);
    for (let i = 5; i < n; i++) expect(r.S[i]).toBeLessThan(1e-12);
    expect(orthoError(r.U, m, n)).toBeLessThan(1e-10);
    expect(maxAbsDiff(reconstruct(r), W)).toBeLessThan(1e-12);
  });

  it('matches singular values from the eigenvalues of AᵀA', () => {
    const m = 15,
      n = 9;
    const A = gaussianArray(m * n, 11);
    const ata = hostMatmul(A, A, { m: n, n, k: m, transA: true });
    const { values } = symmetricEigen(ata, n);
    const r = exactSvd(A, m, n);
    for (let i = 0; i < n; i++) expect(Math.abs(r.S[i]! - Math.sqrt(Math.max(values[i]!, 0)))).toBeLessThan(1e-10);
  });

  it('truncates to the top-r components', () => {
    const A = gaussianArray(12 * 8, 4);
    const full = exactSvd(A, 12, 8);
    const r = exactSvd(A, 12, 8, 3);
    expect(r.rank).toBe(3);
    expect(Array.from(r.S)).toEqual(Array.from(full.S.slice(0, 3)));
    expect(r.U.length).toBe(12 * 3);
    expect(r.Vt.length).toBe(3 * 8);
  });

  it('matches the numpy reference fixture (values and |U|, |V| up to sign)', async () => {
    const fx = (await import('./__fixtures__/svd_numpy.json')).default as {
      m: number;
      n: number;
      a: number[];
      s: number[];
      u: number[];
      vt: number[];
    };
    const r = exactSvd(Float64Array.from(fx.a), fx.m, fx.n);
    expect(maxAbsDiff(r.S, fx.s)).toBeLessThan(1e-12);
    const k = Math.min(fx.m, fx.n);
    // Each singular pair is defined up to a shared sign flip.
    for (let j = 0; j < k; j++) {
      let dot = 0;
      for (let i = 0; i < fx.m; i++) dot += r.U[i * k + j]! * fx.u[i * k + j]!;
      const sgn = Math.sign(dot);
      for (let i = 0; i < fx.m; i++) expect(Math.abs(r.U[i * k + j]! - sgn * fx.u[i * k + j]!)).toBeLessThan(1e-10);
      for (let i = 0; i < fx.n; i++) expect(Math.abs(r.Vt[j * fx.n + i]! - sgn * fx.vt[j * fx.n + i]!)).toBeLessThan(1e-10);
    }
  });
});

describe('randomized SVD', () => {
  const m = 300,
    n = 180,
    full = 60;
  const sigma = Float64Array.from({ length: full }, (_, i) => 10 * Math.pow(0.8, i));
  const W = knownSpectrum(m, n, sigma, 21);
  const k = 12;

  function optimalTailError(): number {
    let s = 0;
    for (let i = k; i < full; i++) s += sigma[i]! ** 2;
    return Math.sqrt(s);
  }

  it('recovers the top-k σ of a known decaying spectrum and near-optimal rank-k error', () => {
    const r = randomizedSvd(W, m, n, k, { seed: 5 });
    expect(r.method).toBe('randomized');
    expect(r.rank).toBe(k);
    for (let i = 0; i < k; i++) expect(Math.abs(r.S[i]! - sigma[i]!) / sigma[i]!).toBeLessThan(1e-6);
    expect(orthoError(r.U, m, k)).toBeLessThan(1e-10);
    expect(orthoError(transpose(r.Vt, k, n), n, k)).toBeLessThan(1e-10);
    const rec = reconstruct(r);
    const err = frob(rec.map((v, i) => v - W[i]!));
    // Eckart-Young: the best rank-k error is the tail norm; the sketch should be within 1%.
    expect(err).toBeGreaterThanOrEqual(optimalTailError() * (1 - 1e-9));
    expect(err).toBeLessThan(optimalTailError() * 1.01);
  });

  it('is deterministic for a seed and works for wide matrices', () => {
    const Wt = transpose(W, m, n);
    const a = randomizedSvd(Wt, n, m, k, { seed: 9 });
    const b = randomizedSvd(Wt, n, m, k, { seed: 9 });
    expect(Array.from(a.S)).toEqual(Array.from(b.S));
    for (let i = 0; i < k; i++) expect(Math.abs(a.S[i]! - sigma[i]!) / sigma[i]!).toBeLessThan(1e-6);
  });

  it('runs its products through a pluggable (async) matmul, e.g. a Backend', async () => {
    let calls = 0;
    const r = await randomizedSvdAsync(W, m, n, k, {
      seed: 5,
      matmul: async (a, b, p) => {
        calls++;
        return hostMatmul(a, b, p);
      },
    });
    // W·Ω, 2 × (Wᵀ·Q, W·Q), Qᵀ·W
    expect(calls).toBe(6);
    const s = randomizedSvd(W, m, n, k, { seed: 5 });
    expect(maxAbsDiff(r.S, s.S)).toBe(0);
  });

  it('without power iterations on a flat spectrum is worse than with them (the iterations matter)', () => {
    const flat = Float64Array.from({ length: full }, (_, i) => 1 / (1 + 0.05 * i));
    const Wf = knownSpectrum(m, n, flat, 77);
    let tail = 0;
    for (let i = k; i < full; i++) tail += flat[i]! ** 2;
    tail = Math.sqrt(tail);
    const e = (q: number) => {
      const r = randomizedSvd(Wf, m, n, k, { seed: 1, powerIters: q });
      return frob(reconstruct(r).map((v, i) => v - Wf[i]!));
    };
    const e0 = e(0),
      e2 = e(2);
    expect(e2).toBeLessThan(e0);
    expect(e2).toBeLessThan(tail * 1.05);
  });

  it('auto picks exact for small or full-spectrum requests, randomized for large low-rank ones', () => {
    expect(chooseSvdMethod(256, 1024, { rank: 8 })).toBe('exact');
    expect(chooseSvdMethod(1024, 1024, {})).toBe('exact');
    expect(chooseSvdMethod(1024, 768, { rank: 64 })).toBe('randomized');
    expect(chooseSvdMethod(1024, 768, { rank: 192 })).toBe('exact');
    expect(chooseSvdMethod(1024, 768, { rank: 600 })).toBe('exact');
    expect(() => svd(W, m, n, { method: 'randomized' })).toThrow(/rank/);
    expect(svd(W, m, n, { rank: 4 }).method).toBe('exact');
  });
});

describe('tridiagonal QL eigen and the seeded Jacobi SVD', () => {
  for (const n of [1, 2, 5, 40]) {
    it(`symmetricEigenQL diagonalizes a random symmetric ${n}x${n}`, () => {
      const X = gaussianArray(n * n, 300 + n);
      const A = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) A[i * n + j] = X[i * n + j]! + X[j * n + i]!;
      const { values, vectorsT } = symmetricEigenQL(A, n);
      expect(orthoError(transpose(vectorsT, n, n), n, n)).toBeLessThan(1e-12);
      const AV = hostMatmul(vectorsT, A, { m: n, n, k: n });
      for (let j = 0; j < n; j++)
        for (let k = 0; k < n; k++) expect(Math.abs(AV[j * n + k]! - values[j]! * vectorsT[j * n + k]!)).toBeLessThan(1e-11);
      const ref = symmetricEigen(A, n).values;
      const sorted = Array.from(values).sort((a, b) => b - a);
      for (let i = 0; i < n; i++) expect(Math.abs(sorted[i]! - ref[i]!)).toBeLessThan(1e-11);
    });
  }

  for (const [m, n, label] of [
    [30, 30, 'square'],
    [45, 20, 'tall'],
    [24, 24, 'rank-deficient'],
  ] as const) {
    it(`seeded and plain Jacobi agree (${label})`, () => {
      let A = gaussianArray(m * n, m + n);
      if (label === 'rank-deficient') A = knownSpectrum(m, n, Float64Array.from([5, 4, 1, 1e-3]), 8);
      const a = _exactTallVariant(A, m, n, 'seeded');
      const b = _exactTallVariant(A, m, n, 'qr');
      for (let i = 0; i < n; i++) expect(Math.abs(a.S[i]! - b.S[i]!)).toBeLessThan(1e-12);
      expect(orthoError(a.U, m, n)).toBeLessThan(1e-10);
      expect(orthoError(transpose(a.Vt, n, n), n, n)).toBeLessThan(1e-10);
      expect(maxAbsDiff(reconstruct({ ...a, m, n, rank: n, method: 'exact' }), A)).toBeLessThan(1e-12);
    });
  }
});
