/**
 * Singular value decomposition for compression.
 *
 * - `exactSvd`: all min(m, n) components through the Gram matrix of the short side, a divide-and-conquer
 *   symmetric eigensolver and one projection GEMM (svd-gram.ts), in f64 on a WebAssembly SIMD GEMM. About
 *   13x faster than the Jacobi reference at 768x3072, singular values equal to ~1e-13 relative
 *   (docs/svd.md has the comparison of the algorithms tried).
 * - `jacobiSvd`: the reference: one-sided Jacobi (Hestenes) in f64, after a QR that reduces a tall matrix
 *   to its square R factor (wide matrices go through the transpose). Accurate to working precision;
 *   O(n³) per sweep, so slow past a few hundred; kept to check `exactSvd` against and to benchmark.
 * - `randomizedSvd`: Halko, Martinsson & Tropp (2011), Alg. 4.4 + 5.1: Gaussian sketch with oversampling p,
 *   q power iterations with QR re-orthonormalization after every product, then the exact SVD of the small
 *   projected matrix B = Qᵀ W. The four big products go through a pluggable matmul (host f64 by default, a
 *   Backend's matmul via `backendMatmul` + `svdAsync`); the algorithm is written once as a generator that
 *   yields its matmul requests so the sync and async drivers share it.
 * - `svd`: the dispatcher ('auto' | 'exact' | 'randomized').
 *
 * All matrices are row-major Float64Array. Result: U [m, r], S [r] descending, Vt [r, n].
 */
import { gaussianArray } from './rng';
import { hostMatmul, transpose, type AsyncMatmulFn, type MatmulFn, type MatmulShape } from './matmul';
import { qr } from './qr';
import { symmetricEigenQL } from './tridiag';
import { gramSvd } from './svd-gram';

export interface SvdResult {
  U: Float64Array;
  S: Float64Array;
  Vt: Float64Array;
  m: number;
  n: number;
  /** Number of components returned (columns of U). */
  rank: number;
  /** Which algorithm ran (for reports). */
  method: 'exact' | 'randomized';
}

export type SvdMethod = 'auto' | 'exact' | 'randomized';

export interface SvdOptions {
  method?: SvdMethod;
  /** Components wanted; absent = all min(m, n) (forces 'exact' under 'auto'). */
  rank?: number;
  /** Sketch seed (randomized only). Default 0. */
  seed?: number;
  /** Oversampling (randomized only). Default 10. */
  oversample?: number;
  /** Power iterations (randomized only). Default 2. */
  powerIters?: number;
  /** 'auto' uses exact when min(m, n) <= this. Default 256. */
  exactThreshold?: number;
}

export interface SyncSvdOptions extends SvdOptions {
  matmul?: MatmulFn;
}

export interface AsyncSvdOptions extends SvdOptions {
  matmul?: AsyncMatmulFn;
}

// ---------------------------------------------------------------------------------------------------------
// Exact: one-sided Jacobi.

/**
 * One-sided Jacobi on the columns of a [m, n] matrix with m >= n, given as `cols` (n rows of length m,
 * i.e. the transpose). Orthogonalizes the columns in place and returns the accumulated right rotations
 * as `vt` (n rows of length n: row j is column j of V).
 */
function jacobiColumns(cols: Float64Array, m: number, n: number, maxSweeps = 80, vtInit?: Float64Array): Float64Array {
  const vt = vtInit ?? new Float64Array(n * n);
  if (!vtInit) for (let j = 0; j < n; j++) vt[j * n + j] = 1;
  const norms = new Float64Array(n);
  // LAPACK-style threshold: columns count as orthogonal once their cosine is below m·eps.
  const tol = Math.max(1e-15, m * 2.220446049250313e-16);
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    // Exact norms at the start of each sweep; the cheap updates below drift otherwise.
    for (let j = 0; j < n; j++) {
      let s = 0;
      const o = j * m;
      for (let i = 0; i < m; i++) s += cols[o + i]! * cols[o + i]!;
      norms[j] = s;
    }
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      const po = p * m;
      for (let q = p + 1; q < n; q++) {
        const qo = q * m;
        const alpha = norms[p]!;
        const beta = norms[q]!;
        let gamma = 0;
        for (let i = 0; i < m; i++) gamma += cols[po + i]! * cols[qo + i]!;
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const xp = cols[po + i]!;
          const xq = cols[qo + i]!;
          cols[po + i] = c * xp - s * xq;
          cols[qo + i] = s * xp + c * xq;
        }
        const vp = p * n;
        const vq = q * n;
        for (let i = 0; i < n; i++) {
          const a = vt[vp + i]!;
          const b = vt[vq + i]!;
          vt[vp + i] = c * a - s * b;
          vt[vq + i] = s * a + c * b;
        }
        norms[p] = alpha - t * gamma;
        norms[q] = beta + t * gamma;
      }
    }
    if (!rotated) {
      lastJacobiSweeps = sweep + 1;
      break;
    }
  }
  return vt;
}

