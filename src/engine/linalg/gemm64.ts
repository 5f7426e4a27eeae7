/**
 * f64 GEMM on a WebAssembly SIMD micro-kernel (f64x2 lanes), for the dense factorizations of linalg (Gram
 * matrix, eigenvector back-transforms, V = Wᵀ·U). The module is assembled here from bytes (no toolchain,
 * no fetch), the same way as the CPU backend's f32 kernel; if WebAssembly SIMD is unavailable the JS f64
 * GEMM of the CPU backend runs instead (same results up to summation order).
 *
 * Why a separate kernel: the SVD's cost is a handful of large f64 products, and the JS kernel computes one
 * multiply-add per scalar operation; two f64 lanes per instruction and a 4x4 register tile roughly double
 * that (measured in the svd bench: see docs/svd.md).
 *
 * The module (gemm64-kernel.ts) multiplies packed blocks; this file packs and blocks. Products above a
 * few MFLOP run on the machine's threads (gemm64-pool.ts) with bitwise the same result as here.
 */
import { gemm as jsGemm } from '../cpu/matmul';
import { buildModule64, KC, MC, MR, NC, NR } from './gemm64-kernel';
import { gemm64Parallel } from './gemm64-pool';

export { buildModule64, MR, NR } from './gemm64-kernel';

interface Kernel64 {
  memory: WebAssembly.Memory;
  aOff: number;
  bOff: number;
  /** Element offset of the C strip (rows x NC), which grows with the row count. */
  cOff: number;
  mk: (ap: number, bp: number, cp: number, mc: number, nc: number, kc: number, acc: number) => void;
}

let cached: Kernel64 | null | undefined;
let enabled = true;

function kernel64(): Kernel64 | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    if (typeof WebAssembly === 'undefined') return null;
    const aLen = MC * KC;
    const bLen = KC * NC;
    const pages = Math.ceil((8 * (aLen + bLen + MC * NC)) / 65536);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(buildModule64(pages)), {});
    cached = {
      memory: inst.exports.mem as WebAssembly.Memory,
      aOff: 0,
      bOff: aLen,
      cOff: aLen + bLen,
      mk: inst.exports.mk as Kernel64['mk'],
    };
  } catch {
    cached = null;
  }
  return cached;
}

/** f64 view of the kernel memory with room for a C strip of `rows` rows (grows the memory if needed). */
function kernelMem(ker: Kernel64, rows: number): Float64Array | null {
  const need = Math.ceil((8 * (ker.cOff + (rows + MR) * NC)) / 65536);
  const have = ker.memory.buffer.byteLength / 65536;
  if (need > have) {
    try {
      ker.memory.grow(need - have);
    } catch {
      return null;
    }
  }
  return new Float64Array(ker.memory.buffer);
}

/** Turns the WebAssembly f64 kernel on or off (benchmark comparisons, tests of the fallback); returns the old value. */
export function setGemm64Simd(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  return prev;
}

/** Whether f64 products currently run on the WebAssembly kernel. */
export function gemm64SimdActive(): boolean {
  return enabled && kernel64() !== null;
}

/** Strided operand: element (i, p) is data[off + i*rs + p*cs]. */
export interface Strided {
  data: ArrayLike<number>;
  off: number;
  rs: number;
  cs: number;
}

/**
 * C[cOff + i*ldc + j] (+)= Σ_p A(i,p)·B(p,j) for i < m, j < n. `accumulate` false overwrites C's [m, n]
 * window. `upper` computes only the blocks that meet j >= i (the caller mirrors a symmetric result);
 * blocks straddling the diagonal are computed whole.
 */
export function gemm64(
  A: Strided,
  B: Strided,
  C: Float64Array,
  cOff: number,
  ldc: number,
  m: number,
  n: number,
  k: number,
  opts: { accumulate?: boolean; upper?: boolean } = {},
): void {
  if (!opts.accumulate) for (let i = 0; i < m; i++) C.fill(0, cOff + i * ldc, cOff + i * ldc + n);
  if (m === 0 || n === 0 || k === 0) return;
  const ker = enabled ? kernel64() : null;
  if (!ker) {
    jsFallback(A, B, C, cOff, ldc, m, n, k, !!opts.upper);
    return;
  }
  // Large products run on the machine's threads (gemm64-pool.ts), with the same result bits.
  if (gemm64Parallel(A, B, C, cOff, ldc, m, n, k, !!opts.upper)) return;
  const iMax = opts.upper ? Math.min(m, n) : m;
  const mem = kernelMem(ker, Math.ceil(iMax / MR) * MR);
  if (!mem) {
    jsFallback(A, B, C, cOff, ldc, m, n, k, !!opts.upper);
    return;
  }
  const AP = ker.aOff,
    BP = ker.bOff,
    CP = ker.cOff;
  const Ad = A.data,
    Bd = B.data;
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = Math.min(NC, n - j0);
    const ncPad = Math.ceil(nc / NR) * NR;
    const iEnd = opts.upper ? Math.min(m, j0 + nc) : m;
    for (let p0 = 0; p0 < k; p0 += KC) {
      const kc = Math.min(KC, k - p0);
      packB(Bd, B, mem, BP, p0, j0, kc, nc, ncPad);
      for (let i0 = 0; i0 < iEnd; i0 += MC) {
        const mc = Math.min(MC, iEnd - i0);
        const mcPad = Math.ceil(mc / MR) * MR;
        packA(Ad, A, mem, AP, i0, p0, mc, mcPad, kc);
        // The C strip [iEnd, ncPad] accumulates over p0 inside the kernel; it is added to C once per j0.
        ker.mk(AP * 8, BP * 8, (CP + i0 * ncPad) * 8, mcPad, ncPad, kc, p0 === 0 ? 0 : 1);
      }
    }
    for (let r = 0; r < iEnd; r++) {
      const co = cOff + r * ldc + j0;
      const bo = CP + r * ncPad;
      for (let c = 0; c < nc; c++) C[co + c]! += mem[bo + c]!;
    }
  }
}

