/**
 * Differentiable ops over Tensor: each is a thin wrapper pairing a Backend forward with its backward, plus
 * the shape checks (errors name the op and the shapes involved). The decoder (src/model) and GradOT
 * (src/ot) build only on this API.
 *
 * Conventions: activations are [..., features] (leading dims flatten to rows); linear weights are Hugging
 * Face's [out, in]; attention takes q [B,T,H,D] and k/v [B,T,Hkv,D] (or the same memory shaped
 * [B,T,H*D] / [B*T, H*D], which is what a linear projection produces; only the element count is checked).
 *
 * Every op checks its inputs are not freed before touching storage (a freed CPU storage would otherwise read
 * as garbage), and hands statistics its backward needs to `record` as saved storages, so they are freed
 * with the node (or at once under noGrad) instead of leaking on a GPU.
 */

import type { Activation, Backend, MatmulParams, Storage } from './backend';
import { Tensor, assertLive, numel, record, shapeStr } from './tensor';

function fail(op: string, msg: string): never {
  throw new Error(`${op}: ${msg}`);
}

function sameBackend(op: string, ...ts: Tensor[]): Backend {
  assertLive(op, ...ts);
  const be = ts[0]!.backend;
  for (const t of ts) if (t.backend !== be) fail(op, 'tensors live on different backends');
  return be;
}

function out(be: Backend, shape: readonly number[], s: Storage): Tensor {
  return new Tensor(be, shape, s, false);
}

function lastDim(t: Tensor): number {
  return t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1]!;
}

// ---------------------------------------------------------------- elementwise

function checkSame(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i])) {
    fail(op, `shapes differ: ${shapeStr(a.shape)} vs ${shapeStr(b.shape)}`);
  }
}

export function add(a: Tensor, b: Tensor): Tensor {
  checkSame('add', a, b);
  const be = sameBackend('add', a, b);
  return record(out(be, a.shape, be.add(a.storage, b.storage)), [a, b], (g) => [g, g], 'add');
}

export function sub(a: Tensor, b: Tensor): Tensor {
  checkSame('sub', a, b);
  const be = sameBackend('sub', a, b);
  return record(out(be, a.shape, be.sub(a.storage, b.storage)), [a, b], (g) => [g, b.requiresGrad ? be.scale(g, -1) : null], 'sub');
}

export function mul(a: Tensor, b: Tensor): Tensor {
  checkSame('mul', a, b);
  const be = sameBackend('mul', a, b);
  return record(
    out(be, a.shape, be.mul(a.storage, b.storage)),
    [a, b],
    (g) => [a.requiresGrad ? be.mul(g, b.storage) : null, b.requiresGrad ? be.mul(g, a.storage) : null],
    'mul',
  );
}

export function scale(a: Tensor, s: number): Tensor {
  assertLive('scale', a);
  const be = a.backend;
  return record(out(be, a.shape, be.scale(a.storage, s)), [a], (g) => [be.scale(g, s)], 'scale');
}

/** y[..., c] = x[..., c] + bias[c]. */
export function addBias(x: Tensor, bias: Tensor): Tensor {
  const be = sameBackend('addBias', x, bias);
  const cols = lastDim(x);
  if (bias.size !== cols || bias.shape.length !== 1) {
    fail('addBias', `bias ${shapeStr(bias.shape)} does not match the last dim of x ${shapeStr(x.shape)}`);
  }
  const rows = x.size / cols;
  return record(
    out(be, x.shape, be.addBias(x.storage, bias.storage, rows, cols)),
    [x, bias],
    (g) => [g, bias.requiresGrad ? be.sumRows(g, rows, cols) : null],
    'addBias',
  );
}

export function activation(x: Tensor, kind: Activation): Tensor {
  assertLive('activation', x);
  const be = x.backend;
  return record(
    out(be, x.shape, be.activation(x.storage, kind)),
    [x],
    (g) => [be.activationBackward(g, x.storage, kind)],
    `activation(${kind})`,
  );
}

/**
 * act(gate) * up, the gated MLP's inner product (SwiGLU / GeGLU). One fused pass each way where the backend
 * offers it (WebGPU: 1 dispatch forward, 1 backward, instead of 2 and 3); otherwise activation then mul,
 * with the same numbers.
 */
