/**
 * The CPU backend's f32 row kernels outside matmul: activations (plain and gated), RMSNorm / LayerNorm,
 * cross-entropy and attention's softmax steps, forward and backward, and the AdamW update.
 *
 * Each kernel is one self-contained function over a range [lo, hi) of elements or rows: it reads only its
 * arguments, its locals and Math (no module constants, no helper calls), because the pool's workers run the
 * very same function text (pool.ts embeds `fn.toString()` of every entry of KERNELS in the worker source;
 * the studio's Content-Security-Policy forbids eval, so the text travels inside the worker script). The
 * calling thread calls the functions directly. One text, per-element (or per-row) arithmetic that does not
 * depend on the range: results are bitwise identical for any thread count and any split.
 *
 * Arithmetic is the CPU reference's (backend.ts): JS doubles, rounded to f32 only where a value is stored.
 * Array arguments come with an element offset (a worker passes the whole shared memory with the staged
 * operand's offset; the calling thread passes the operand itself with offset 0). Reductions over rows (the
 * norms' weight gradients) write one f64 partial per fixed chunk of rows; the caller adds the partials in
 * chunk order, so the sum does not depend on the thread count either.
 */

/** Activation codes shared by the kernels (a kernel cannot see module constants). */
export const ACT_CODE = { gelu_tanh: 0, silu: 1, relu: 2 } as const;

/** Y[yo + i] = act(X[xo + i]) for i in [lo, hi). */
export function kActFwd(X: Float32Array, xo: number, Y: Float32Array, yo: number, kind: number, lo: number, hi: number): void {
  if (kind === 0) {
    const c = Math.sqrt(2 / Math.PI);
    for (let i = lo; i < hi; i++) {
      const v = X[xo + i]!;
      Y[yo + i] = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
    }
  } else if (kind === 1) {
    for (let i = lo; i < hi; i++) Y[yo + i] = X[xo + i]! / (1 + Math.exp(-X[xo + i]!));
  } else {
    for (let i = lo; i < hi; i++) Y[yo + i] = X[xo + i]! > 0 ? X[xo + i]! : 0;
  }
}

/** DX[i] = G[i] · act'(X[i]). */
export function kActBwd(
  G: Float32Array,
  go: number,
  X: Float32Array,
  xo: number,
  DX: Float32Array,
  dxo: number,
  kind: number,
  lo: number,
  hi: number,
): void {
  if (kind === 0) {
    const c = Math.sqrt(2 / Math.PI);
    for (let i = lo; i < hi; i++) {
      const v = X[xo + i]!;
      const t = Math.tanh(c * (v + 0.044715 * v * v * v));
      const dt = (1 - t * t) * c * (1 + 3 * 0.044715 * v * v);
      DX[dxo + i] = G[go + i]! * (0.5 * (1 + t) + 0.5 * v * dt);
    }
  } else if (kind === 1) {
    for (let i = lo; i < hi; i++) {
      const s = 1 / (1 + Math.exp(-X[xo + i]!));
      DX[dxo + i] = G[go + i]! * s * (1 + X[xo + i]! * (1 - s));
    }
  } else {
    for (let i = lo; i < hi; i++) DX[dxo + i] = X[xo + i]! > 0 ? G[go + i]! : 0;
  }
}

/**
 * Y[i] = f32(act(A[i])) · U[i]: bitwise the composition mul(activation(A), U) on f32 storage (the activation
 * is rounded to f32 where the composition would have stored it).
 */
export function kGatedFwd(
  A: Float32Array,
  ao: number,
  U: Float32Array,
  uo: number,
  Y: Float32Array,
  yo: number,
  kind: number,
  lo: number,
  hi: number,
): void {
  const c = Math.sqrt(2 / Math.PI);
  for (let i = lo; i < hi; i++) {
    const v = A[ao + i]!;
    const a = kind === 0 ? 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v))) : kind === 1 ? v / (1 + Math.exp(-v)) : v > 0 ? v : 0;
    Y[yo + i] = Math.fround(a) * U[uo + i]!;
  }
}

/**
 * Backward of kGatedFwd, bitwise the composition's: DA[i] = f32(G·U) · act'(A), DU[i] = G · f32(act(A)).
 */
