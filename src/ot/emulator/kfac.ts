/**
 * Streaming KFAC statistics for one linear layer y = x Wᵀ (+ b), W [out, in].
 *
 * Conventions (they fix the relative scale of GCS's two terms, so λ means the same thing for any batch size):
 * - The training loss is a MEAN over the batch's loss tokens: ℓ_b = (1/N_b) Σ_t ℓ_t. The backward pass
 *   therefore hands us dy rows that already carry the 1/N_b factor. Callers pass N_b as `lossTokens`.
 * - `g` = ∂ℓ/∂W of the support-set mean token loss ℓ = Σ_b N_b ℓ_b / Σ_b N_b, i.e. the per-batch
 *   gradients Σ_rows dyᵀx weighted by their token counts (equal to the plain mean over batches when every
 *   batch has the same N_b). Same for `gBias` (Σ_rows dy).
 * - `A` = E_rows[x xᵀ] (every row the layer saw, padding included, as the forward pass uses them).
 * - `G` = E_rows[e eᵀ] with e = N_b·dy = ∂(Σ_t ℓ_t)/∂y, the un-averaged output gradient: KFAC's
 *   H ≈ A ⊗ G is then the (expanded, empirical-Fisher) curvature of the per-token loss, the same
 *   normalization as `g`, so ‖G δ A‖₁ and ⟨g, δ⟩ are both "per token" quantities.
 * - `meanX` = E_rows[x]: with it the homogeneous factor Ã = E[x̃ x̃ᵀ], x̃ = [x; 1], covers the bias as an
 *   extra input column that always sees 1 (used when a deletion touches the bias, see gcs.ts).
 * Only sums and counts are kept (O(in² + out² + out·in) memory), never the rows.
 */
import type { FloatArray } from '../../engine/backend';
import { hostMatmul } from '../../engine/linalg/matmul';

/** The finished statistics of one linear layer. All row-major f64. */
export interface LinearStats {
  inDim: number;
  outDim: number;
  /** [in, in] = E[x xᵀ]. */
  A: Float64Array;
  /** [out, out] = E[e eᵀ]. */
  G: Float64Array;
  /** [out, in] = ∂ℓ/∂W (mean token loss). */
  g: Float64Array;
  /** [out] = ∂ℓ/∂b. */
  gBias: Float64Array;
  /** [in] = E[x]. */
  meanX: Float64Array;
  rows: number;
  lossTokens: number;
  batches: number;
}

function accumulateGram(dst: Float64Array, x: ArrayLike<number>, rows: number, dim: number, scale: number): void {
  // Symmetric rank-`rows` update of the upper triangle, mirrored afterwards by the caller's finish().
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    for (let i = 0; i < dim; i++) {
      const xi = x[o + i]! * scale;
      if (xi === 0) continue;
      const di = i * dim;
      for (let j = i; j < dim; j++) dst[di + j]! += xi * x[o + j]!;
    }
  }
}

function mirrorUpper(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[j * n + i] = a[i * n + j]!;
}

export class KfacAccumulator {
  readonly inDim: number;
  readonly outDim: number;
  private readonly sumXX: Float64Array;
  private readonly sumEE: Float64Array;
  private readonly sumGrad: Float64Array;
  private readonly sumGradBias: Float64Array;
  private readonly sumX: Float64Array;
  private rows = 0;
  private tokens = 0;
  private batches = 0;

  constructor(inDim: number, outDim: number) {
    this.inDim = inDim;
    this.outDim = outDim;
    this.sumXX = new Float64Array(inDim * inDim);
    this.sumEE = new Float64Array(outDim * outDim);
    this.sumGrad = new Float64Array(outDim * inDim);
    this.sumGradBias = new Float64Array(outDim);
    this.sumX = new Float64Array(inDim);
  }

  /**
   * Adds one batch: x [rows, in] (the layer's input), dy [rows, out] (∂ℓ_b/∂y of the batch's MEAN loss),
   * lossTokens = N_b, the number of tokens that mean was taken over.
   */
  addBatch(x: FloatArray | Float64Array, dy: FloatArray | Float64Array, rows: number, lossTokens: number): void {
    const { inDim, outDim } = this;
    if (x.length !== rows * inDim) throw new Error(`kfac: x has ${x.length} elements, expected ${rows}x${inDim}`);
    if (dy.length !== rows * outDim) throw new Error(`kfac: dy has ${dy.length} elements, expected ${rows}x${outDim}`);
    if (!(lossTokens > 0)) throw new Error(`kfac: lossTokens must be positive, got ${lossTokens}`);
    accumulateGram(this.sumXX, x, rows, inDim, 1);
    accumulateGram(this.sumEE, dy, rows, outDim, lossTokens * lossTokens);
    const x64 = x instanceof Float64Array ? x : Float64Array.from(x);
    const dy64 = dy instanceof Float64Array ? dy : Float64Array.from(dy);
    // Batch gradient Σ_rows dyᵀ x, weighted by N_b for the token-weighted mean over batches.
    const gb = hostMatmul(dy64, x64, { m: outDim, n: inDim, k: rows, transA: true });
    for (let i = 0; i < gb.length; i++) this.sumGrad[i]! += lossTokens * gb[i]!;
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < outDim; o++) this.sumGradBias[o]! += lossTokens * dy64[r * outDim + o]!;
      for (let i = 0; i < inDim; i++) this.sumX[i]! += x64[r * inDim + i]!;
    }
    this.rows += rows;
    this.tokens += lossTokens;
    this.batches += 1;
  }

  get rowCount(): number {
    return this.rows;
  }

  finish(): LinearStats {
    if (this.rows === 0) throw new Error('kfac: no batches accumulated');
    const { inDim, outDim } = this;
    const A = this.sumXX.map((v) => v / this.rows);
    mirrorUpper(A, inDim);
    const G = this.sumEE.map((v) => v / this.rows);
    mirrorUpper(G, outDim);
    return {
      inDim,
      outDim,
      A,
      G,
      g: this.sumGrad.map((v) => v / this.tokens),
      gBias: this.sumGradBias.map((v) => v / this.tokens),
      meanX: this.sumX.map((v) => v / this.rows),
      rows: this.rows,
      lossTokens: this.tokens,
      batches: this.batches,
    };
  }
}

/** Ã = E[x̃ x̃ᵀ] for x̃ = [x; 1]: [[A, μ], [μᵀ, 1]], size (in+1)². */
export function augmentedA(s: Pick<LinearStats, 'A' | 'meanX' | 'inDim'>): Float64Array {
  const n = s.inDim;
  const out = new Float64Array((n + 1) * (n + 1));
  for (let i = 0; i < n; i++) {
    out.set(s.A.subarray(i * n, i * n + n), i * (n + 1));
    out[i * (n + 1) + n] = s.meanX[i]!;
    out[n * (n + 1) + i] = s.meanX[i]!;
  }
  out[(n + 1) * (n + 1) - 1] = 1;
  return out;
}
