/**
 * CPU GEMM on typed arrays: C[m,n] = op(A)·op(B), the one hot loop of the CPU backend (benchmarked against
 * PyTorch by `gradot bench --only cpu`).
 *
 * Entry points: `gemm` (one product), `gemmBatch` (strided batch), `gemmMany` (same shape at arbitrary
 * offsets: attention heads). Behind them:
 * - f32 outputs run on the WebAssembly GEMM (simd.ts: packing, blocking and a 4x8 tile of f32x4 accumulators,
 *   relaxed-SIMD FMA or plain SIMD), staged into the runtime's memory and shared out between the threads of
 *   the pool (pool.ts); f32 accumulation, like PyTorch's.
 * - f64 outputs (the gradient-check oracle), and f32 where WebAssembly SIMD is unavailable or the JS kernel
 *   is chosen (setSimdEnabled(false)), run the JS kernel below, accumulating in doubles. It is also the
 *   reference the WebAssembly kernels are tested against (threads.test.ts).
 *
 * Both are BLIS-style:
 * - Cache blocking: a KC x NC panel of B and an MC x KC block of A are packed into contiguous scratch, so the
 *   micro-kernel streams unit-stride memory that stays in L1/L2 (and, in JS, the f32->f64 conversion happens
 *   once per packed element instead of once per multiply).
 * - Transposed operands cost nothing extra: packing reads A(i,p) / B(p,j) through row/column strides, so
 *   every transA/transB combination runs the same micro-kernel (no strided inner loops, no transposed copy).
 * - JS micro-kernel: a 4x4 tile of C in 16 local doubles, updated by a rank-1 product per p (8 loads, 16
 *   multiply-adds, no stores). Measured at 512^3 on this (noisy, shared 2-core) machine: 4-row i-k-j on
 *   typed arrays ~1.3 GFLOP/s, 4x2 tile ~4.5, 2x4 ~4.6, 4x4 ~4.9; packing into f64 beat f32 by ~25%;
 *   KC=256, MC=64, NC=256 was best or within noise. The WebAssembly kernel reaches ~35-43 GFLOP/s per core
 *   by CPU time on the same box.
 */

import type { FloatArray } from '../backend';
import { cpuKernel, dispatch, maxStagedBytes, MAX_UNITS, setCpuKernel, threadsFor, withHeap, writeDesc } from './pool';
import { MR as SMR, NR as SNR } from './simd';

const KC = 256;
const MC = 64;
const NC = 256;
const MR = 4;
const NR = 4;

// Scratch reused across calls (single-threaded JS): B panel KC x NC and A block MC x KC, padded to the tile.
const bPack = new Float64Array(KC * (NC + NR));
const aPack = new Float64Array((MC + MR) * KC);

/** Element (i, p) of A is A[aOff + i*aRs + p*aCs]; element (p, j) of B is B[bOff + p*bRs + j*bCs].
 *  C[cOff + i*n + j] (row-major, contiguous) is overwritten with sum_p A(i,p) B(p,j). */
export function gemm(
  A: FloatArray,
  aOff: number,
  aRs: number,
  aCs: number,
  B: FloatArray,
  bOff: number,
  bRs: number,
  bCs: number,
  C: FloatArray,
  cOff: number,
  m: number,
  n: number,
  k: number,
): void {
  if (gemmWasm(A, [aOff], aRs, aCs, B, [bOff], bRs, bCs, C, [cOff], n, m, n, k)) return;
  gemmJs(A, aOff, aRs, aCs, B, bOff, bRs, bCs, C, cOff, m, n, k);
}

/** The JS kernel (f64 accumulation): the f64 backend's GEMM and the reference the wasm kernels are tested
 *  against. Same contract as gemm. */