export function kGatedBwd(
  G: Float32Array,
  go: number,
  A: Float32Array,
  ao: number,
  U: Float32Array,
  uo: number,
  DA: Float32Array,
  dao: number,
  DU: Float32Array,
  duo: number,
  kind: number,
  lo: number,
  hi: number,
): void {
  const c = Math.sqrt(2 / Math.PI);
  for (let i = lo; i < hi; i++) {
    const v = A[ao + i]!;
    const g = G[go + i]!;
    const gu = Math.fround(g * U[uo + i]!);
    if (kind === 0) {
      const t = Math.tanh(c * (v + 0.044715 * v * v * v));
      const dt = (1 - t * t) * c * (1 + 3 * 0.044715 * v * v);
      DA[dao + i] = gu * (0.5 * (1 + t) + 0.5 * v * dt);
      DU[duo + i] = g * Math.fround(0.5 * v * (1 + t));
    } else if (kind === 1) {
      // One exp serves both: the same value the composition's two passes compute.
      const e = Math.exp(-v);
      const s = 1 / (1 + e);
      DA[dao + i] = gu * s * (1 + v * (1 - s));
      DU[duo + i] = g * Math.fround(v / (1 + e));
    } else {
      DA[dao + i] = v > 0 ? gu : 0;
      DU[duo + i] = g * (v > 0 ? v : 0);
    }
  }
}

/** RMSNorm forward over rows [lo, hi) of width dim: Y = X · rstd · W, R[r] = rstd. */
export function kRmsFwd(
  X: Float32Array,
  xo: number,
  W: Float32Array,
  wo: number,
  Y: Float32Array,
  yo: number,
  R: Float32Array,
  ro: number,
  dim: number,
  eps: number,
  lo: number,
  hi: number,
): void {
  for (let r = lo; r < hi; r++) {
    const o = r * dim;
    let ss = 0;
    for (let c = 0; c < dim; c++) ss += X[xo + o + c]! * X[xo + o + c]!;
    const rs = 1 / Math.sqrt(ss / dim + eps);
    for (let c = 0; c < dim; c++) Y[yo + o + c] = X[xo + o + c]! * rs * W[wo + c]!;
    R[ro + r] = rs;
  }
}

/** RMSNorm backward over rows [lo, hi): DX rows, and this chunk's dW partial (dim doubles at PW[pwo]). */
export function kRmsBwd(
  G: Float32Array,
  go: number,
  X: Float32Array,
  xo: number,
  W: Float32Array,
  wo: number,
  R: Float32Array,
  ro: number,
  DX: Float32Array,
  dxo: number,
  PW: Float64Array,
  pwo: number,
  dim: number,
  lo: number,
  hi: number,
): void {
  for (let c = 0; c < dim; c++) PW[pwo + c] = 0;
  for (let r = lo; r < hi; r++) {
    const o = r * dim;
    const rs = R[ro + r]!;
    let sumGX = 0;
    for (let c = 0; c < dim; c++) {
      const xh = X[xo + o + c]! * rs;
      sumGX += G[go + o + c]! * W[wo + c]! * xh;
      PW[pwo + c]! += G[go + o + c]! * xh;
    }
    sumGX /= dim;
    for (let c = 0; c < dim; c++) DX[dxo + o + c] = rs * (G[go + o + c]! * W[wo + c]! - X[xo + o + c]! * rs * sumGX);
  }
}

/** LayerNorm forward over rows [lo, hi): Y = (X − mean) · rstd · W (+ B when hasB), M = mean, R = rstd. */
export function kLnFwd(
  X: Float32Array,
  xo: number,
  W: Float32Array,
  wo: number,
  B: Float32Array,
  bo: number,
  Y: Float32Array,
  yo: number,
  M: Float32Array,
  mo: number,
  R: Float32Array,
  ro: number,
  dim: number,
  hasB: number,
  eps: number,
  lo: number,
  hi: number,
): void {
  for (let r = lo; r < hi; r++) {
    const o = r * dim;
    let mu = 0;
    for (let c = 0; c < dim; c++) mu += X[xo + o + c]!;
    mu /= dim;
    let v = 0;
    for (let c = 0; c < dim; c++) {
      const t = X[xo + o + c]! - mu;
      v += t * t;
    }
    v /= dim;
    const rs = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < dim; c++) Y[yo + o + c] = (X[xo + o + c]! - mu) * rs * W[wo + c]! + (hasB ? B[bo + c]! : 0);
    M[mo + r] = mu;
    R[ro + r] = rs;
  }
}