/** Packs B[p0:p0+kc, j0:j0+nc] as column panels of NR (zero-padded to ncPad), reading along B's unit stride. */
function packB(
  Bd: ArrayLike<number>,
  B: Strided,
  mem: Float64Array,
  BP: number,
  p0: number,
  j0: number,
  kc: number,
  nc: number,
  ncPad: number,
): void {
  const { rs, cs } = B;
  if (cs === 1) {
    for (let p = 0; p < kc; p++) {
      const src = B.off + (p0 + p) * rs + j0;
      for (let j = 0; j < nc; j++) mem[BP + (j - (j & 3)) * kc + p * NR + (j & 3)] = Bd[src + j]!;
      for (let j = nc; j < ncPad; j++) mem[BP + (j - (j & 3)) * kc + p * NR + (j & 3)] = 0;
    }
    return;
  }
  for (let jp = 0; jp < ncPad; jp += NR) {
    const base = BP + jp * kc;
    for (let c = 0; c < NR; c++) {
      if (jp + c < nc) {
        let src = B.off + p0 * rs + (j0 + jp + c) * cs;
        for (let p = 0; p < kc; p++, src += rs) mem[base + p * NR + c] = Bd[src]!;
      } else {
        for (let p = 0; p < kc; p++) mem[base + p * NR + c] = 0;
      }
    }
  }
}

/** Packs A[i0:i0+mc, p0:p0+kc] as row panels of MR (zero-padded to mcPad), reading along A's unit stride. */
function packA(
  Ad: ArrayLike<number>,
  A: Strided,
  mem: Float64Array,
  AP: number,
  i0: number,
  p0: number,
  mc: number,
  mcPad: number,
  kc: number,
): void {
  const { rs, cs } = A;
  if (rs === 1 && cs !== 1) {
    for (let p = 0; p < kc; p++) {
      const src = A.off + i0 + (p0 + p) * cs;
      for (let i = 0; i < mc; i++) mem[AP + (i - (i & 3)) * kc + p * MR + (i & 3)] = Ad[src + i]!;
      for (let i = mc; i < mcPad; i++) mem[AP + (i - (i & 3)) * kc + p * MR + (i & 3)] = 0;
    }
    return;
  }
  for (let ip = 0; ip < mcPad; ip += MR) {
    const base = AP + ip * kc;
    for (let r = 0; r < MR; r++) {
      if (ip + r < mc) {
        let src = A.off + (i0 + ip + r) * rs + p0 * cs;
        for (let p = 0; p < kc; p++, src += cs) mem[base + p * MR + r] = Ad[src]!;
      } else {
        for (let p = 0; p < kc; p++) mem[base + p * MR + r] = 0;
      }
    }
  }
}

function jsFallback(
  A: Strided,
  B: Strided,
  C: Float64Array,
  cOff: number,
  ldc: number,
  m: number,
  n: number,
  k: number,
  upper: boolean,
): void {
  // The JS kernel writes a contiguous [rows, nc] result; add it into C's window strip by strip.
  for (let j0 = 0; j0 < n; j0 += NC) {
    const nc = Math.min(NC, n - j0);
    const rows = upper ? Math.min(m, j0 + nc) : m;
    const tmp = new Float64Array(rows * nc);
    jsGemm(A.data as Float64Array, A.off, A.rs, A.cs, B.data as Float64Array, B.off + j0 * B.cs, B.rs, B.cs, tmp, 0, rows, nc, k);
    for (let i = 0; i < rows; i++) {
      const co = cOff + i * ldc + j0;
      for (let c = 0; c < nc; c++) C[co + c]! += tmp[i * nc + c]!;
    }
  }
}

/** Row-major dense operand [rows, cols], optionally read transposed. */
export function dense(data: ArrayLike<number>, cols: number, trans = false, off = 0): Strided {
  return trans ? { data, off, rs: 1, cs: cols } : { data, off, rs: cols, cs: 1 };
}
