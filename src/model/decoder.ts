/**
 * The decoder: one readable forward pass (nanoGPT style) that every Hugging Face family maps onto through
 * ModelSpec, built only from engine ops so it runs unchanged on any Backend and trains through autograd.
 *
 *   x = embed[ids] (+ pos[t + positionOffset])
 *   per block:  x += o(attn(rope?(q(n1(x))), rope?(k(n1(x))), v(n1(x))))
 *               x += down(act(gate(n2(x))) * up(n2(x)))      (gated; else down(act(up(n2(x)))))
 *   logits = norm(x) · (lm_head | embed)ᵀ
 *
 * Every activation is kept 2-D [B*T, features]: a linear projection of [B*T, d] already has the memory
 * layout attention wants ([B, T, H, D]), so no permutes are needed anywhere.
 *
 * Structural edits made by compression are read from the spec and the parameter shapes: a linear stored as
 * `weight_a`/`weight_b` runs as two thin matmuls (never materialised), and pruned MLP widths are just
 * smaller matrices. Blocks are named by their position in `spec.layers` (`layers.{i}`), whatever their
 * `source` index in the uncompressed model.
 *
 * Hooks (`LinearHooks`) expose, for each block linear, its input x during forward and the gradient of the
 * loss w.r.t. its output during backward: exactly what KFAC needs (A = E[x xᵀ], G = E[dy dyᵀ]).
 */

import type { Backend, FloatArray } from '../engine/backend';
import * as ops from '../engine/ops';
import { linearCrossEntropyRows } from '../engine/head-loss';
import type { NamedParam } from '../engine/optim';
import { isGradEnabled, Tensor, record, tidy } from '../engine/tensor';
import { canonicalShapes, projsOf } from './hf';
import { ModelFormatError, ShapeMismatchError } from './errors';
import type { AttnProj, MlpProj, ModelSpec } from './spec';
import type { HostTensor, WeightMap } from './weights';
import { sameShape } from './weights';

/** Canonical base name of a block linear, e.g. `layers.3.attn.q` or `layers.3.mlp.down`. */
export function linearName(layer: number, proj: AttnProj | MlpProj): string {
  return proj === 'q' || proj === 'k' || proj === 'v' || proj === 'o' ? `layers.${layer}.attn.${proj}` : `layers.${layer}.mlp.${proj}`;
}

/** Every block linear of a spec, in the order the forward pass calls them (and hooks fire). */
export function linearNames(spec: ModelSpec): string[] {
  const { attn, mlp } = projsOf(spec);
  const out: string[] = [];
  spec.layers.forEach((_, i) => {
    for (const a of attn) out.push(linearName(i, a));
    for (const m of mlp) out.push(linearName(i, m));
  });
  return out;
}

/**
 * Per-linear observation hooks (the compression step's support pass).
 *
 * The tensors handed to the callbacks are only valid during the call: read or accumulate from them there
 * (on any backend: e.g. `matmul(x, x, {transA: true})` into a running sum), do not keep or free them.
 * `onOutputGrad` fires during `backward` and only for linears whose output requires grad (some parameter
 * at or below it does), with dy of shape [B*T, out] — the gradient of the quantity backpropagated, so a mean
 * loss gives dy already divided by the number of counted tokens.
 */
export interface LinearHooks {
  /** Which linears to observe (canonical base names); default every block linear. */
  filter?: (name: string) => boolean;
  /** Input activations x [B*T, in] of the linear. */
  onInput?: (name: string, x: Tensor) => void;
  /** Gradient w.r.t. the linear's output (bias included) [B*T, out]. */
  onOutputGrad?: (name: string, dy: Tensor) => void;
}

export interface ForwardOptions {
  hooks?: LinearHooks;
}

/**
 * Identity whose backward reports the gradient flowing through it. Shares x's storage: the output is x
 * itself as far as the numbers go, so it costs nothing in the forward.
 */
export function gradTap(x: Tensor, onGrad: (dy: Tensor) => void): Tensor {
  const be = x.backend;
  const y = new Tensor(be, x.shape, x.storage, false);
  return record(
    y,
    [x],
    (g) => {
      onGrad(new Tensor(be, x.shape, g, false));
      return [g];
    },
    'gradTap',
  );
}

function isNormParam(name: string): boolean {
  return /(^|\.)(ln1|ln2|norm)\.(weight|bias)$/.test(name);
}