export function gatedActivation(gate: Tensor, up: Tensor, kind: Activation): Tensor {
  checkSame('gatedActivation', gate, up);
  const be = sameBackend('gatedActivation', gate, up);
  if (!be.gatedActivation || !be.gatedActivationBackward) return mul(activation(gate, kind), up);
  const bwd = be.gatedActivationBackward.bind(be);
  return record(
    out(be, gate.shape, be.gatedActivation(gate.storage, up.storage, kind)),
    [gate, up],
    (g) => {
      const r = bwd(g, gate.storage, up.storage, kind);
      if (!gate.requiresGrad) be.free(r.dgate);
      if (!up.requiresGrad) be.free(r.dup);
      return [gate.requiresGrad ? r.dgate : null, up.requiresGrad ? r.dup : null];
    },
    `gatedActivation(${kind})`,
  );
}

// ---------------------------------------------------------------- shape ops

/** A view with the same storage (freeing either frees both); one dim may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  assertLive('reshape', x);
  const sh = [...shape];
  const neg = sh.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(sh.filter((_, i) => i !== neg));
    if (rest === 0 || x.size % rest !== 0) fail('reshape', `cannot infer -1 in ${shapeStr(shape)} for ${shapeStr(x.shape)}`);
    sh[neg] = x.size / rest;
  }
  if (numel(sh) !== x.size) fail('reshape', `${shapeStr(x.shape)} (${x.size} elements) cannot view as ${shapeStr(shape)}`);
  return record(out(x.backend, sh, x.storage), [x], (g) => [g], 'reshape');
}

/** Columns [colOff, colOff + width) of the last dim (splitting fused projections such as GPT-2's c_attn). */
export function sliceCols(x: Tensor, colOff: number, width: number): Tensor {
  assertLive('sliceCols', x);
  const be = x.backend;
  const cols = lastDim(x);
  if (colOff < 0 || width < 0 || colOff + width > cols) {
    fail('sliceCols', `columns [${colOff}, ${colOff + width}) outside the last dim of ${shapeStr(x.shape)}`);
  }
  const rows = x.size / cols;
  const shape = [...x.shape.slice(0, -1), width];
  return record(
    out(be, shape, be.sliceCols(x.storage, rows, cols, colOff, width)),
    [x],
    (g) => {
      const dx = be.zeros(rows * cols);
      be.addIntoCols(dx, g, rows, cols, colOff, width);
      return [dx];
    },
    'sliceCols',
  );
}

/** Sum of all elements, shape [1]. */
export function sum(x: Tensor): Tensor {
  assertLive('sum', x);
  const be = x.backend;
  const n = x.size;
  return record(
    out(be, [1], be.sumRows(x.storage, n, 1)),
    [x],
    (g) => {
      // Broadcast the scalar gradient on the device: zeros[n,1] + bias g.
      const z = be.zeros(n);
      const dx = be.addBias(z, g, n, 1);
      be.free(z);
      return [dx];
    },
    'sum',
  );
}

/** Mean of all elements, shape [1]. */
export function mean(x: Tensor): Tensor {
  return scale(sum(x), 1 / x.size);
}

// ---------------------------------------------------------------- matmul

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * Batched matrix product. a is [..., m, k] ([..., k, m] when transA), b is [..., k, n] ([..., n, k] when
 * transB). A 2-D operand is shared by every batch entry (a weight); otherwise leading dims must agree.
 * Result: [...batch, m, n].
 */