/** LayerNorm backward over rows [lo, hi): DX rows, and this chunk's dW / dB partials (dim doubles each). */
export function kLnBwd(
  G: Float32Array,
  go: number,
  X: Float32Array,
  xo: number,
  W: Float32Array,
  wo: number,
  M: Float32Array,
  mo: number,
  R: Float32Array,
  ro: number,
  DX: Float32Array,
  dxo: number,
  PW: Float64Array,
  pwo: number,
  PB: Float64Array,
  pbo: number,
  dim: number,
  lo: number,
  hi: number,
): void {
  for (let c = 0; c < dim; c++) {
    PW[pwo + c] = 0;
    PB[pbo + c] = 0;
  }
  for (let r = lo; r < hi; r++) {
    const o = r * dim;
    const mu = M[mo + r]!;
    const rs = R[ro + r]!;
    let sumG = 0;
    let sumGX = 0;
    for (let c = 0; c < dim; c++) {
      const xh = (X[xo + o + c]! - mu) * rs;
      const gx = G[go + o + c]! * W[wo + c]!;
      sumG += gx;
      sumGX += gx * xh;
      PW[pwo + c]! += G[go + o + c]! * xh;
      PB[pbo + c]! += G[go + o + c]!;
    }
    sumG /= dim;
    sumGX /= dim;
    for (let c = 0; c < dim; c++) {
      const xh = (X[xo + o + c]! - mu) * rs;
      DX[dxo + o + c] = rs * (G[go + o + c]! * W[wo + c]! - sumG - xh * sumGX);
    }
  }
}

/** Cross-entropy per row r in [lo, hi): OUT[r] = logsumexp(X[r]) − X[r, t] (0 where t is ignoreIndex).
 *  Targets are validated by the caller. */
export function kCeFwd(
  X: Float32Array,
  xo: number,
  Tg: Int32Array,
  to: number,
  OUT: Float32Array,
  oo: number,
  vocab: number,
  ignore: number,
  lo: number,
  hi: number,
): void {
  for (let r = lo; r < hi; r++) {
    const t = Tg[to + r]!;
    if (t === ignore) {
      OUT[oo + r] = 0;
      continue;
    }
    const o = xo + r * vocab;
    let mx = -Infinity;
    for (let c = 0; c < vocab; c++) if (X[o + c]! > mx) mx = X[o + c]!;
    let s = 0;
    for (let c = 0; c < vocab; c++) s += Math.exp(X[o + c]! - mx);
    OUT[oo + r] = mx + Math.log(s) - X[o + t]!;
  }
}

/** Cross-entropy backward per row: OUT[r, :] = softmax(X[r]) · G[r], minus G[r] at the target (0 rows where
 *  the target is ignoreIndex). */
export function kCeBwd(
  X: Float32Array,
  xo: number,
  Tg: Int32Array,
  to: number,
  G: Float32Array,
  go: number,
  OUT: Float32Array,
  oo: number,
  vocab: number,
  ignore: number,
  lo: number,
  hi: number,
): void {
  for (let r = lo; r < hi; r++) {
    const t = Tg[to + r]!;
    const o = xo + r * vocab;
    const d = oo + r * vocab;
    if (t === ignore) {
      for (let c = 0; c < vocab; c++) OUT[d + c] = 0;
      continue;
    }
    let mx = -Infinity;
    for (let c = 0; c < vocab; c++) if (X[o + c]! > mx) mx = X[o + c]!;
    let s = 0;
    for (let c = 0; c < vocab; c++) s += Math.exp(X[o + c]! - mx);
    const lse = mx + Math.log(s);
    const g = G[go + r]!;
    for (let c = 0; c < vocab; c++) OUT[d + c] = Math.exp(X[o + c]! - lse) * g;
    OUT[d + t]! -= g;
  }
}

/**
 * Attention forward, rows [lo, hi) of one head's T x T score block at S[so]: in place, S ← softmax(scale·S)
 * under the causal mask (masked entries 0), L[lo_ + i] = logsumexp. E is a scratch row of T doubles.
 */
