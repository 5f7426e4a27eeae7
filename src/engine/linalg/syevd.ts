/**
 * Symmetric eigendecomposition for large n (hundreds to thousands), the LAPACK dsyevd recipe in f64:
 *
 * 1. Householder tridiagonalization A = Q T Qᵀ (dsytd2: lower triangle, one symmetric matrix-vector product
 *    and one rank-2 update per column, both over the trailing lower triangle only).
 * 2. Cuppen's divide and conquer on T (dstedc/dlaed*): split T into two halves plus a rank-one term, solve
 *    the halves recursively, then the secular equation of the rank-one update. Deflation (small weights,
 *    close poles) keeps clustered and rank-deficient spectra cheap and exact; the Gu-Eisenstat recomputed
 *    weights keep the eigenvectors orthogonal without reorthogonalization. The merge's eigenvector product
 *    is one f64 GEMM (gemm64), which is where most of the O(n³) goes. Blocks of <= 32 use implicit QL.
 * 3. Back-transform Z <- Q Z with the reflectors grouped in blocks of 64 (compact WY, dlarft/dlarfb), so
 *    that too runs on the GEMM.
 *
 * Why not QL on the whole matrix (tridiag.ts): its eigenvector accumulation applies ~n² plane rotations to
 * n-vectors, memory-bound and 3-4x slower than this at n = 768 (docs/svd.md).
 */
import { dense, gemm64 } from './gemm64';
import { rowKernels } from './rowops';
import { implicitQL } from './tridiag';

export interface SymEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** [n, n] row-major; column j is the unit eigenvector of values[j]. */
  vectors: Float64Array;
}

const EPS = 2.220446049250313e-16;

// ---------------------------------------------------------------------------------------------------------
// 1. Tridiagonalization.

interface Tridiag {
  d: Float64Array;
  e: Float64Array;
  /** Reflector j acts on indices j+1..n-1: H_j = I - tau[j] v vᵀ with v[j+1] = 1, v[i] = refl[i*n + j] for i > j+1. */
  refl: Float64Array;
  tau: Float64Array;
}

/** Householder reduction of a symmetric [n, n] (only the lower triangle is read). Does not modify `input`. */
export function tridiagonalize(input: Float64Array, n: number): Tridiag {
  const ker = n >= 16 ? rowKernels(n * n + 4 * n) : null;
  return ker ? tridiagonalizeFused(input, n, ker) : tridiagonalizeJs(input, n);
}

/**
 * Householder vector of step i from column i (rows i+1..n-1) of A: stores it in v (v[i+1] = 1) and below
 * the diagonal of column i, sets d[i], e[i], tau[i]; returns tau[i] (0: nothing to reflect, v is zero).
 */
function reflector(A: Float64Array, n: number, i: number, v: Float64Array, d: Float64Array, e: Float64Array, tau: Float64Array): number {
  const s = i + 1;
  const alpha = A[s * n + i]!;
  let xnorm2 = 0;
  for (let r = s + 1; r < n; r++) xnorm2 += A[r * n + i]! * A[r * n + i]!;
  d[i] = A[i * n + i]!;
  if (xnorm2 === 0) {
    tau[i] = 0;
    e[i] = alpha;
    for (let r = s + 1; r < n; r++) A[r * n + i] = 0;
    v.fill(0, s, n);
    return 0;
  }
  const beta = -(alpha >= 0 ? 1 : -1) * Math.sqrt(alpha * alpha + xnorm2);
  const t = (beta - alpha) / beta;
  const scale = 1 / (alpha - beta);
  v[s] = 1;
  for (let r = s + 1; r < n; r++) {
    const vr = A[r * n + i]! * scale;
    v[r] = vr;
    A[r * n + i] = vr; // keep the reflector where the column was
  }
  tau[i] = t;
  e[i] = beta;
  return t;
}

/** y <- t·y, then y <- y - (t/2)(yᵀv) v over s..n-1 (y becomes the w of the rank-2 update). */
function finishW(y: Float64Array, v: Float64Array, t: number, s: number, n: number): void {
  let yv = 0;
  for (let r = s; r < n; r++) {
    y[r]! *= t;
    yv += y[r]! * v[r]!;
  }
  const half = -0.5 * t * yv;
  for (let r = s; r < n; r++) y[r]! += half * v[r]!;
}