export function gemmJs(
  A: FloatArray,
  aOff: number,
  aRs: number,
  aCs: number,
  B: FloatArray,
  bOff: number,
  bRs: number,
  bCs: number,
  C: FloatArray,
  cOff: number,
  m: number,
  n: number,
  k: number,
): void {
  C.fill(0, cOff, cOff + m * n);
  if (m === 0 || n === 0 || k === 0) return;
  const Bp = bPack;
  const Ap = aPack;
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = Math.min(NC, n - j0);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = Math.min(KC, k - p0);
      // Pack B[p0:p0+kc, j0:j0+nc] as column panels of width NR: Bp[jp*kc + p*NR + c].
      for (let jp = 0; jp < nc; jp += NR) {
        const base = jp * kc;
        for (let c = 0; c < NR; c++) {
          if (jp + c < nc) {
            let src = bOff + p0 * bRs + (j0 + jp + c) * bCs;
            for (let p = 0; p < kc; p++, src += bRs) Bp[base + p * NR + c] = B[src]!;
          } else {
            for (let p = 0; p < kc; p++) Bp[base + p * NR + c] = 0;
          }
        }
      }
      for (let i0 = 0; i0 < m; i0 += MC) {
        const mc = Math.min(MC, m - i0);
        // Pack A[i0:i0+mc, p0:p0+kc] as row panels of height MR: Ap[ip*kc + p*MR + r].
        for (let ip = 0; ip < mc; ip += MR) {
          const base = ip * kc;
          for (let r = 0; r < MR; r++) {
            if (ip + r < mc) {
              let src = aOff + (i0 + ip + r) * aRs + p0 * aCs;
              for (let p = 0; p < kc; p++, src += aCs) Ap[base + p * MR + r] = A[src]!;
            } else {
              for (let p = 0; p < kc; p++) Ap[base + p * MR + r] = 0;
            }
          }
        }
        for (let jp = 0; jp < nc; jp += NR) {
          const bb = jp * kc;
          for (let ip = 0; ip < mc; ip += MR) {
            const ab = ip * kc;
            let c00 = 0,
              c01 = 0,
              c02 = 0,
              c03 = 0;
            let c10 = 0,
              c11 = 0,
              c12 = 0,
              c13 = 0;
            let c20 = 0,
              c21 = 0,
              c22 = 0,
              c23 = 0;
            let c30 = 0,
              c31 = 0,
              c32 = 0,
              c33 = 0;
            for (let p = 0; p < kc; p++) {
              const ao = ab + p * MR;
              const bo = bb + p * NR;
              const a0 = Ap[ao]!,
                a1 = Ap[ao + 1]!,
                a2 = Ap[ao + 2]!,
                a3 = Ap[ao + 3]!;
              const b0 = Bp[bo]!,
                b1 = Bp[bo + 1]!,
                b2 = Bp[bo + 2]!,
                b3 = Bp[bo + 3]!;
              c00 += a0 * b0;
              c01 += a0 * b1;
              c02 += a0 * b2;
              c03 += a0 * b3;
              c10 += a1 * b0;
              c11 += a1 * b1;
              c12 += a1 * b2;
              c13 += a1 * b3;
              c20 += a2 * b0;
              c21 += a2 * b1;
              c22 += a2 * b2;
              c23 += a2 * b3;
              c30 += a3 * b0;
              c31 += a3 * b1;
              c32 += a3 * b2;
              c33 += a3 * b3;
            }
            const i = i0 + ip;
            const j = j0 + jp;
            if (ip + MR <= mc && jp + NR <= nc) {
              let o = cOff + i * n + j;
              C[o]! += c00;
              C[o + 1]! += c01;
              C[o + 2]! += c02;
              C[o + 3]! += c03;
              o += n;
              C[o]! += c10;
              C[o + 1]! += c11;
              C[o + 2]! += c12;
              C[o + 3]! += c13;
              o += n;
              C[o]! += c20;
              C[o + 1]! += c21;
              C[o + 2]! += c22;
              C[o + 3]! += c23;
              o += n;
              C[o]! += c30;
              C[o + 1]! += c31;
              C[o + 2]! += c32;
              C[o + 3]! += c33;
            } else {
              // Edge tile: write only the rows/columns that exist.
              const t = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
              const rows = Math.min(MR, mc - ip);
              const cols = Math.min(NR, nc - jp);
              for (let r = 0; r < rows; r++) {
                const o = cOff + (i + r) * n + j;
                for (let c = 0; c < cols; c++) C[o + c]! += t[r * NR + c]!;
              }
            }
          }
        }
      }
    }
  }
}

/** C = A·B for contiguous row-major A [m,k], B [k,n]. */
export function gemmNN(
  A: FloatArray,
  aOff: number,
  B: FloatArray,
  bOff: number,
  C: FloatArray,
  cOff: number,
  m: number,
  n: number,
  k: number,
): void {
  gemm(A, aOff, k, 1, B, bOff, n, 1, C, cOff, m, n, k);
}