/** @internal sweeps the last Jacobi run needed (diagnostics for the benchmark). */
export let lastJacobiSweeps = 0;

/**
 * Fills columns of `uCols` (k rows of length m, row j = column j of U) whose index is in `missing` with
 * unit vectors orthogonal to every other column (Gram-Schmidt, twice, over standard basis candidates).
 * Needed when a singular value is (numerically) zero and its left vector is undefined.
 */
function completeOrthonormal(uCols: Float64Array, m: number, k: number, missing: Set<number>): void {
  let candidate = 0;
  for (const j of missing) {
    for (; candidate < m; candidate++) {
      const v = new Float64Array(m);
      v[candidate] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (let c = 0; c < k; c++) {
          if (c === j || (missing.has(c) && c > j)) continue;
          const o = c * m;
          let d = 0;
          for (let i = 0; i < m; i++) d += uCols[o + i]! * v[i]!;
          for (let i = 0; i < m; i++) v[i]! -= d * uCols[o + i]!;
        }
      }
      let nrm = 0;
      for (let i = 0; i < m; i++) nrm += v[i]! * v[i]!;
      nrm = Math.sqrt(nrm);
      if (nrm > 0.5) {
        for (let i = 0; i < m; i++) uCols[j * m + i] = v[i]! / nrm;
        candidate++;
        break;
      }
    }
  }
}

/**
 * Jacobi SVD of a tall-or-square [m, n] matrix (m >= n), all n components.
 *
 * A tall matrix is first reduced to its square R factor (QR), so everything after costs O(n³).
 * 'seeded' (default): V₀ from the eigenvectors of RᵀR (tridiagonal QL, cheap), then one-sided Jacobi on
 * X = R·V₀, whose columns are already nearly orthogonal, so only a few polishing sweeps run; the result
 * has Jacobi's accuracy (it is the Jacobi SVD of X, and V₀ is orthogonal to working precision).
 * 'qr': Jacobi from the identity (the reference path, and the fallback if QL fails to converge).
 */
function exactTall(
  a: Float64Array,
  m: number,
  n: number,
  variant: 'seeded' | 'qr' = 'seeded',
): { U: Float64Array; S: Float64Array; Vt: Float64Array } {
  let Q: Float64Array | null = null;
  let work = a;
  let rows = m;
  if (m > n) {
    const f = qr(a, m, n);
    Q = f.Q;
    work = f.R;
    rows = n;
  }
  let seed: Float64Array | null = null;
  if (variant === 'seeded') {
    try {
      seed = symmetricEigenQL(hostMatmul(work, work, { m: n, n, k: rows, transA: true }), n).vectorsT;
    } catch {
      seed = null;
    }
  }
  let cols: Float64Array;
  let vt: Float64Array;
  if (seed) {
    // cols[j] = work·v_j (rows of V₀ᵀ·workᵀ).
    cols = hostMatmul(seed, work, { m: n, n: rows, k: n, transB: true });
    vt = jacobiColumns(cols, rows, n, 80, seed);
  } else {
    cols = transpose(work, rows, n);
    vt = jacobiColumns(cols, rows, n);
  }
  const sig = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < rows; i++) s += cols[j * rows + i]! ** 2;
    sig[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => sig[j]! - sig[i]! || i - j);
  const S = new Float64Array(n);
  const Vt = new Float64Array(n * n);
  const uCols = new Float64Array(n * rows);
  const smax = sig[order[0]!] ?? 0;
  const missing = new Set<number>();
  order.forEach((src, dst) => {
    S[dst] = sig[src]!;
    Vt.set(vt.subarray(src * n, src * n + n), dst * n);
    if (sig[src]! <= smax * 1e-14 || sig[src] === 0) {
      missing.add(dst);
      return;
    }
    const inv = 1 / sig[src]!;
    for (let i = 0; i < rows; i++) uCols[dst * rows + i] = cols[src * rows + i]! * inv;
  });
  if (missing.size > 0) completeOrthonormal(uCols, rows, n, missing);
  let U = transpose(uCols, n, rows); // [rows, n]
  if (Q) U = hostMatmul(Q, U, { m, n, k: n });
  return { U, S, Vt };
}