export function kAttnSoftmax(
  S: Float32Array,
  so: number,
  L: Float32Array,
  lso: number,
  E: Float64Array,
  eo: number,
  T: number,
  causal: number,
  scale: number,
  lo: number,
  hi: number,
): void {
  for (let i = lo; i < hi; i++) {
    const row = so + i * T;
    const jEnd = causal ? i + 1 : T;
    let mx = -Infinity;
    for (let j = 0; j < jEnd; j++) {
      const sv = S[row + j]! * scale;
      if (sv > mx) mx = sv;
    }
    let l = 0;
    for (let j = 0; j < jEnd; j++) {
      const e = Math.exp(S[row + j]! * scale - mx);
      E[eo + j] = e;
      l += e;
    }
    const inv = 1 / l;
    for (let j = 0; j < jEnd; j++) S[row + j] = E[eo + j]! * inv;
    for (let j = jEnd; j < T; j++) S[row + j] = 0;
    L[lso + i] = mx + Math.log(l);
  }
}

/** Attention backward, step 1, rows [lo, hi) of one head: P ← exp(scale·P − L) in place (masked 0). */
export function kAttnProbs(
  P: Float32Array,
  so: number,
  L: Float32Array,
  lso: number,
  T: number,
  causal: number,
  scale: number,
  lo: number,
  hi: number,
): void {
  for (let i = lo; i < hi; i++) {
    const row = so + i * T;
    const jEnd = causal ? i + 1 : T;
    const l = L[lso + i]!;
    for (let j = 0; j < jEnd; j++) P[row + j] = Math.exp(P[row + j]! * scale - l);
    for (let j = jEnd; j < T; j++) P[row + j] = 0;
  }
}

/**
 * Attention backward, step 2, rows [lo, hi) of one head: dS ← P ∘ (dP − Σ_d dO∘O) · scale in place, where
 * dS holds dP = dO Vᵀ on entry; this head's dO and O rows start at doo / oo with row stride qs.
 */
export function kAttnDs(
  DS: Float32Array,
  so: number,
  P: Float32Array,
  po: number,
  DO: Float32Array,
  doo: number,
  O: Float32Array,
  oo: number,
  qs: number,
  D: number,
  T: number,
  causal: number,
  scale: number,
  lo: number,
  hi: number,
): void {
  for (let i = lo; i < hi; i++) {
    let di = 0;
    const a = doo + i * qs;
    const b = oo + i * qs;
    for (let d = 0; d < D; d++) di += DO[a + d]! * O[b + d]!;
    const row = so + i * T;
    const prow = po + i * T;
    const jEnd = causal ? i + 1 : T;
    for (let j = 0; j < jEnd; j++) DS[row + j] = P[prow + j]! * (DS[row + j]! - di) * scale;
    for (let j = jEnd; j < T; j++) DS[row + j] = 0;
  }
}

/**
 * AdamW in place over elements [lo, hi) (torch's form; backend.ts explains the constants): m, v updated,
 * p ← p·decay − stepSize·m / (√v · invSqrtBc2 + eps).
 */
export function kAdamW(
  P: Float32Array,
  po: number,
  G: Float32Array,
  go: number,
  M: Float32Array,
  mo: number,
  V: Float32Array,
  vo: number,
  beta1: number,
  beta2: number,
  eps: number,
  gradScale: number,
  decay: number,
  stepSize: number,
  invSqrtBc2: number,
  lo: number,
  hi: number,
): void {
  const b1 = 1 - beta1;
  const b2 = 1 - beta2;
  for (let i = lo; i < hi; i++) {
    const g = G[go + i]! * gradScale;
    const mi = beta1 * M[mo + i]! + b1 * g;
    const vi = beta2 * V[vo + i]! + b2 * g * g;
    M[mo + i] = mi;
    V[vo + i] = vi;
    P[po + i] = P[po + i]! * decay - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
  }
}

/**
 * Elementwise binary op over [lo, hi): O = X + Y (kind 0), X − Y (1), X · Y (2). The residual adds and the
 * gradients' sums of the training step.
 */
export function kBinary(
  X: Float32Array,
  xo: number,
  Y: Float32Array,
  yo: number,
  O: Float32Array,
  oo: number,
  kind: number,
  lo: number,
  hi: number,
): void {
  if (kind === 0) for (let i = lo; i < hi; i++) O[oo + i] = X[xo + i]! + Y[yo + i]!;
  else if (kind === 1) for (let i = lo; i < hi; i++) O[oo + i] = X[xo + i]! - Y[yo + i]!;
  else for (let i = lo; i < hi; i++) O[oo + i] = X[xo + i]! * Y[yo + i]!;
}

