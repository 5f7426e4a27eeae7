/**
 * CPU GEMM on typed arrays: C[m,n] = op(A)·op(B), the one hot loop of the CPU backend (benchmarked against
 * PyTorch in bench.ts).
 *
 * Two kernels behind one entry point, `gemm`:
 * - f32 outputs run on a WebAssembly SIMD macro-kernel (simd.ts: 4x8 tile of f32x4 accumulators), which is
 *   what makes the product path fast; f32 accumulation, like PyTorch's.
 * - f64 outputs (the gradient-check oracle), and f32 where WebAssembly SIMD is unavailable, run the JS
 *   kernel below, accumulating in doubles.
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
 *   KC=256, MC=64, NC=256 was best or within noise. The SIMD kernel reached 9-18 GFLOP/s on the same box.
 */

import type { FloatArray } from '../backend';
import { simdKernel } from './simd';

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
  A: FloatArray, aOff: number, aRs: number, aCs: number,
  B: FloatArray, bOff: number, bRs: number, bCs: number,
  C: FloatArray, cOff: number, m: number, n: number, k: number,
): void {
  C.fill(0, cOff, cOff + m * n);
  if (m === 0 || n === 0 || k === 0) return;
  if (simdEnabled && C instanceof Float32Array) {
    const ker = simdKernel(MC, KC, NC);
    if (ker) {
      gemmSimd(ker, A, aOff, aRs, aCs, B, bOff, bRs, bCs, C, cOff, m, n, k);
      return;
    }
  }
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
            for (let p = 0; p < kc; p++, src += bRs) Bp[base + p * NR + c] = B[src];
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
              for (let p = 0; p < kc; p++, src += aCs) Ap[base + p * MR + r] = A[src];
            } else {
              for (let p = 0; p < kc; p++) Ap[base + p * MR + r] = 0;
            }
          }
        }
        for (let jp = 0; jp < nc; jp += NR) {
          const bb = jp * kc;
          for (let ip = 0; ip < mc; ip += MR) {
            const ab = ip * kc;
            let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
            let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
            let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
            let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
            for (let p = 0; p < kc; p++) {
              const ao = ab + p * MR;
              const bo = bb + p * NR;
              const a0 = Ap[ao], a1 = Ap[ao + 1], a2 = Ap[ao + 2], a3 = Ap[ao + 3];
              const b0 = Bp[bo], b1 = Bp[bo + 1], b2 = Bp[bo + 2], b3 = Bp[bo + 3];
              c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
              c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
              c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
              c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            const i = i0 + ip;
            const j = j0 + jp;
            if (ip + MR <= mc && jp + NR <= nc) {
              let o = cOff + i * n + j;
              C[o] += c00; C[o + 1] += c01; C[o + 2] += c02; C[o + 3] += c03;
              o += n;
              C[o] += c10; C[o + 1] += c11; C[o + 2] += c12; C[o + 3] += c13;
              o += n;
              C[o] += c20; C[o + 1] += c21; C[o + 2] += c22; C[o + 3] += c23;
              o += n;
              C[o] += c30; C[o + 1] += c31; C[o + 2] += c32; C[o + 3] += c33;
            } else {
              // Edge tile: write only the rows/columns that exist.
              const t = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
              const rows = Math.min(MR, mc - ip);
              const cols = Math.min(NR, nc - jp);
              for (let r = 0; r < rows; r++) {
                const o = cOff + (i + r) * n + j;
                for (let c = 0; c < cols; c++) C[o + c] += t[r * NR + c];
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
  A: FloatArray, aOff: number, B: FloatArray, bOff: number, C: FloatArray, cOff: number,
  m: number, n: number, k: number,
): void {
  gemm(A, aOff, k, 1, B, bOff, n, 1, C, cOff, m, n, k);
}

let simdEnabled = true;

/** Turns the WebAssembly SIMD path for f32 outputs on or off (bench comparisons); returns the old value. */
export function setSimdEnabled(on: boolean): boolean {
  const prev = simdEnabled;
  simdEnabled = on;
  return prev;
}

/** Whether f32 GEMMs currently run on the WebAssembly SIMD kernel. */
export function simdActive(): boolean {
  return simdEnabled && simdKernel(MC, KC, NC) !== null;
}

const SR = 4; // SIMD micro-tile rows
const SC = 8; // SIMD micro-tile columns (two f32x4)

/** Same contract as gemm, f32 accumulation in the WebAssembly kernel (C already zeroed). Packing pads the
 *  edges with zeros so the kernel only ever sees whole 4x8 tiles; the padded result is clipped on the way
 *  back into C. */
function gemmSimd(
  ker: NonNullable<ReturnType<typeof simdKernel>>,
  A: FloatArray, aOff: number, aRs: number, aCs: number,
  B: FloatArray, bOff: number, bRs: number, bCs: number,
  C: Float32Array, cOff: number, m: number, n: number, k: number,
): void {
  const mem = ker.mem;
  const AP = ker.aOff;
  const BP = ker.bOff;
  const CP = ker.cOff;
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = Math.min(NC, n - j0);
    const ncPad = Math.ceil(nc / SC) * SC;
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = Math.min(KC, k - p0);
      for (let jp = 0; jp < ncPad; jp += SC) {
        const base = BP + jp * kc;
        for (let c = 0; c < SC; c++) {
          if (jp + c < nc) {
            let src = bOff + p0 * bRs + (j0 + jp + c) * bCs;
            for (let p = 0; p < kc; p++, src += bRs) mem[base + p * SC + c] = B[src];
          } else {
            for (let p = 0; p < kc; p++) mem[base + p * SC + c] = 0;
          }
        }
      }
      for (let i0 = 0; i0 < m; i0 += MC) {
        const mc = Math.min(MC, m - i0);
        const mcPad = Math.ceil(mc / SR) * SR;
        for (let ip = 0; ip < mcPad; ip += SR) {
          const base = AP + ip * kc;
          for (let r = 0; r < SR; r++) {
            if (ip + r < mc) {
              let src = aOff + (i0 + ip + r) * aRs + p0 * aCs;
              for (let p = 0; p < kc; p++, src += aCs) mem[base + p * SR + r] = A[src];
            } else {
              for (let p = 0; p < kc; p++) mem[base + p * SR + r] = 0;
            }
          }
        }
        ker.run(mcPad, ncPad, kc);
        for (let r = 0; r < mc; r++) {
          const co = cOff + (i0 + r) * n + j0;
          const bo = CP + r * ncPad;
          for (let c = 0; c < nc; c++) C[co + c] += mem[bo + c];
        }
      }
    }
  }
}