/**
 * Exact SVD (all min(m, n) components, or the top `rank`): Gram + divide-and-conquer eigensolver
 * (svd-gram.ts). The input may be a Float32Array (read in place, widened to f64 while packing).
 */
export function exactSvd(a: ArrayLike<number>, m: number, n: number, rank?: number): SvdResult {
  checkShape(a, m, n);
  if (referenceMode) return jacobiSvd(a, m, n, rank);
  // A NaN or infinity would surface later as a convergence failure (or NaN factors) far from its cause.
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]))
      throw new Error(`svd: non-finite value ${a[i]} at row ${Math.floor(i / n)}, column ${i % n} of the ${m}x${n} input`);
  }
  const { U, S, Vt } = gramSvd(a, m, n);
  return truncate({ U, S, Vt, m, n, rank: Math.min(m, n), method: 'exact' }, rank ?? Math.min(m, n));
}

let referenceMode = false;

/**
 * Makes `exactSvd` run the Jacobi reference instead (tests that compare whole pipelines, e.g. GradOT kept
 * sets, old vs new); returns the previous setting.
 */
export function setExactSvdReference(on: boolean): boolean {
  const prev = referenceMode;
  referenceMode = on;
  return prev;
}

/** The reference exact SVD: one-sided Jacobi (all min(m, n) components, or the top `rank`). */
export function jacobiSvd(a: ArrayLike<number>, m: number, n: number, rank?: number): SvdResult {
  checkShape(a, m, n);
  const A = a instanceof Float64Array ? a : Float64Array.from(a);
  const k = Math.min(m, n);
  let U: Float64Array;
  let S: Float64Array;
  let Vt: Float64Array;
  if (m >= n) {
    ({ U, S, Vt } = exactTall(A, m, n));
  } else {
    // Aᵀ = U' S V'ᵀ  =>  A = V' S U'ᵀ.
    const r = exactTall(transpose(A, m, n), n, m);
    U = transpose(r.Vt, k, m); // [m, k]
    S = r.S;
    Vt = transpose(r.U, n, k); // [k, n]
  }
  return truncate({ U, S, Vt, m, n, rank: k, method: 'exact' }, rank ?? k);
}