export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  const be = sameBackend(op, a, b);
  const transA = o.transA ?? false;
  const transB = o.transB ?? false;
  if (a.ndim < 2 || b.ndim < 2) fail(op, `operands must be at least 2-D: ${shapeStr(a.shape)} x ${shapeStr(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) {
    fail(
      op,
      `contraction sizes differ: ${shapeStr(a.shape)}${transA ? 'ᵀ' : ''} x ${shapeStr(b.shape)}${transB ? 'ᵀ' : ''} (${k} vs ${kb})`,
    );
  }
  const aLead = a.shape.slice(0, -2);
  const bLead = b.shape.slice(0, -2);
  const aBatched = aLead.length > 0;
  const bBatched = bLead.length > 0;
  if (aBatched && bBatched && (aLead.length !== bLead.length || aLead.some((s, i) => s !== bLead[i]))) {
    fail(op, `batch dims differ: ${shapeStr(a.shape)} vs ${shapeStr(b.shape)}`);
  }
  const lead = aBatched ? aLead : bLead;
  const batch = numel(lead);
  const p: MatmulParams = { batch, m: m!, n: n!, k: k!, transA, transB, aBatched, bBatched };
  const y = out(be, [...lead, m!, n!], be.matmul(a.storage, b.storage, p));
  return record(y, [a, b], (g) => matmulBackward(be, g, a.storage, b.storage, p, a.requiresGrad, b.requiresGrad), op);
}

/** Gradients of C = op(A)·op(B) for every transpose/sharing combination (see the table in each branch). */
export function matmulBackward(
  be: Backend,
  dC: Storage,
  A: Storage,
  B: Storage,
  p: MatmulParams,
  needA: boolean,
  needB: boolean,
): [Storage | null, Storage | null] {
  const { batch, m, n, k } = p;
  const tA = p.transA ?? false;
  const tB = p.transB ?? false;
  const aB = p.aBatched ?? true;
  const bB = p.bBatched ?? true;
  const mm = (
    x: Storage,
    xBatched: boolean,
    y: Storage,
    yBatched: boolean,
    tx: boolean,
    ty: boolean,
    mm_: number,
    nn: number,
    kk: number,
    sharedResult: boolean,
  ): Storage => {
    const r = be.matmul(x, y, { batch, m: mm_, n: nn, k: kk, transA: tx, transB: ty, aBatched: xBatched, bBatched: yBatched });
    if (!sharedResult || batch === 1) return r;
    const s = be.sumRows(r, batch, mm_ * nn);
    be.free(r);
    return s;
  };
  let dA: Storage | null = null;
  let dB: Storage | null = null;
  if (needA) {
    if (!tA && !tB)
      dA = mm(dC, true, B, bB, false, true, m, k, n, !aB); // dA = dC Bᵀ
    else if (!tA && tB)
      dA = mm(dC, true, B, bB, false, false, m, k, n, !aB); // dA = dC Bs
    else if (tA && !tB)
      dA = mm(B, bB, dC, true, false, true, k, m, n, !aB); // dAs = B dCᵀ
    else dA = mm(B, bB, dC, true, true, true, k, m, n, !aB); // dAs = Bsᵀ dCᵀ
  }
  if (needB) {
    if (!bB && aB && !tA && batch > 1) {
      // Shared weight, untransposed A: the batch sum is one contraction over batch*m rows.
      const flat = { batch: 1, aBatched: true, bBatched: true };
      dB = tB
        ? be.matmul(dC, A, { ...flat, m: n, n: k, k: batch * m, transA: true }) // dBs = dCᵀ A
        : be.matmul(A, dC, { ...flat, m: k, n, k: batch * m, transA: true }); // dB = Aᵀ dC
    } else if (!tA && !tB)
      dB = mm(A, aB, dC, true, true, false, k, n, m, !bB); // dB = Aᵀ dC
    else if (!tA && tB)
      dB = mm(dC, true, A, aB, true, false, n, k, m, !bB); // dBs = dCᵀ A
    else if (tA && !tB)
      dB = mm(A, aB, dC, true, false, false, k, n, m, !bB); // dB = As dC
    else dB = mm(dC, true, A, aB, true, true, n, k, m, !bB); // dBs = dCᵀ Asᵀ
  }
  return [dA, dB];
}

/** y = x Wᵀ (+ b) with W in Hugging Face's [out, in] layout; x is [..., in]. */
export function linear(x: Tensor, W: Tensor, b?: Tensor | null): Tensor {
  const op = 'linear';
  const be = sameBackend(op, x, W);
  if (W.ndim !== 2) fail(op, `weight must be 2-D [out, in], got ${shapeStr(W.shape)}`);
  const [outF, inF] = W.shape;
  if (lastDim(x) !== inF) fail(op, `input ${shapeStr(x.shape)} does not match weight ${shapeStr(W.shape)} (in=${inF})`);
  const rows = x.size / inF;
  const p: MatmulParams = { batch: 1, m: rows, n: outF!, k: inF, transB: true };
  const y = record(
    out(be, [...x.shape.slice(0, -1), outF!], be.matmul(x.storage, W.storage, p)),
    [x, W],
    (g) => matmulBackward(be, g, x.storage, W.storage, p, x.requiresGrad, W.requiresGrad),
    op,
  );
  return b ? addBias(y, b) : y;
}

/** y = x Bᵀ Aᵀ (+ b): a linear whose weight W = A·B ([out,r]·[r,in]) is never materialised. */
export function lowRankLinear(x: Tensor, A: Tensor, B: Tensor, b?: Tensor | null): Tensor {
  if (A.ndim !== 2 || B.ndim !== 2 || A.shape[1] !== B.shape[0]) {
    fail('lowRankLinear', `factors must be [out, r] and [r, in]: got ${shapeStr(A.shape)} and ${shapeStr(B.shape)}`);
  }
  return linear(linear(x, B), A, b);
}

// ---------------------------------------------------------------- embeddings

/** table [V, d] gathered at ids: result [...idsShape, d] (idsShape defaults to [ids.length]). */
export function embedding(table: Tensor, ids: Int32Array, idsShape?: readonly number[]): Tensor {
  const op = 'embedding';
  if (table.ndim !== 2) fail(op, `table must be 2-D [vocab, dim], got ${shapeStr(table.shape)}`);
  const [V, d] = table.shape;
  const sh = idsShape ?? [ids.length];
  if (numel(sh) !== ids.length) fail(op, `${ids.length} ids for shape ${shapeStr(sh)}`);
  assertLive(op, table);
  const be = table.backend;
  return record(out(be, [...sh, d!], be.gather(table.storage, ids, d!)), [table], (g) => [be.scatterAdd(g, ids, V!, d!)], op);
}

// ---------------------------------------------------------------- norms

export function layerNorm(x: Tensor, w: Tensor, b: Tensor | null, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  const be = sameBackend(op, ...(b ? [x, w, b] : [x, w]));
  const dim = lastDim(x);
  if (w.size !== dim) fail(op, `weight ${shapeStr(w.shape)} does not match the last dim of ${shapeStr(x.shape)}`);
  if (b && b.size !== dim) fail(op, `bias ${shapeStr(b.shape)} does not match the last dim of ${shapeStr(x.shape)}`);
  const rows = x.size / dim;
  const r = be.layerNorm(x.storage, w.storage, b ? b.storage : null, rows, dim, eps);
  const inputs = b ? [x, w, b] : [x, w];
  return record(
    out(be, x.shape, r.y),
    inputs,
    (g) => {
      const { dx, dw, db } = be.layerNormBackward(g, x.storage, w.storage, r.mean, r.rstd, rows, dim);
      if (b) return [dx, dw, db];
      be.free(db); // GPU buffers are not garbage collected
      return [dx, dw];
    },
    op,
    [r.mean, r.rstd],
  );
}

export function rmsNorm(x: Tensor, w: Tensor, eps = 1e-6): Tensor {
  const op = 'rmsNorm';
  const be = sameBackend(op, x, w);
  const dim = lastDim(x);
  if (w.size !== dim) fail(op, `weight ${shapeStr(w.shape)} does not match the last dim of ${shapeStr(x.shape)}`);
  const rows = x.size / dim;
  const r = be.rmsNorm(x.storage, w.storage, rows, dim, eps);
  return record(
    out(be, x.shape, r.y),
    [x, w],
    (g) => {
      const { dx, dw } = be.rmsNormBackward(g, x.storage, w.storage, r.rstd, rows, dim);
      return [dx, dw];
    },
    op,
    [r.rstd],
  );
}

// ---------------------------------------------------------------- attention, rope

export interface AttentionOptions {
  B: number;
  T: number;
  H: number;
  /** Key/value heads (defaults to H). */
  Hkv?: number;
  D: number;
  /** Defaults to 1/sqrt(D). */
  scale?: number;
  causal: boolean;
}

/** Softmax attention; the result has q's shape. */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  const op = 'attention';
  const be = sameBackend(op, q, k, v);
  const Hkv = o.Hkv ?? o.H;
  const p = { B: o.B, T: o.T, H: o.H, Hkv, D: o.D, scale: o.scale ?? 1 / Math.sqrt(o.D), causal: o.causal };
  if (Hkv <= 0 || o.H % Hkv !== 0) fail(op, `H=${o.H} is not a multiple of Hkv=${Hkv}`);
  const nq = o.B * o.T * o.H * o.D;
  const nkv = o.B * o.T * Hkv * o.D;
  if (q.size !== nq) fail(op, `q ${shapeStr(q.shape)} has ${q.size} elements, expected B*T*H*D = ${nq}`);
  if (k.size !== nkv) fail(op, `k ${shapeStr(k.shape)} has ${k.size} elements, expected B*T*Hkv*D = ${nkv}`);
  if (v.size !== nkv) fail(op, `v ${shapeStr(v.shape)} has ${v.size} elements, expected B*T*Hkv*D = ${nkv}`);
  const r = be.attention(q.storage, k.storage, v.storage, p);
  return record(
    out(be, q.shape, r.out),
    [q, k, v],
    (g) => {
      const { dq, dk, dv } = be.attentionBackward(g, q.storage, k.storage, v.storage, r.out, r.lse, p);
      return [dq, dk, dv];
    },
    op,
    [r.lse],
  );
}

export interface RopeOptions {
  B: number;
  T: number;
  H: number;
  D: number;
  theta: number;
  positionOffset?: number;
}

/** Rotary embedding (LLaMA rotate_half convention) on x [B,T,H,D]; `inverse` undoes it. */
export function rope(x: Tensor, o: RopeOptions, inverse = false): Tensor {
  const op = 'rope';
  assertLive(op, x);
  const be = x.backend;
  const n = o.B * o.T * o.H * o.D;
  if (x.size !== n) fail(op, `x ${shapeStr(x.shape)} has ${x.size} elements, expected B*T*H*D = ${n}`);
  if (o.D % 2 !== 0) fail(op, `head dim ${o.D} must be even`);
  return record(out(be, x.shape, be.rope(x.storage, o, inverse)), [x], (g) => [be.rope(g, o, !inverse)], op);
}

// ---------------------------------------------------------------- loss

function ceCheck(op: string, logits: Tensor, targets: Int32Array): { rows: number; vocab: number } {
  const vocab = lastDim(logits);
  const rows = logits.size / vocab;
  if (targets.length !== rows) fail(op, `${targets.length} targets for logits ${shapeStr(logits.shape)} (${rows} rows)`);
  return { rows, vocab };
}

/** Per-row cross-entropy, shape [rows]; ignored rows give 0 (log-likelihood scoring uses this). */
export function crossEntropyRows(logits: Tensor, targets: Int32Array, ignoreIndex = -100): Tensor {
  const op = 'crossEntropy';
  assertLive(op, logits);
  const { rows, vocab } = ceCheck(op, logits, targets);
  const be = logits.backend;
  return record(
    out(be, [rows], be.crossEntropy(logits.storage, targets, rows, vocab, ignoreIndex)),
    [logits],
    (g) => [be.crossEntropyBackward(logits.storage, targets, g, rows, vocab, ignoreIndex)],
    op,
  );
}

/** Sum of cross-entropy over non-ignored rows, shape [1]. */
export function crossEntropySum(logits: Tensor, targets: Int32Array, ignoreIndex = -100): Tensor {
  return sum(crossEntropyRows(logits, targets, ignoreIndex));
}

/** Number of rows that count towards the loss (targets are host data, so this needs no device sync). */
export function countTargets(targets: Int32Array, ignoreIndex = -100): number {
  let c = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] !== ignoreIndex) c++;
  return c;
}

/** Mean cross-entropy over non-ignored rows, shape [1] (like torch's reduction='mean'). With every row
 *  ignored it returns 0 with a zero gradient rather than torch's NaN, so an all-prompt batch is harmless. */
export function crossEntropy(logits: Tensor, targets: Int32Array, ignoreIndex = -100): Tensor {
  const c = countTargets(targets, ignoreIndex);
  return scale(crossEntropySum(logits, targets, ignoreIndex), c > 0 ? 1 / c : 0);
}
