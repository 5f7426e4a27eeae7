/**
 * Matrix products for linalg, behind a pluggable function so the randomized SVD can run its big products
 * (W·Ω, Wᵀ·Q, Qᵀ·W) on the active Backend while the small dense factorizations stay on the host in f64.
 */
import type { Backend } from '../backend';
import { dense, gemm64 } from './gemm64';

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
 * f64 host matmul on the WebAssembly f64 GEMM (gemm64.ts; it falls back to JavaScript where WebAssembly
 * SIMD is missing). Measured on 3072x3072 by 3072x768 (GradOT's scoring products on GPT-2's MLP): 0.70 s
 * against 3.95 s for the JavaScript packed GEMM of cpu/matmul.ts, with bit-identical results. Transposes
 * are read through strides, never materialized.
 */
export const hostMatmul: MatmulFn = (a, b, p) => {
  const { m, n, k } = p;
  if (a.length !== m * k) throw new Error(`hostMatmul: A has ${a.length} elements, expected ${m}x${k}`);
  if (b.length !== k * n) throw new Error(`hostMatmul: B has ${b.length} elements, expected ${k}x${n}`);
  const c = new Float64Array(m * n);
  gemm64(dense(a, p.transA ? m : k, !!p.transA), dense(b, p.transB ? k : n, !!p.transB), c, 0, n, m, n, k);
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