/** Plain JS: per step one symmetric matrix-vector product and one rank-2 update over the lower triangle. */
function tridiagonalizeJs(input: Float64Array, n: number): Tridiag {
  const A = Float64Array.from(input);
  const v = new Float64Array(n);
  const y = new Float64Array(n);
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  const tau = new Float64Array(Math.max(n - 1, 0));
  for (let i = 0; i < n - 2; i++) {
    const s = i + 1;
    const t = reflector(A, n, i, v, d, e, tau);
    if (t === 0) continue;
    // y = t·A22·v over the lower triangle: row r contributes A[r, c]·v[c] to y[r] and A[r, c]·v[r] to y[c].
    y.fill(0, s, n);
    for (let r = s; r < n; r++) {
      const ro = r * n;
      const vr = v[r]!;
      let acc = 0;
      for (let c = s; c < r; c++) {
        const a = A[ro + c]!;
        acc += a * v[c]!;
        y[c]! += a * vr;
      }
      y[r]! += acc + A[ro + r]! * vr;
    }
    finishW(y, v, t, s, n);
    // A22 -= v wᵀ + w vᵀ (lower triangle).
    for (let r = s; r < n; r++) {
      const ro = r * n;
      const vr = v[r]!;
      const wr = y[r]!;
      for (let c = s; c <= r; c++) A[ro + c]! -= vr * y[c]! + wr * v[c]!;
    }
  }
  return finishTridiag(A, n, d, e, tau, A);
}

function finishTridiag(A: Float64Array, n: number, d: Float64Array, e: Float64Array, tau: Float64Array, refl: Float64Array): Tridiag {
  if (n >= 2) {
    d[n - 2] = A[(n - 2) * n + n - 2]!;
    e[n - 2] = A[(n - 1) * n + n - 2]!;
    tau[n - 2] = 0;
  }
  if (n >= 1) d[n - 1] = A[(n - 1) * n + n - 1]!;
  return { d, e, refl, tau };
}

/**
 * WebAssembly path. A (lower triangle) and the step vectors live in the kernel memory; the rank-2 update
 * of step i and the symmetric product of step i+1 share one pass over the trailing matrix (`fused`): the
 * column that defines reflector i+1 is updated first, so its vector is known before the pass. This reads
 * and writes the trailing matrix once per step instead of reading it twice and writing it once, which
 * matters because the reduction is memory-bound once the matrix outgrows the caches (n >= ~700).
 */