/**
 * `batch` products in one call: product b reads A from aOff + b*aBs, B from bOff + b*bBs and overwrites the
 * m x n block of C at cOff + b*cBs with row stride ldc. A stride of 0 shares an operand across the batch.
 */
export function gemmBatch(
  A: FloatArray,
  aOff: number,
  aRs: number,
  aCs: number,
  aBs: number,
  B: FloatArray,
  bOff: number,
  bRs: number,
  bCs: number,
  bBs: number,
  C: FloatArray,
  cOff: number,
  ldc: number,
  cBs: number,
  m: number,
  n: number,
  k: number,
  batch: number,
): void {
  const offs = (o: number, s: number) => Int32Array.from({ length: batch }, (_, b) => o + b * s);
  gemmMany(A, offs(aOff, aBs), aRs, aCs, B, offs(bOff, bBs), bRs, bCs, C, offs(cOff, cBs), ldc, m, n, k);
}

/**
 * Products with the same shape and strides at arbitrary offsets: C[cOffs[b] + i*ldc + j] = Σ_p A(i,p) B(p,j)
 * with A(i,p) = A[aOffs[b] + i*aRs + p*aCs] and B(p,j) = B[bOffs[b] + p*bRs + j*bCs] (attention's heads,
 * grouped-query heads sharing K/V included). f32 runs on the WebAssembly kernels, threaded when the pool is
 * started (pool.ts); otherwise product by product on the JS kernel. C blocks must not overlap.
 */
export function gemmMany(
  A: FloatArray,
  aOffs: ArrayLike<number>,
  aRs: number,
  aCs: number,
  B: FloatArray,
  bOffs: ArrayLike<number>,
  bRs: number,
  bCs: number,
  C: FloatArray,
  cOffs: ArrayLike<number>,
  ldc: number,
  m: number,
  n: number,
  k: number,
): void {
  if (gemmWasm(A, aOffs, aRs, aCs, B, bOffs, bRs, bCs, C, cOffs, ldc, m, n, k)) return;
  const tmp = ldc === n ? null : new (C instanceof Float32Array ? Float32Array : Float64Array)(m * n);
  for (let b = 0; b < cOffs.length; b++) {
    if (tmp) {
      gemmJs(A, aOffs[b]!, aRs, aCs, B, bOffs[b]!, bRs, bCs, tmp, 0, m, n, k);
      for (let i = 0; i < m; i++) C.set(tmp.subarray(i * n, i * n + n), cOffs[b]! + i * ldc);
    } else {
      gemmJs(A, aOffs[b]!, aRs, aCs, B, bOffs[b]!, bRs, bCs, C, cOffs[b]!, m, n, k);
    }
  }
}

/** Turns the WebAssembly path for f32 outputs on or off (bench comparisons); returns the old value. */
export function setSimdEnabled(on: boolean): boolean {
  const prev = simdActive();
  setCpuKernel(on ? 'auto' : 'js');
  return prev;
}

/** Whether f32 GEMMs currently run on a WebAssembly SIMD kernel. */
export function simdActive(): boolean {
  return cpuKernel() !== 'js';
}

function range(offs: ArrayLike<number>, rows: number, rs: number, cols: number, cs: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let b = 0; b < offs.length; b++) {
    if (offs[b]! < lo) lo = offs[b]!;
    if (offs[b]! > hi) hi = offs[b]!;
  }
  return [lo, hi + (rows - 1) * rs + (cols - 1) * cs];
}

/** The f32 path on the WebAssembly runtime (pool.ts); false when it does not apply (f64, JS kernel chosen,
 *  no WebAssembly SIMD). Operands are staged into the runtime's memory, products are cut into descriptors
 *  covering whole rows (or columns) of C, and the result is copied back. */