/**
 * HF-style causal LM labels (unshifted: labels[t] is the token at t, -100 to ignore) to the aligned targets
 * `Decoder.loss` takes (targets[t] = labels[t+1]; the last position of each sequence predicts nothing).
 */
export function shiftLabels(labels: Int32Array, B: number, T: number, ignoreIndex = -100): Int32Array {
  if (labels.length !== B * T) throw new RangeError(`shiftLabels: ${labels.length} labels for B=${B}, T=${T}`);
  const out = new Int32Array(B * T).fill(ignoreIndex);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = labels[b * T + t + 1]!;
  return out;
}

/** Whether AdamW's weight decay should apply. Hugging Face Trainer's rule (so our fine-tunes compare with
 *  HF ones): every parameter except biases and norm weights, embeddings included. */
export function decays(name: string): boolean {
  return !(isNormParam(name) || name.endsWith('.bias'));
}

export class Decoder {
  readonly spec: ModelSpec;
  readonly params: Map<string, Tensor>;
  readonly backend: Backend;

  constructor(spec: ModelSpec, params: Map<string, Tensor>) {
    const expected = canonicalShapes(spec);
    for (const [name, shape] of expected) {
      const t = params.get(name);
      if (!t) throw new ModelFormatError('missing parameter', 'decoder', name);
      if (!sameShape(shape, t.shape)) throw new ShapeMismatchError('decoder', name, shape, t.shape);
    }
    for (const name of params.keys()) {
      if (!expected.has(name)) throw new ModelFormatError('parameter not part of this spec', 'decoder', name);
    }
    const first = params.values().next().value as Tensor | undefined;
    if (!first) throw new ModelFormatError('no parameters', 'decoder');
    for (const [name, t] of params) {
      if (t.backend !== first.backend) throw new ModelFormatError('parameters live on different backends', 'decoder', name);
    }
    if (spec.numHeads % spec.numKvHeads !== 0) {
      throw new ModelFormatError(`numHeads ${spec.numHeads} is not a multiple of numKvHeads ${spec.numKvHeads}`, 'decoder');
    }
    this.spec = spec;
    this.params = params;
    this.backend = first.backend;
  }

  private p(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new ModelFormatError('missing parameter', 'decoder', name);
    return t;
  }

  private opt(name: string): Tensor | null {
    return this.params.get(name) ?? null;
  }

  private norm(x: Tensor, prefix: string): Tensor {
    const { spec } = this;
    const w = this.p(`${prefix}.weight`);
    return spec.norm === 'layernorm' ? ops.layerNorm(x, w, this.opt(`${prefix}.bias`), spec.normEps) : ops.rmsNorm(x, w, spec.normEps);
  }

  /** A block linear, dense or two-factor, with the hooks applied. */
  private linear(name: string, x: Tensor, hooks: LinearHooks | undefined): Tensor {
    const observe = hooks !== undefined && (hooks.filter === undefined || hooks.filter(name));
    if (observe) hooks.onInput?.(name, x);
    const b = this.opt(`${name}.bias`);
    const W = this.opt(`${name}.weight`);
    let y = W ? ops.linear(x, W, b) : ops.lowRankLinear(x, this.p(`${name}.weight_a`), this.p(`${name}.weight_b`), b);
    if (observe && hooks.onOutputGrad) {
      const cb = hooks.onOutputGrad;
      y = gradTap(y, (dy) => cb(name, dy));
    }
    return y;
  }

