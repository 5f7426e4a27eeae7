/**
 * Matrix products for linalg, behind a pluggable function so the randomized SVD can run its big products
 * (W·Ω, Wᵀ·Q, Qᵀ·W) on the active Backend while the small dense factorizations stay on the host in f64.
 */
import type { Backend } from '../backend';
import { gemm } from '../cpu/matmul';

export interface MatmulShape {
  /** C is [m, n]. */
  m: number;
  n: number;
  /** Contraction size. */
  k: number;
  /** A is [m,k], or [k,m] when transA. */
  transA?: boolean;
  /** B is [k,n], or [n,k] when transB. */
  transB?: boolean;
}

/** C = op(A)·op(B), row-major, f64 in and out. */
export type MatmulFn = (a: Float64Array, b: Float64Array, p: MatmulShape) => Float64Array;
export type AsyncMatmulFn = (a: Float64Array, b: Float64Array, p: MatmulShape) => Promise<Float64Array>;

/** Row-major transpose of a [rows, cols] matrix. */
export function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const ro = i * cols;
    for (let j = 0; j < cols; j++) t[j * rows + i] = a[ro + j]!;
  }
  return t;
}

/**
 * f64 host matmul on the CPU backend's packed, cache-blocked GEMM (cpu/matmul.ts: ~4x a plain i-k-j loop);
 * transposes are read through strides, never materialized.
 */
export const hostMatmul: MatmulFn = (a, b, p) => {
  const { m, n, k } = p;
  if (a.length !== m * k) throw new Error(`hostMatmul: A has ${a.length} elements, expected ${m}x${k}`);
  if (b.length !== k * n) throw new Error(`hostMatmul: B has ${b.length} elements, expected ${k}x${n}`);
  const c = new Float64Array(m * n);
  const [aRs, aCs] = p.transA ? [1, m] : [k, 1];
  const [bRs, bCs] = p.transB ? [1, k] : [n, 1];
  gemm(a, 0, aRs, aCs, b, 0, bRs, bCs, c, 0, m, n, k);
  return c;
};

/**
 * Adapts a Backend's matmul (possibly f32, possibly a GPU) to AsyncMatmulFn. Precision is the backend's:
 * fine for the range finder of a randomized SVD (the sketch only has to span the dominant subspace).
 */
export function backendMatmul(backend: Backend): AsyncMatmulFn {
  return async (a, b, p) => {
    const sa = backend.fromArray(a);
    const sb = backend.fromArray(b);
    const sc = backend.matmul(sa, sb, {
      batch: 1,
      m: p.m,
      n: p.n,
      k: p.k,
      transA: p.transA,
      transB: p.transB,
    });
    const out = await backend.read(sc);
    backend.free(sa);
    backend.free(sb);
    backend.free(sc);
    return out instanceof Float64Array ? out : Float64Array.from(out);
  };
}