function gemmWasm(
  A: FloatArray,
  aOffs: ArrayLike<number>,
  aRs: number,
  aCs: number,
  B: FloatArray,
  bOffs: ArrayLike<number>,
  bRs: number,
  bCs: number,
  C: FloatArray,
  cOffs: ArrayLike<number>,
  ldc: number,
  m: number,
  n: number,
  k: number,
): boolean {
  if (!(A instanceof Float32Array && B instanceof Float32Array && C instanceof Float32Array)) return false;
  if (cpuKernel() === 'js') return false;
  const batch = cOffs.length;
  if (batch === 0 || m === 0 || n === 0) return true;
  if (k === 0) {
    for (let b = 0; b < batch; b++) for (let i = 0; i < m; i++) C.fill(0, cOffs[b]! + i * ldc, cOffs[b]! + i * ldc + n);
    return true;
  }
  const [aLo, aHi] = range(aOffs, m, aRs, k, aCs);
  const [bLo, bHi] = range(bOffs, k, bRs, n, bCs);
  const [cLo, cHi] = range(cOffs, m, ldc, n, 1);
  if (aHi >= A.length || bHi >= B.length || cHi >= C.length || aLo < 0 || bLo < 0 || cLo < 0) {
    throw new Error(
      `gemm: operand range out of bounds (A ${A.length}, last ${aHi}; B ${B.length}, last ${bHi}; C ${C.length}, last ${cHi})`,
    );
  }
  const aLen = aHi - aLo + 1;
  const bLen = bHi - bLo + 1;
  const cLen = cHi - cLo + 1;
  if (4 * (aLen + bLen + cLen) > maxStagedBytes() && (batch > 1 || m > 1)) {
    // Too big to stage at once (a long sequence through a big LM head): halve the batch, else the rows.
    // Each output element is still computed whole, in the same order.
    if (batch > 1) {
      const h = batch >> 1;
      const sl = (o: ArrayLike<number>, a: number, b: number) => Array.from({ length: b - a }, (_, t) => o[a + t]!);
      gemmWasm(A, sl(aOffs, 0, h), aRs, aCs, B, sl(bOffs, 0, h), bRs, bCs, C, sl(cOffs, 0, h), ldc, m, n, k);
      gemmWasm(A, sl(aOffs, h, batch), aRs, aCs, B, sl(bOffs, h, batch), bRs, bCs, C, sl(cOffs, h, batch), ldc, m, n, k);
    } else {
      const h = m >> 1;
      gemmWasm(A, [aOffs[0]!], aRs, aCs, B, [bOffs[0]!], bRs, bCs, C, [cOffs[0]!], ldc, h, n, k);
      gemmWasm(A, [aOffs[0]! + h * aRs], aRs, aCs, B, [bOffs[0]!], bRs, bCs, C, [cOffs[0]! + h * ldc], ldc, m - h, n, k);
    }
    return true;
  }
  // Unless the blocks tile C's range exactly, keep the elements between them: stage C too.
  const cDense = cLen === batch * m * n && ldc === n;
  const T = threadsFor(2 * m * n * k * batch);
  return withHeap(
    4 * (aLen + bLen + cLen) + 48,
    (h) => {
      const ha = h.alloc(4 * aLen);
      const hb = h.alloc(4 * bLen);
      const hc = h.alloc(4 * cLen);
      h.f32.set(A.subarray(aLo, aLo + aLen), ha >> 2);
      h.f32.set(B.subarray(bLo, bLo + bLen), hb >> 2);
      if (!cDense) h.f32.set(C.subarray(cLo, cLo + cLen), hc >> 2);
      const ptrs = (base: number, offs: ArrayLike<number>, lo: number) =>
        Array.from({ length: batch }, (_, b) => base + 4 * (offs[b]! - lo));
      gemmStaged(ptrs(ha, aOffs, aLo), aRs, aCs, ptrs(hb, bOffs, bLo), bRs, bCs, ptrs(hc, cOffs, cLo), ldc, m, n, k, T);
      C.set(h.f32.subarray(hc >> 2, (hc >> 2) + cLen), cLo);
    },
    T,
  );
}

/**
 * xᵀx [dim, dim] of row-major x [rows, dim] into C, upper block-triangle only (panels of P rows from the
 * diagonal), then mirrored. On the WebAssembly runtime x is staged once for every panel and C is filled in
 * the pool's memory: staged panel by panel (gemmBatch), x was copied twice per panel (each panel's operands
 * span nearly all of x), 1.1 GB of copies per support step at Qwen2.5-0.5B's widths. Same descriptors,
 * strides and thread count as the per-panel products, so the same bits. Returns false when the f32
 * WebAssembly path does not apply (the caller runs the per-panel products).
 */