  /** Token (+ learned position) embeddings, [B*T, hidden]: the residual stream entering block 0. */
  embed(ids: Int32Array, B: number, T: number): Tensor {
    const { spec } = this;
    if (ids.length !== B * T) throw new RangeError(`Decoder: ${ids.length} ids for B=${B}, T=${T}`);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < spec.vocabSize))
        throw new RangeError(`Decoder: token id ${id} at ${i} is outside the vocabulary (${spec.vocabSize})`);
    }
    if (spec.positions === 'learned' && T > spec.maxPositions) {
      throw new RangeError(`Decoder: sequence length ${T} exceeds the model's ${spec.maxPositions} learned positions`);
    }
    let x = ops.embedding(this.p('embed.weight'), ids);
    if (spec.positions === 'learned') {
      const pos = new Int32Array(B * T);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) pos[b * T + t] = t + spec.positionOffset;
      x = ops.add(x, ops.embedding(this.p('pos.weight'), pos));
    }
    return x;
  }

  /**
   * Block i on the residual stream x [B*T, hidden] -> the stream after it. Public so a pass can run a few
   * blocks at a time from a saved stream (the support pass's block groups).
   */
  block(i: number, x: Tensor, B: number, T: number, hooks?: LinearHooks): Tensor {
    const { spec } = this;
    const H = spec.numHeads;
    const Hkv = spec.numKvHeads;
    const D = spec.headDim;
    const L = `layers.${i}`;
    // attention
    const h = this.norm(x, `${L}.ln1`);
    let q = this.linear(`${L}.attn.q`, h, hooks);
    let k = this.linear(`${L}.attn.k`, h, hooks);
    const v = this.linear(`${L}.attn.v`, h, hooks);
    if (spec.positions === 'rope') {
      q = ops.rope(q, { B, T, H, D, theta: spec.ropeTheta });
      k = ops.rope(k, { B, T, H: Hkv, D, theta: spec.ropeTheta });
    }
    const a = ops.attention(q, k, v, { B, T, H, Hkv, D, scale: 1 / Math.sqrt(D), causal: true });
    x = ops.add(x, this.linear(`${L}.attn.o`, a, hooks));
    // MLP
    const h2 = this.norm(x, `${L}.ln2`);
    let m: Tensor;
    if (spec.gatedMlp) {
      // up before gate so hooks fire in linearNames order
      const u = this.linear(`${L}.mlp.up`, h2, hooks);
      m = ops.gatedActivation(this.linear(`${L}.mlp.gate`, h2, hooks), u, spec.activation);
    } else {
      m = ops.activation(this.linear(`${L}.mlp.up`, h2, hooks), spec.activation);
    }
    return ops.add(x, this.linear(`${L}.mlp.down`, m, hooks));
  }

  /** Logits [B*T, vocab] from the residual stream after the last block (final norm + LM head). */
  head(x: Tensor): Tensor {
    const w = this.spec.tieWordEmbeddings ? this.p('embed.weight') : this.p('lm_head.weight');
    return ops.linear(this.norm(x, 'norm'), w);
  }

  /** Final hidden states after the last norm, [B*T, hidden]. */
  hidden(ids: Int32Array, B: number, T: number, opts: ForwardOptions = {}): Tensor {
    const { spec } = this;
    let x = this.embed(ids, B, T);
    if (isGradEnabled()) {
      for (let i = 0; i < spec.layers.length; i++) x = this.block(i, x, B, T, opts.hooks);
      return this.norm(x, 'norm');
    }
    // Without a graph nothing reads a block's activations once its output exists: each block runs in its own
    // scope and the stream it consumed is freed, so an evaluation holds one block's activations instead of
    // the whole depth's (on the CPU their arrays go straight to the next block through the storage pool).
    for (let i = 0; i < spec.layers.length; i++) {
      const prev = x;
      x = tidy(() => this.block(i, prev, B, T, opts.hooks));
      prev.free();
    }
    return this.norm(x, 'norm');
  }

  /** Logits [B*T, vocab] for ids [B*T] (row-major [B, T]). */
  forward(ids: Int32Array, B: number, T: number, opts: ForwardOptions = {}): Tensor {
    const x = this.hidden(ids, B, T, opts);
    const head = this.spec.tieWordEmbeddings ? this.p('embed.weight') : this.p('lm_head.weight');
    return ops.linear(x, head);
  }

  /**
   * Logits of the last position of each sequence, [B, vocab]: what generation and next-token scoring need,
   * without paying for the LM head on every position. Differentiable (rows are gathered with an embedding
   * lookup into the hidden states).
   */
  lastLogits(ids: Int32Array, B: number, T: number, opts: ForwardOptions = {}): Tensor {
    const x = this.hidden(ids, B, T, opts);
    const last = Int32Array.from({ length: B }, (_, b) => b * T + T - 1);
    const head = this.spec.tieWordEmbeddings ? this.p('embed.weight') : this.p('lm_head.weight');
    return ops.linear(ops.embedding(x, last), head);
  }

  /**
   * Mean cross-entropy over targets != ignoreIndex (default -100), shape [1]. targets are aligned with ids:
   * position t predicts targets[t] (shift HF-style labels left before calling).
   */
  loss(ids: Int32Array, targets: Int32Array, B: number, T: number, opts: ForwardOptions & { ignoreIndex?: number } = {}): Tensor {
    if (targets.length !== B * T) throw new RangeError(`Decoder.loss: ${targets.length} targets for B=${B}, T=${T}`);
    return this.meanHeadLoss(this.hidden(ids, B, T, opts), targets, opts.ignoreIndex ?? -100);
  }

  /**
   * Mean cross-entropy of the head on the residual stream after the last block (final norm included), as
   * ops.crossEntropy(head(x)) computes it, but with the logits made and freed in row blocks when a batch's
   * logits would be large (head-loss.ts: the same numbers for the loss and x's gradient).
   */
  headLoss(x: Tensor, targets: Int32Array, ignoreIndex = -100): Tensor {
    return this.meanHeadLoss(this.norm(x, 'norm'), targets, ignoreIndex);
  }

  private meanHeadLoss(normed: Tensor, targets: Int32Array, ignoreIndex: number): Tensor {
    const w = this.spec.tieWordEmbeddings ? this.p('embed.weight') : this.p('lm_head.weight');
    const c = ops.countTargets(targets, ignoreIndex);
    const inv = c > 0 ? 1 / c : 0;
    // The gradient each row will get back from a backward of this mean (scale's 1·inv, as the backend
    // stores it; sum's backward hands it to every row unchanged): lets the head compute x's gradient in
    // the forward when it works in row blocks (head-loss.ts checks it before using it).
    const rowGrad = this.backend.dtype === 'f64' ? inv : Math.fround(inv);
    return ops.scale(ops.sum(linearCrossEntropyRows(normed, w, targets, ignoreIndex, undefined, undefined, rowGrad)), inv);
  }

  /** Parameters in canonical order with AdamW decay flags; `onlyTrainable` keeps those that require grad. */
  namedParams(onlyTrainable = true): NamedParam[] {
    const out: NamedParam[] = [];
    for (const [name, tensor] of this.params) {
      if (onlyTrainable && !tensor.requiresGrad) continue;
      out.push({ name, tensor, decay: decays(name) });
    }
    return out;
  }

  /** Sets requiresGrad per parameter (e.g. train only the adapter blocks). */
  setTrainable(pred: (name: string) => boolean): void {
    for (const [name, t] of this.params) t.requiresGrad = pred(name);
  }

  zeroGrad(): void {
    for (const t of this.params.values()) t.zeroGrad();
  }

  /** Number of scalar parameters (all, or only trainable ones). */
  numParams(onlyTrainable = false): number {
    let n = 0;
    for (const t of this.params.values()) if (!onlyTrainable || t.requiresGrad) n += t.size;
    return n;
  }

  /** Releases every parameter's storage. */
  free(): void {
    for (const t of this.params.values()) t.free();
  }
}