function tridiagonalizeFused(input: Float64Array, n: number, ker: NonNullable<ReturnType<typeof rowKernels>>): Tridiag {
  const nn = n * n;
  const A = ker.mem.subarray(0, nn);
  A.set(input);
  // Two (v, y) pairs, swapped every step: the current step's and the next one's.
  const bufs = [0, 1, 2, 3].map((q) => ker.mem.subarray(nn + q * n, nn + (q + 1) * n));
  const byteOf = (q: number) => (nn + q * n) * 8;
  let cur = 0; // bufs[cur] = v, bufs[cur + 1] = y (then w)
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  const tau = new Float64Array(Math.max(n - 1, 0));
  if (n > 2) {
    // Step 0's product runs alone.
    const v = bufs[0]!,
      y = bufs[1]!;
    const t = reflector(A, n, 0, v, d, e, tau);
    y.fill(0);
    if (t !== 0) {
      for (let r = 1; r < n; r++) {
        const ro = r * n;
        const pairs = (r - 1) >> 1;
        let acc = ker.symv((ro + 1) * 8, byteOf(0) + 8, byteOf(1) + 8, pairs, v[r]!);
        for (let c = 1 + 2 * pairs; c < r; c++) {
          acc += A[ro + c]! * v[c]!;
          y[c]! += A[ro + c]! * v[r]!;
        }
        y[r]! += acc + A[ro + r]! * v[r]!;
      }
      finishW(y, v, t, 1, n);
    }
  }
  for (let i = 0; i < n - 2; i++) {
    const s = i + 1;
    const v = bufs[cur]!,
      w = bufs[cur + 1]!;
    const active = tau[i] !== 0; // else v = w = 0: nothing to update
    const nxt = cur ^ 2;
    const vn = bufs[nxt]!,
      yn = bufs[nxt + 1]!;
    if (i + 1 < n - 2) {
      // (a) column s of the trailing block (rows s..n-1), then (b) reflector s from it.
      if (active) {
        const ws = w[s]!,
          vs = v[s]!;
        for (let r = s; r < n; r++) A[r * n + s]! -= v[r]! * ws + w[r]! * vs;
      }
      const tn = reflector(A, n, s, vn, d, e, tau);
      // (c) rows s+1..n-1, columns s+1..r: update with (v, w), product with vn on the updated values.
      const s1 = s + 1;
      yn.fill(0);
      for (let r = s1; r < n; r++) {
        const ro = r * n;
        const vr = v[r]!,
          wr = w[r]!,
          vnr = vn[r]!;
        const pairs = (r - s1) >> 1;
        let acc = ker.fused(
          (ro + s1) * 8,
          byteOf(cur) + s1 * 8,
          byteOf(cur + 1) + s1 * 8,
          byteOf(nxt) + s1 * 8,
          byteOf(nxt + 1) + s1 * 8,
          pairs,
          vr,
          wr,
          vnr,
        );
        for (let c = s1 + 2 * pairs; c < r; c++) {
          const a = (A[ro + c]! -= vr * w[c]! + wr * v[c]!);
          acc += a * vn[c]!;
          yn[c]! += a * vnr;
        }
        const diag = (A[ro + r]! -= 2 * vr * wr);
        yn[r]! += acc + diag * vnr;
      }
      if (tn !== 0) finishW(yn, vn, tn, s1, n);
      cur = nxt;
    } else if (active) {
      // Last step: the update alone.
      for (let r = s; r < n; r++) {
        const ro = r * n;
        const vr = v[r]!,
          wr = w[r]!;
        const pairs = (r - s + 1) >> 1;
        ker.syr2((ro + s) * 8, byteOf(cur) + s * 8, byteOf(cur + 1) + s * 8, pairs, vr, wr);
        for (let c = s + 2 * pairs; c <= r; c++) A[ro + c]! -= vr * w[c]! + wr * v[c]!;
      }
    }
  }
  // The reflectors are read later by applyQ: copy them out of the shared kernel memory.
  return finishTridiag(A, n, d, e, tau, Float64Array.from(A));
}

/**
 * Z <- Q Z for Q = H_0 H_1 ... H_{n-2} from `tridiagonalize`, Z [n, n] row-major, in place. Reflectors are
 * applied in blocks of `nb` as I - V T Vᵀ (T upper triangular, forward columnwise), last block first.
 */