function truncate(r: SvdResult, rank: number): SvdResult {
  if (rank >= r.rank) return r;
  if (rank < 0 || !Number.isInteger(rank)) throw new Error(`svd: rank must be a non-negative integer, got ${rank}`);
  const U = new Float64Array(r.m * rank);
  for (let i = 0; i < r.m; i++) for (let j = 0; j < rank; j++) U[i * rank + j] = r.U[i * r.rank + j]!;
  return {
    U,
    S: r.S.slice(0, rank),
    Vt: r.Vt.slice(0, rank * r.n),
    m: r.m,
    n: r.n,
    rank,
    method: r.method,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Randomized: one algorithm, two drivers.

interface MatmulRequest {
  a: Float64Array;
  b: Float64Array;
  p: MatmulShape;
}

function* randomizedSteps(
  W: Float64Array,
  m: number,
  n: number,
  rank: number,
  opts: SvdOptions,
): Generator<MatmulRequest, SvdResult, Float64Array> {
  const p = opts.oversample ?? 10;
  const q = opts.powerIters ?? 2;
  const l = Math.min(rank + p, m, n);
  const omega = gaussianArray(n * l, opts.seed ?? 0);
  // Y = W Ω  [m, l]
  let Y: Float64Array = yield { a: W, b: omega, p: { m, n: l, k: n } };
  let Q = qr(Y, m, l).Q;
  for (let it = 0; it < q; it++) {
    // Z = Wᵀ Q  [n, l], re-orthonormalized so small singular directions are not lost to round-off.
    const Z: Float64Array = yield { a: W, b: Q, p: { m: n, n: l, k: m, transA: true } };
    const Qz = qr(Z, n, l).Q;
    Y = yield { a: W, b: Qz, p: { m, n: l, k: n } };
    Q = qr(Y, m, l).Q;
  }
  // B = Qᵀ W  [l, n]; its exact SVD gives the factors.
  const B: Float64Array = yield { a: Q, b: W, p: { m: l, n, k: m, transA: true } };
  const small = exactSvd(B, l, n);
  const U = hostMatmul(Q, small.U, { m, n: small.rank, k: l });
  return truncate({ U, S: small.S, Vt: small.Vt, m, n, rank: small.rank, method: 'randomized' }, rank);
}

function checkShape(a: ArrayLike<number>, m: number, n: number): void {
  if (!(Number.isInteger(m) && Number.isInteger(n) && m > 0 && n > 0)) throw new Error(`svd: bad shape ${m}x${n}`);
  if (a.length !== m * n) throw new Error(`svd: got ${a.length} elements, expected ${m}x${n}`);
}

function checkInput(a: ArrayLike<number>, m: number, n: number): Float64Array {
  checkShape(a, m, n);
  return a instanceof Float64Array ? a : Float64Array.from(a);
}

export function randomizedSvd(a: ArrayLike<number>, m: number, n: number, rank: number, opts: SyncSvdOptions = {}): SvdResult {
  const W = checkInput(a, m, n);
  const mm = opts.matmul ?? hostMatmul;
  const gen = randomizedSteps(W, m, n, rank, opts);
  let step = gen.next();
  while (!step.done) step = gen.next(mm(step.value.a, step.value.b, step.value.p));
  return step.value;
}

export async function randomizedSvdAsync(
  a: ArrayLike<number>,
  m: number,
  n: number,
  rank: number,
  opts: AsyncSvdOptions = {},
): Promise<SvdResult> {
  const W = checkInput(a, m, n);
  const gen = randomizedSteps(W, m, n, rank, opts);
  let step = gen.next();
  while (!step.done) {
    const { a: x, b: y, p } = step.value;
    step = gen.next(opts.matmul ? await opts.matmul(x, y, p) : hostMatmul(x, y, p));
  }
  return step.value;
}

/** Which algorithm `svd` runs for these arguments. */
export function chooseSvdMethod(m: number, n: number, opts: SvdOptions): 'exact' | 'randomized' {
  const method = opts.method ?? 'auto';
  if (method !== 'auto') {
    if (method === 'randomized' && opts.rank === undefined) throw new Error('svd: randomized needs a rank');
    return method;
  }
  const k = Math.min(m, n);
  if (opts.rank === undefined || k <= (opts.exactThreshold ?? 256)) return 'exact';
  // The exact path (Gram + divide-and-conquer on the f64 GEMM) is cheaper unless the sketch is a small
  // fraction of the matrix: measured on 768x3072 and 2048x5632, randomized (q = 2, p = 10, its QRs in
  // JavaScript) breaks even near rank = k/8 and is 5-8x slower at rank = k/4 (docs/svd.md).
  if (opts.rank + (opts.oversample ?? 10) > k / 10) return 'exact';
  return 'randomized';
}

export function svd(a: ArrayLike<number>, m: number, n: number, opts: SyncSvdOptions = {}): SvdResult {
  const W = checkInput(a, m, n);
  return chooseSvdMethod(m, n, opts) === 'exact' ? exactSvd(W, m, n, opts.rank) : randomizedSvd(W, m, n, opts.rank as number, opts);
}

export async function svdAsync(a: ArrayLike<number>, m: number, n: number, opts: AsyncSvdOptions = {}): Promise<SvdResult> {
  const W = checkInput(a, m, n);
  return chooseSvdMethod(m, n, opts) === 'exact' ? exactSvd(W, m, n, opts.rank) : randomizedSvdAsync(W, m, n, opts.rank as number, opts);
}

/** @internal both Jacobi variants, for the equivalence test and the benchmark. */
export function _exactTallVariant(a: Float64Array, m: number, n: number, variant: 'seeded' | 'qr') {
  return exactTall(a, m, n, variant);
}