export interface ParamOptions {
  /** Which parameters require grad: a boolean for all, or a predicate on the canonical name. Default false. */
  requiresGrad?: boolean | ((name: string) => boolean);
}

/** Uploads a canonical WeightMap to `backend` as parameter tensors (validated against the spec). */
export function paramsFromWeights(backend: Backend, spec: ModelSpec, weights: WeightMap, opts: ParamOptions = {}): Map<string, Tensor> {
  const rg = opts.requiresGrad ?? false;
  const expected = canonicalShapes(spec);
  const params = new Map<string, Tensor>();
  for (const [name, shape] of expected) {
    const w = weights.get(name);
    if (!w) throw new ModelFormatError('missing tensor', 'weights', name);
    if (!sameShape(shape, w.shape)) throw new ShapeMismatchError('weights', name, shape, w.shape);
    const t = new Tensor(backend, shape, backend.fromArray(w.data), typeof rg === 'function' ? rg(name) : rg);
    t.name = name;
    params.set(name, t);
  }
  for (const name of weights.keys()) {
    if (!expected.has(name)) throw new ModelFormatError('tensor not part of this spec', 'weights', name);
  }
  return params;
}

export function decoderFromWeights(backend: Backend, spec: ModelSpec, weights: WeightMap, opts: ParamOptions = {}): Decoder {
  return new Decoder(spec, paramsFromWeights(backend, spec, weights, opts));
}

function toF32(a: FloatArray): Float32Array {
  return a instanceof Float32Array ? a.slice() : Float32Array.from(a);
}

/** Reads parameters back to a host WeightMap (F32 copies, canonical names, same order). */
export async function weightsFromParams(params: Map<string, Tensor>): Promise<WeightMap> {
  const out: WeightMap = new Map();
  for (const [name, t] of params) {
    out.set(name, { dtype: 'F32', shape: [...t.shape], data: toF32(await t.read()) } satisfies HostTensor);
  }
  return out;
}