export function applyQ(tri: Tridiag, n: number, Z: Float64Array, nb = 64): void {
  const { refl, tau } = tri;
  const nr = n - 1; // reflectors 0..n-2 (the last ones may be identities)
  for (let b0 = Math.floor((nr - 1) / nb) * nb; b0 >= 0; b0 -= nb) {
    const kb = Math.min(nb, nr - b0);
    const r0 = b0 + 1; // first row any reflector of the block touches
    const rows = n - r0;
    // V [rows, kb]: column j is reflector b0+j, zero above its leading 1.
    const V = new Float64Array(rows * kb);
    for (let j = 0; j < kb; j++) {
      const c = b0 + j;
      V[(c + 1 - r0) * kb + j] = 1;
      for (let r = c + 2; r < n; r++) V[(r - r0) * kb + j] = refl[r * n + c]!;
    }
    // T (dlarft forward columnwise): T[j][j] = tau_j, T[0:j, j] = -tau_j T[0:j, 0:j] (V[:, 0:j]ᵀ v_j).
    const T = new Float64Array(kb * kb);
    const tmp = new Float64Array(kb);
    const VtV = new Float64Array(kb * kb);
    gemm64(dense(V, kb, true), dense(V, kb), VtV, 0, kb, kb, kb, rows);
    for (let j = 0; j < kb; j++) {
      const tj = tau[b0 + j]!;
      T[j * kb + j] = tj;
      if (tj === 0) continue;
      for (let i = 0; i < j; i++) tmp[i] = -tj * VtV[i * kb + j]!;
      for (let i = 0; i < j; i++) {
        let s = 0;
        for (let l = i; l < j; l++) s += T[i * kb + l]! * tmp[l]!;
        T[i * kb + j] = s;
      }
    }
    // Y = Vᵀ Z[r0.., :]  [kb, n];  Y <- -T Y;  Z[r0.., :] += V Y.
    const Y = new Float64Array(kb * n);
    gemm64(dense(V, kb, true), dense(Z, n, false, r0 * n), Y, 0, n, kb, n, rows);
    for (let i = 0; i < T.length; i++) T[i] = -T[i]!;
    const TY = new Float64Array(kb * n);
    gemm64(dense(T, kb), dense(Y, n), TY, 0, n, kb, n, kb);
    gemm64(dense(V, kb), dense(TY, n), Z, r0 * n, n, rows, n, kb, { accumulate: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// 2. Tridiagonal eigensolver.

/** Implicit QL on (d, e) of size n (e[i] couples i and i+1), vectors accumulated as rows of zt. */
function tql(d: Float64Array, eIn: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const e = new Float64Array(n);
  for (let i = 0; i < n - 1; i++) e[i] = eIn[i]!;
  const z = new Float64Array(n * n); // row c is eigenvector c
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  implicitQL(d, e, z, n, (em, dd) => em <= EPS * dd, 'symmetric eigensolver: QL did not converge');
  // Sort ascending; vectors as columns of a row-major matrix.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a]! - d[b]! || a - b);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = d[src]!;
    for (let k = 0; k < n; k++) vectors[k * n + dst] = z[src * n + k]!;
  });
  return { values, vectors };
}

/** Phase times (ms) of the last symmetricEigenDC call (benchmark diagnostics). */
export const eigTimes = { tridiag: 0, dc: 0, backTransform: 0 };

/** Statistics of the last divide-and-conquer run (benchmark diagnostics). */
export const dcStats = { merges: 0, deflated: 0, secularIters: 0, bisections: 0 };

/**
 * Roots of the secular equation 1 + rho Σ z_j² / (D_j - λ) = 0 for ascending D (distinct after deflation),
 * rho > 0, |z| = 1. Root i lies in (D_i, D_{i+1}) (the last in (D_{K-1}, D_{K-1} + rho)). Each root is
 * returned as origin index + offset so that D_j - λ_i = (D_j - D_origin) - tau is formed without
 * cancellation (needed by the Gu-Eisenstat weights).
 */
function secularRoots(D: Float64Array, z: Float64Array, rho: number, K: number): { origin: Int32Array; tau: Float64Array } {
  const origin = new Int32Array(K);
  const tau = new Float64Array(K);
  const delta = new Float64Array(K);
  for (let i = 0; i < K; i++) {
    const last = i === K - 1;
    // Choose the closer pole as origin: sign of f at the midpoint tells which half holds the root.
    let o = i;
    let lo: number, hi: number;
    if (!last) {
      const mid = 0.5 * (D[i + 1]! - D[i]!);
      let f = 1 / rho;
      for (let j = 0; j < K; j++) f += (z[j]! * z[j]!) / (D[j]! - D[i]! - mid);
      if (f >= 0) {
        o = i;
        lo = 0;
        hi = mid;
      } else {
        o = i + 1;
        lo = -mid;
        hi = 0;
      }
    } else {
      o = i;
      lo = 0;
      hi = rho * 1.0000000001 + EPS * Math.abs(D[i]!);
    }
    for (let j = 0; j < K; j++) delta[j] = D[j]! - D[o]!;
    // Start in the middle of the bracket, then the Bunch-Nielsen-Sorensen two-pole model step, safeguarded.
    let t = 0.5 * (lo + hi);
    const left = i; // pole at or left of the root
    const right = last ? -1 : i + 1;
    for (let it = 0; it < 200; it++) {
      dcStats.secularIters++;
      let psi = 0,
        dpsi = 0,
        phi = 0,
        dphi = 0,
        absSum = 0;
      for (let j = 0; j <= left; j++) {
        const q = z[j]! / (delta[j]! - t);
        psi += z[j]! * q;
        dpsi += q * q;
      }
      for (let j = left + 1; j < K; j++) {
        const q = z[j]! / (delta[j]! - t);
        phi += z[j]! * q;
        dphi += q * q;
      }
      absSum = Math.abs(psi) + Math.abs(phi);
      const f = 1 / rho + psi + phi;
      if (f > 0) hi = t;
      else lo = t;
      // Stop at the rounding level of f itself, or when the bracket is a few ulps of tau: tau must be
      // accurate RELATIVE to its own size (its distance to the origin pole), which the Gu-Eisenstat
      // weights and the vectors depend on.
      if (
        Math.abs(f) <= 8 * EPS * (1 / rho + absSum + Math.abs(t) * (dpsi + dphi)) ||
        hi - lo <= 2 * EPS * Math.max(Math.abs(lo), Math.abs(hi))
      )
        break;
      // Model psi ≈ a1 + b1/(delta_left - t), phi ≈ a2 + b2/(delta_right - t) (value and slope at t).
      const dl = delta[left]! - t;
      const b1 = dpsi * dl * dl;
      const a1 = psi - b1 / dl;
      let next: number;
      if (right < 0) {
        const c = 1 / rho + a1 + phi;
        next = c > 0 ? delta[left]! + b1 / c : NaN;
      } else {
        const dr = delta[right]! - t;
        const b2 = dphi * dr * dr;
        const a2 = phi - b2 / dr;
        const c = 1 / rho + a1 + a2;
        // c (dl' )(dr') + b1 dr' + b2 dl' = 0 with dl' = delta_l - x, dr' = delta_r - x; solve for u = x - delta_l.
        const gap = delta[right]! - delta[left]!;
        // (-u)(gap - u) c + b1 (gap - u) + b2 (-u) = 0  ->  c u² - (c gap + b1 + b2) u + b1 gap = 0
        const A = c,
          B = -(c * gap + b1 + b2),
          C = b1 * gap;
        let u: number;
        if (A === 0) u = -C / B;
        else {
          const disc = Math.max(B * B - 4 * A * C, 0);
          const sq = Math.sqrt(disc);
          // Root in (0, gap): numerically stable pair.
          const qq = -0.5 * (B + (B >= 0 ? sq : -sq));
          const u1 = qq / A,
            u2 = qq !== 0 ? C / qq : NaN;
          u = u1 > 0 && u1 < gap ? u1 : u2;
        }
        next = delta[left]! + u;
      }
      if (!(next > lo && next < hi)) {
        dcStats.bisections++;
        next = 0.5 * (lo + hi);
      }
      if (next === t) break;
      t = next;
    }
    origin[i] = o;
    tau[i] = t;
  }
  return { origin, tau };
}

const QL_CUTOFF = 32;

/** Eigenpairs of the symmetric tridiagonal (d, e) (e[i] couples i and i+1); d is overwritten. */
export function tridiagEigenDC(d: Float64Array, e: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  if (n <= QL_CUTOFF) return tql(d, e, n);
  const n1 = n >> 1;
  const n2 = n - n1;
  const b = e[n1 - 1]!;
  const rho0 = Math.abs(b);
  const sgn = b >= 0 ? 1 : -1;
  const d1 = d.subarray(0, n1),
    d2 = d.subarray(n1);
  d1[n1 - 1]! -= rho0;
  d2[0]! -= rho0;
  const L = tridiagEigenDC(d1, e.subarray(0, n1 - 1), n1);
  const R = tridiagEigenDC(d2, e.subarray(n1), n2);
  dcStats.merges++;
  // Block-diagonal Q and the rank-one vector z = Qᵀ u (u = e_{n1-1} + sgn e_{n1}), normalized: |z|² = 2.
  const Q = new Float64Array(n * n);
  for (let r = 0; r < n1; r++) Q.set(L.vectors.subarray(r * n1, r * n1 + n1), r * n);
  for (let r = 0; r < n2; r++) Q.set(R.vectors.subarray(r * n2, r * n2 + n2), (n1 + r) * n + n1);
  const D0 = new Float64Array(n);
  D0.set(L.values, 0);
  D0.set(R.values, n1);
  const z0 = new Float64Array(n);
  for (let j = 0; j < n1; j++) z0[j] = L.vectors[(n1 - 1) * n1 + j]! / Math.SQRT2;
  for (let j = 0; j < n2; j++) z0[n1 + j] = (sgn * R.vectors[j]!) / Math.SQRT2;
  const rho = 2 * rho0;
  if (rho === 0) {
    // Decoupled halves: just merge.
    return finish(
      D0,
      Q,
      n,
      Array.from({ length: n }, (_, i) => i),
      null,
    );
  }
  // Sort poles ascending (perm[k] = column of Q).
  const perm = Array.from({ length: n }, (_, i) => i).sort((a, b2) => D0[a]! - D0[b2]! || a - b2);
  const D = new Float64Array(n);
  const z = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    D[k] = D0[perm[k]!]!;
    z[k] = z0[perm[k]!]!;
  }
  // Deflation (dlaed2).
  let dmax = 0;
  for (let k = 0; k < n; k++) dmax = Math.max(dmax, Math.abs(D[k]!));
  const tol = 8 * EPS * Math.max(dmax, rho);
  // Which rows each Q column can be nonzero in: 1 = top half only, 2 = bottom only, 3 = both (a deflation
  // rotation mixed a top and a bottom column). The merge's product then skips the zero blocks (dlaed3).
  const colType = new Uint8Array(n);
  for (let c = 0; c < n; c++) colType[c] = c < n1 ? 1 : 2;
  const keep: number[] = []; // sorted positions that stay in the secular problem
  const deflated: number[] = [];
  let prev = -1;
  for (let k = 0; k < n; k++) {
    if (rho * Math.abs(z[k]!) <= tol) {
      deflated.push(k);
      continue;
    }
    if (prev >= 0) {
      const s0 = z[prev]!,
        c0 = z[k]!;
      const tau = Math.hypot(c0, s0);
      const c = c0 / tau,
        s = -s0 / tau;
      const tdiff = D[k]! - D[prev]!;
      if (Math.abs(tdiff * c * s) <= tol) {
        // Rotate columns prev and k of Q so that z[prev] becomes 0 (prev deflates).
        z[k] = tau;
        z[prev] = 0;
        const cp = perm[prev]!,
          ck = perm[k]!;
        colType[cp] = colType[ck] = colType[cp]! | colType[ck]!;
        for (let r = 0; r < n; r++) {
          const x = Q[r * n + cp]!,
            yv = Q[r * n + ck]!;
          Q[r * n + cp] = c * x + s * yv;
          Q[r * n + ck] = c * yv - s * x;
        }
        const tt = D[prev]! * c * c + D[k]! * s * s;
        D[k] = D[prev]! * s * s + D[k]! * c * c;
        D[prev] = tt;
        deflated.push(prev);
        prev = k;
        continue;
      }
      keep.push(prev);
    }
    prev = k;
  }
  if (prev >= 0) keep.push(prev);
  dcStats.deflated += deflated.length;
  const K = keep.length;
  const values = new Float64Array(n);
  const outCols: Float64Array = new Float64Array(n * n);
  // Deflated pairs keep their (rotated) Q column.
  const pairs: { value: number; src: 'q' | 's'; idx: number }[] = [];
  for (const k of deflated) pairs.push({ value: D[k]!, src: 'q', idx: perm[k]! });
  if (K > 0) {
    const Dk = new Float64Array(K);
    const zk = new Float64Array(K);
    for (let i = 0; i < K; i++) {
      Dk[i] = D[keep[i]!]!;
      zk[i] = z[keep[i]!]!;
    }
    let zn = 0;
    for (let i = 0; i < K; i++) zn += zk[i]! * zk[i]!;
    zn = Math.sqrt(zn);
    for (let i = 0; i < K; i++) zk[i]! /= zn;
    const rhoK = rho * zn * zn;
    const { origin, tau } = secularRoots(Dk, zk, rhoK, K);
    const diff = (j: number, i: number) => Dk[j]! - Dk[origin[i]!]! - tau[i]!;
    // Gu-Eisenstat: ẑ_j² ∝ Π_i (D_j - λ_i) / Π_{i≠j} (D_j - D_i), signed like z_j.
    const zh = new Float64Array(K);
    for (let j = 0; j < K; j++) {
      // The product is a ratio of K terms each; rescale by powers of 2 so long products cannot under/overflow.
      let w = diff(j, j);
      let exp2 = 0;
      for (let i = 0; i < K; i++) {
        if (i === j) continue;
        w *= diff(j, i) / (Dk[j]! - Dk[i]!);
        const aw = Math.abs(w);
        if (aw < 1e-150) {
          w *= 2 ** 500;
          exp2 -= 500;
        } else if (aw > 1e150) {
          w *= 2 ** -500;
          exp2 += 500;
        }
      }
      // ẑ only matters up to a common factor, but that factor must be the same for all j: keep exp2 exact.
      zh[j] = (zk[j]! >= 0 ? 1 : -1) * Math.sqrt(Math.max(-w, 0)) * 2 ** (exp2 / 2);
    }
    // S [K, K]: column i = normalized (ẑ_j / (D_j - λ_i))_j.
    const S = new Float64Array(K * K);
    for (let i = 0; i < K; i++) {
      let nrm = 0;
      for (let j = 0; j < K; j++) {
        const v = zh[j]! / diff(j, i);
        S[j * K + i] = v;
        nrm += v * v;
      }
      nrm = 1 / Math.sqrt(nrm);
      for (let j = 0; j < K; j++) S[j * K + i]! *= nrm;
    }
    // Q[:, keep] · S -> [n, K], as two products: top rows use only columns that live there, bottom likewise.
    const QS = new Float64Array(n * K);
    for (const [bit, r0, r1] of [
      [1, 0, n1],
      [2, n1, n],
    ] as const) {
      const idx: number[] = [];
      for (let i = 0; i < K; i++) if (colType[perm[keep[i]!]!]! & bit) idx.push(i);
      const w = idx.length;
      if (w === 0) continue;
      const rows = r1 - r0;
      const Qb = new Float64Array(rows * w);
      for (let r = 0; r < rows; r++) {
        const qo = (r0 + r) * n,
          bo = r * w;
        for (let a = 0; a < w; a++) Qb[bo + a] = Q[qo + perm[keep[idx[a]!]!]!]!;
      }
      const Sb = new Float64Array(w * K);
      for (let a = 0; a < w; a++) Sb.set(S.subarray(idx[a]! * K, idx[a]! * K + K), a * K);
      gemm64(dense(Qb, w), dense(Sb, K), QS, r0 * K, K, rows, K, w);
    }
    for (let i = 0; i < K; i++) pairs.push({ value: Dk[origin[i]!]! + tau[i]!, src: 's', idx: i });
    pairs.sort((a, b2) => a.value - b2.value);
    // Scatter row by row (column-by-column writes would miss the cache on every element).
    const fromQ = new Uint8Array(n);
    const idx = new Int32Array(n);
    pairs.forEach((p, dst) => {
      values[dst] = p.value;
      fromQ[dst] = p.src === 'q' ? 1 : 0;
      idx[dst] = p.idx;
    });
    for (let r = 0; r < n; r++) {
      const ro = r * n,
        rk = r * K;
      for (let dst = 0; dst < n; dst++) outCols[ro + dst] = fromQ[dst]! ? Q[ro + idx[dst]!]! : QS[rk + idx[dst]!]!;
    }
    return { values, vectors: outCols };
  }
  return finish(
    D0,
    Q,
    n,
    Array.from({ length: n }, (_, i) => i),
    null,
  );
}

function finish(D: Float64Array, Q: Float64Array, n: number, cols: number[], _unused: null) {
  const order = cols.slice().sort((a, b) => D[a]! - D[b]! || a - b);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = D[src]!;
  });
  for (let r = 0; r < n; r++) for (let dst = 0; dst < n; dst++) vectors[r * n + dst] = Q[r * n + order[dst]!]!;
  return { values, vectors };
}

/** Eigenvalues (ascending) and eigenvectors of a symmetric [n, n] (lower triangle read). */
export function symmetricEigenDC(a: Float64Array, n: number): SymEigen {
  if (a.length !== n * n) throw new Error(`symmetricEigenDC: got ${a.length} elements, expected ${n}x${n}`);
  if (n === 0) return { values: new Float64Array(0), vectors: new Float64Array(0) };
  Object.assign(dcStats, { merges: 0, deflated: 0, secularIters: 0, bisections: 0 });
  let t = performance.now();
  const tri = tridiagonalize(a, n);
  eigTimes.tridiag = performance.now() - t;
  t = performance.now();
  const { values, vectors } = tridiagEigenDC(Float64Array.from(tri.d), Float64Array.from(tri.e), n);
  eigTimes.dc = performance.now() - t;
  t = performance.now();
  applyQ(tri, n, vectors);
  eigTimes.backTransform = performance.now() - t;
  return { values, vectors };
}
