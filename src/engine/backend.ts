/**
 * The Backend contract: every numeric kernel the engine needs, as forward/backward pairs (llm.c style).
 *
 * Why this shape:
 * - Ops work on opaque `Storage` handles (flat, contiguous, row-major) plus explicit sizes, so a backend is
 *   just a bag of kernels; shapes and autograd live one level up in `tensor.ts` / `ops.ts`.
 * - Every op is synchronous and returns fresh storage; only `read` is async. On WebGPU this means a whole
 *   forward+backward is encoded without a single GPU->CPU sync; the CPU backend simply runs eagerly.
 * - Integer inputs (token ids, targets) are host `Int32Array`s; a GPU backend uploads them.
 * - The CPU backend (`cpu/`) is the oracle: every other backend is tested against it on random inputs.
 *
 * Layout conventions (all row-major):
 * - Linear weights are Hugging Face's `[out, in]`; activations `[rows, features]`.
 * - Attention q is `[B, T, H, D]`, k and v are `[B, T, Hkv, D]` (H % Hkv == 0, grouped-query attention),
 *   which is exactly what a linear projection of `[B*T, hidden]` produces: no permutes needed.
 */

export type DType = 'f32' | 'f64';
export type FloatArray = Float32Array | Float64Array;

/** Opaque handle to `length` contiguous elements owned by a backend. */
export interface Storage {
  readonly length: number;
}

export interface MatmulParams {
  /** Number of independent products. */
  batch: number;
  /** C is [batch, m, n]. */
  m: number;
  n: number;
  /** Contraction size. */
  k: number;
  /** A is [batch, m, k], or [batch, k, m] when transA. */
  transA?: boolean;
  /** B is [batch, k, n], or [batch, n, k] when transB. */
  transB?: boolean;
  /** When false, B is a single matrix shared by every batch entry (a weight). Default true. */
  bBatched?: boolean;
  /** When false, A is a single matrix shared by every batch entry. Default true. */
  aBatched?: boolean;
}

export interface AttentionParams {
  B: number;
  T: number;
  /** Query heads. */
  H: number;
  /** Key/value heads; H % Hkv === 0. */
  Hkv: number;
  /** Head dim. */
  D: number;
  /** Softmax scale, usually 1/sqrt(D). */
  scale: number;
  causal: boolean;
}

export interface RopeParams {
  B: number;
  T: number;
  H: number;
  D: number;
  theta: number;
  /** Position of the first token (for decoding with a cache). */
  positionOffset?: number;
}

export type Activation = 'gelu_tanh' | 'gelu_erf' | 'relu' | 'silu';

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step used for bias correction. */
  step: number;
  /** Multiplies the gradient first (gradient clipping / accumulation scale). */
  gradScale: number;
}

export interface Backend {
  readonly name: string;
  readonly dtype: DType;

  // ---- memory ----
  /** Zero-filled storage. */
  zeros(n: number): Storage;
  fromArray(a: ArrayLike<number>): Storage;
  read(s: Storage): Promise<FloatArray>;
  /** Releases storage for reuse; using it afterwards is a bug. */
  free(s: Storage): void;
  /** Copies `n` elements: dst[dstOff + i] = src[srcOff + i]. */
  copy(src: Storage, srcOff: number, dst: Storage, dstOff: number, n: number): void;
  /** Gathers a column block: out[r, c] = x[r, colOff + c] for x with `cols` columns, out with `width`. */
  sliceCols(x: Storage, rows: number, cols: number, colOff: number, width: number): Storage;
  /** Inverse of sliceCols, accumulating into dst (used by the backward of sliceCols). */
  addIntoCols(dst: Storage, src: Storage, rows: number, cols: number, colOff: number, width: number): void;