/** O = X · s over [lo, hi). */
export function kScale(X: Float32Array, xo: number, O: Float32Array, oo: number, s: number, lo: number, hi: number): void {
  for (let i = lo; i < hi; i++) O[oo + i] = X[xo + i]! * s;
}

/** T += alpha · S over [lo, hi), in place (gradient accumulation). */
export function kAxpy(T: Float32Array, to: number, S: Float32Array, so: number, alpha: number, lo: number, hi: number): void {
  for (let i = lo; i < hi; i++) T[to + i]! += alpha * S[so + i]!;
}

/** O = X + bias over rows [lo, hi) of width cols. */
export function kAddBias(
  X: Float32Array,
  xo: number,
  B: Float32Array,
  bo: number,
  O: Float32Array,
  oo: number,
  cols: number,
  lo: number,
  hi: number,
): void {
  for (let r = lo; r < hi; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) O[oo + o + c] = X[xo + o + c]! + B[bo + c]!;
  }
}

/**
 * Rotary embedding over rows [lo, hi) of x [B, T, H, D] (row r = (b·T + t)·H + h): with the table's
 * CS[t·half + i] = cos and CS[T·half + t·half + i] = ±sin (the sign picks the inverse), the pair (x1, x2) =
 * (X[i], X[i + half]) becomes (x1·cos − x2·sin, x2·cos + x1·sin), the reference's arithmetic on the same
 * doubles.
 */
export function kRope(
  X: Float32Array,
  xo: number,
  CS: Float64Array,
  co: number,
  O: Float32Array,
  oo: number,
  T: number,
  H: number,
  half: number,
  lo: number,
  hi: number,
): void {
  const so = co + T * half;
  for (let r = lo; r < hi; r++) {
    const t = Math.floor(r / H) % T;
    const o = r * 2 * half;
    const c = co + t * half;
    const s = so + t * half;
    for (let i = 0; i < half; i++) {
      const x1 = X[xo + o + i]!;
      const x2 = X[xo + o + i + half]!;
      O[oo + o + i] = x1 * CS[c + i]! - x2 * CS[s + i]!;
      O[oo + o + i + half] = x2 * CS[c + i]! + x1 * CS[s + i]!;
    }
  }
}

/**
 * The kernels the pool's workers run, by index (the `op` word of a job descriptor). `sig` lists the
 * arguments before (lo, hi): 'F' / 'D' / 'I' = the shared memory as f32 / f64 / i32 (its offset is the next
 * 'i'), 'i' = an integer from the descriptor, 'd' = a double from the dispatch's parameter block.
 */
export const KERNELS = [
  { fn: kActFwd, sig: 'FiFii' },
  { fn: kActBwd, sig: 'FiFiFii' },
  { fn: kGatedFwd, sig: 'FiFiFii' },
  { fn: kGatedBwd, sig: 'FiFiFiFiFii' },
  { fn: kRmsFwd, sig: 'FiFiFiFiid' },
  { fn: kRmsBwd, sig: 'FiFiFiFiFiDii' },
  { fn: kLnFwd, sig: 'FiFiFiFiFiFiiid' },
  { fn: kLnBwd, sig: 'FiFiFiFiFiFiDiDii' },
  { fn: kCeFwd, sig: 'FiIiFiii' },
  { fn: kCeBwd, sig: 'FiIiFiFiii' },
  { fn: kAttnSoftmax, sig: 'FiFiDiiid' },
  { fn: kAttnProbs, sig: 'FiFiiid' },
  { fn: kAttnDs, sig: 'FiFiFiFiiiiid' },
  { fn: kAdamW, sig: 'FiFiFiFiddddddd' },
  { fn: kBinary, sig: 'FiFiFii' },
  { fn: kScale, sig: 'FiFid' },
  { fn: kAxpy, sig: 'FiFid' },
  { fn: kAddBias, sig: 'FiFiFii' },
  { fn: kRope, sig: 'FiDiFiiii' },
] as const;

export const OP = {
  actFwd: 0,
  actBwd: 1,
  gatedFwd: 2,
  gatedBwd: 3,
  rmsFwd: 4,
  rmsBwd: 5,
  lnFwd: 6,
  lnBwd: 7,
  ceFwd: 8,
  ceBwd: 9,
  attnSoftmax: 10,
  attnProbs: 11,
  attnDs: 12,
  adamw: 13,
  binary: 14,
  scale: 15,
  axpy: 16,
  addBias: 17,
  rope: 18,
} as const;