export function gramWasm(X: FloatArray, rows: number, dim: number, C: FloatArray, P: number): boolean {
  if (!(X instanceof Float32Array && C instanceof Float32Array) || cpuKernel() === 'js') return false;
  if (rows === 0) {
    C.fill(0);
    return true;
  }
  const xLen = rows * dim;
  const cLen = dim * dim;
  if (4 * (xLen + cLen) + 64 > maxStagedBytes()) return false;
  // The largest panel's thread count; each panel still gets its own, as in the per-panel products.
  const T = threadsFor(2 * Math.min(P, dim) * dim * rows);
  return withHeap(
    4 * (xLen + cLen) + 48,
    (h) => {
      const hx = h.alloc(4 * xLen);
      const hc = h.alloc(4 * cLen);
      h.f32.set(X.subarray(0, xLen), hx >> 2);
      for (let r0 = 0; r0 < dim; r0 += P) {
        const hh = Math.min(P, dim - r0);
        const nn = dim - r0;
        // C[r0 : r0+hh, r0 : dim] = X[:, r0 : r0+hh]ᵀ · X[:, r0 : dim]
        gemmStaged(
          [hx + 4 * r0],
          1,
          dim,
          [hx + 4 * r0],
          dim,
          1,
          [hc + 4 * (r0 * dim + r0)],
          dim,
          hh,
          nn,
          rows,
          threadsFor(2 * hh * nn * rows),
        );
      }
      const f = h.f32;
      const c0 = hc >> 2;
      // Mirror tile by tile (cache-friendly), then one copy out.
      const B = 64;
      for (let i0 = 0; i0 < dim; i0 += B) {
        const i1 = Math.min(dim, i0 + B);
        for (let j0 = i0; j0 < dim; j0 += B) {
          const j1 = Math.min(dim, j0 + B);
          for (let i = i0; i < i1; i++) {
            const row = c0 + i * dim;
            for (let j = Math.max(j0, i + 1); j < j1; j++) f[c0 + j * dim + i] = f[row + j]!;
          }
        }
      }
      C.set(f.subarray(c0, c0 + cLen));
    },
    T,
  );
}

/**
 * Products on operands already staged in the pool's memory (byte pointers; strides in elements), shared out
 * between `threads` threads: entry b reads A at aPtrs[b], B at bPtrs[b] and overwrites the m x n block at
 * cPtrs[b] (row stride ldc). Entries are split by rows (or columns) at tile multiples when there are fewer
 * of them than threads can share evenly; every element of C is still computed whole, in the same order.
 * Call inside withHeap, after staging.
 */
export function gemmStaged(
  aPtrs: ArrayLike<number>,
  aRs: number,
  aCs: number,
  bPtrs: ArrayLike<number>,
  bRs: number,
  bCs: number,
  cPtrs: ArrayLike<number>,
  ldc: number,
  m: number,
  n: number,
  k: number,
  threads: number,
): void {
  const batch = cPtrs.length;
  const T = threads;
  const perEntry = T === 1 || batch % T === 0 || batch >= 4 * T ? 1 : T;
  const splitRows = m >= n;
  const desc = new Array<number>(11);
  let u = 0;
  const flush = () => {
    if (u > 0) dispatch(u, T);
    u = 0;
  };
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < perEntry; s++) {
      // Part s of perEntry: rows [r0, r1) or columns [c0, c1), cut at tile multiples.
      let r0 = 0,
        r1 = m,
        c0 = 0,
        c1 = n;
      if (perEntry > 1) {
        const unit = splitRows ? SMR : SNR;
        const len = splitRows ? m : n;
        const lo = Math.min(len, Math.round((s * len) / perEntry / unit) * unit);
        const hi = s === perEntry - 1 ? len : Math.min(len, Math.round(((s + 1) * len) / perEntry / unit) * unit);
        if (hi <= lo) continue;
        if (splitRows) [r0, r1] = [lo, hi];
        else [c0, c1] = [lo, hi];
      }
      desc[0] = aPtrs[b]! + 4 * r0 * aRs;
      desc[1] = aRs;
      desc[2] = aCs;
      desc[3] = bPtrs[b]! + 4 * c0 * bCs;
      desc[4] = bRs;
      desc[5] = bCs;
      desc[6] = cPtrs[b]! + 4 * (r0 * ldc + c0);
      desc[7] = ldc;
      desc[8] = r1 - r0;
      desc[9] = c1 - c0;
      desc[10] = k;
      writeDesc(u++, desc);
      if (u === MAX_UNITS) flush();
    }
  }
  flush();
}