  // ---- elementwise ----
  add(a: Storage, b: Storage): Storage;
  sub(a: Storage, b: Storage): Storage;
  mul(a: Storage, b: Storage): Storage;
  scale(a: Storage, s: number): Storage;
  /** dst += alpha * src, in place (gradient accumulation). */
  axpy(dst: Storage, src: Storage, alpha: number): void;
  /** y[r, c] = x[r, c] + bias[c]. */
  addBias(x: Storage, bias: Storage, rows: number, cols: number): Storage;
  /** out[c] = sum_r x[r, c] (bias gradient). */
  sumRows(x: Storage, rows: number, cols: number): Storage;
  /** Single-element storage with sum(x*x) (for global-norm clipping without a sync per tensor). */
  sumSquares(x: Storage): Storage;

  activation(x: Storage, kind: Activation): Storage;
  activationBackward(dy: Storage, x: Storage, kind: Activation): Storage;
  /** Optional fusion of act(gate) * up (gated MLPs); without it ops.gatedActivation composes
   *  activation and mul. Must equal that composition. */
  gatedActivation?(gate: Storage, up: Storage, kind: Activation): Storage;
  /** Backward of gatedActivation: dgate = dy * up * act'(gate), dup = dy * act(gate). */
  gatedActivationBackward?(dy: Storage, gate: Storage, up: Storage, kind: Activation): { dgate: Storage; dup: Storage };

  // ---- matmul ----
  matmul(a: Storage, b: Storage, p: MatmulParams): Storage;
  /** Optional: xᵀx [dim, dim] of x [rows, dim], equal to matmul(x, x, { transA: true }) but computed from
   *  one triangle (about half the work). */
  gram?(x: Storage, rows: number, dim: number): Storage;

  // ---- embeddings ----
  /** out[i, :] = table[ids[i], :]; table is [vocab, dim]. */
  gather(table: Storage, ids: Int32Array, dim: number): Storage;
  /** out = zeros(vocab, dim); out[ids[i], :] += dy[i, :]. */
  scatterAdd(dy: Storage, ids: Int32Array, vocab: number, dim: number): Storage;

  // ---- norms ----
  /** LayerNorm over the last dim; returns y and per-row mean and rstd saved for backward. */
  layerNorm(
    x: Storage,
    w: Storage,
    b: Storage | null,
    rows: number,
    dim: number,
    eps: number,
  ): { y: Storage; mean: Storage; rstd: Storage };
  layerNormBackward(
    dy: Storage,
    x: Storage,
    w: Storage,
    mean: Storage,
    rstd: Storage,
    rows: number,
    dim: number,
  ): { dx: Storage; dw: Storage; db: Storage };
  rmsNorm(x: Storage, w: Storage, rows: number, dim: number, eps: number): { y: Storage; rstd: Storage };
  rmsNormBackward(dy: Storage, x: Storage, w: Storage, rstd: Storage, rows: number, dim: number): { dx: Storage; dw: Storage };

  // ---- attention ----
  /** Softmax attention; returns out [B,T,H,D] and the per-row log-sum-exp [B,H,T] saved for backward. */
  attention(q: Storage, k: Storage, v: Storage, p: AttentionParams): { out: Storage; lse: Storage };
  attentionBackward(
    dout: Storage,
    q: Storage,
    k: Storage,
    v: Storage,
    out: Storage,
    lse: Storage,
    p: AttentionParams,
  ): { dq: Storage; dk: Storage; dv: Storage };

  /** Rotary embedding (LLaMA's rotate_half convention) applied to x [B,T,H,D]; inverse=true undoes it
   *  (which is also its backward, since the rotation is orthogonal). */
  rope(x: Storage, p: RopeParams, inverse: boolean): Storage;

  // ---- loss ----
  /** Per-row cross-entropy of logits [rows, vocab]; rows whose target equals ignoreIndex give 0. */
  crossEntropy(logits: Storage, targets: Int32Array, rows: number, vocab: number, ignoreIndex: number): Storage;
  /** dlogits = (softmax(logits) - onehot(target)) * dloss[row]; zero for ignored rows. */
  crossEntropyBackward(logits: Storage, targets: Int32Array, dloss: Storage, rows: number, vocab: number, ignoreIndex: number): Storage;

  // ---- optimizer ----
  /** In-place AdamW on param, m, v (decoupled weight decay, bias-corrected). */
  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, p: AdamWParams): void;
}
