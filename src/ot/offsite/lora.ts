/**
 * LoRA on the adapter blocks' linears (PEFT's semantics): W' = W + (alpha / r) · B·A with A [r, in]
 * initialised Kaiming-uniform (a = √5, i.e. U(±1/√in), as PEFT's `init_lora_weights=True`) and B [out, r]
 * zero, so a fresh adapter computes exactly the base model. Dropout is 0 (the only value we support: it
 * keeps training deterministic and resumable without a mask stream).
 *
 * How it runs: the decoder has no LoRA path, so for each forward we put the effective weight
 * W' = W + s·B·A (built with engine ops, differentiable in A and B, W frozen) in place of W in the
 * decoder's parameter map and restore W afterwards. Numerically this is the merged form; merging for the
 * plug-in uses the very same ops, so a merged model reproduces the tuned forward bit for bit. The cost is
 * one [out, r]·[r, in] product per adapted linear per forward, and the weight gradient of those linears
 * (as in full adapter tuning); the gain is a small trainable set and a small export.
 *
 * GPT-2 stores q, k and v fused in one Conv1D (`c_attn`); PEFT puts one LoRA pair on that module, so for
 * GPT-2 q, k and v are targeted together, sharing A, with B split by rows (B_q; B_k; B_v) — exactly PEFT's
 * c_attn LoRA.
 */
import type { Backend } from '../../engine/backend';
import * as ops from '../../engine/ops';
import type { NamedParam } from '../../engine/optim';
import { Rng } from '../../engine/random';
import { Tensor, noGrad, tidy } from '../../engine/tensor';
import { linearName, type Decoder } from '../../model/decoder';
import { linearDims, projsOf } from '../../model/hf';
import type { AttnProj, MlpProj, ModelSpec } from '../../model/spec';
import type { HostTensor, WeightMap } from '../../model/weights';

export type LoraTarget = AttnProj | MlpProj;
export const LORA_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'up', 'gate', 'down'];

export interface LoraConfig {
  r: number;
  alpha: number;
  /** Only 0 is supported (see module comment). */
  dropout?: number;
  /** Canonical short names of the linears to adapt. */
  targets: LoraTarget[];
}

export const DEFAULT_LORA: LoraConfig = { r: 8, alpha: 16, dropout: 0, targets: ['q', 'v'] };

/**
 * Default LoRA targets of a family: q and v, as PEFT's defaults for LLaMA/Qwen2/OPT (q_proj, v_proj); for
 * GPT-2 the fused c_attn (q, k and v together), PEFT's default target for GPT-2.
 */
export function defaultLoraTargets(family: ModelSpec['family']): LoraTarget[] {
  return family === 'gpt2' ? ['q', 'k', 'v'] : ['q', 'v'];
}

/** One LoRA pair: a shared A and one B per canonical linear (several only for GPT-2's fused q|k|v). */
export interface LoraModule {
  /** Block index in the tuned model. */
  layer: number;
  /** Module key: the canonical linear (`layers.0.attn.q`) or `layers.0.attn.qkv` for GPT-2's c_attn. */
  key: string;
  /** Canonical linear base names, in B row order. */
  linears: string[];
  inFeatures: number;
  /** Rows of each B. */
  outFeatures: number[];
}

export function parseLoraTargets(s: string | readonly string[]): LoraTarget[] {
  const list = (typeof s === 'string' ? s.split(',') : [...s]).map((x) => x.trim()).filter((x) => x !== '');
  const out: LoraTarget[] = [];
  for (const t of list) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new Error(`unknown LoRA target '${t}' (use ${LORA_TARGETS.join(', ')})`);
    }
    if (!out.includes(t as LoraTarget)) out.push(t as LoraTarget);
  }
  if (out.length === 0) throw new Error('LoRA needs at least one target module');
  return out;
}

export function checkLoraConfig(c: LoraConfig): void {
  if (!(Number.isInteger(c.r) && c.r >= 1)) throw new RangeError(`LoRA rank must be a positive integer, got ${c.r}`);
  if (!(Number.isFinite(c.alpha) && c.alpha > 0)) throw new RangeError(`LoRA alpha must be positive, got ${c.alpha}`);
  if ((c.dropout ?? 0) !== 0) throw new RangeError(`LoRA dropout ${c.dropout} is not supported (only 0)`);
  parseLoraTargets(c.targets);
}

/** The LoRA modules for `blocks` of `spec` (validates targets against the architecture). */
export function loraModules(spec: ModelSpec, blocks: readonly number[], c: LoraConfig): LoraModule[] {
  checkLoraConfig(c);
  const { attn, mlp } = projsOf(spec);
  const have = new Set<string>([...attn, ...mlp]);
  for (const t of c.targets) {
    if (!have.has(t)) throw new Error(`LoRA target '${t}' does not exist in a ${spec.modelType} block (it has ${[...have].join(', ')})`);
  }
  const targets = [...c.targets].sort((a, b) => LORA_TARGETS.indexOf(a) - LORA_TARGETS.indexOf(b));
  const fuseQKV = spec.family === 'gpt2';
  if (fuseQKV) {
    const n = targets.filter((t) => t === 'q' || t === 'k' || t === 'v').length;
    if (n !== 0 && n !== 3) {
      throw new Error("GPT-2 fuses q, k and v in one module (c_attn): target 'q', 'k' and 'v' together, or none of them");
    }
  }
  const out: LoraModule[] = [];
  for (const layer of blocks) {
    const L = spec.layers[layer];
    if (!L) throw new RangeError(`LoRA: block ${layer} out of range`);
    let fusedDone = false;
    for (const t of targets) {
      const dims = linearDims(spec, layer, t);
      if (dims.rank !== undefined) throw new Error(`LoRA: ${linearName(layer, t)} is stored low-rank; LoRA needs a dense linear`);
      if (fuseQKV && (t === 'q' || t === 'k' || t === 'v')) {
        if (fusedDone) continue;
        fusedDone = true;
        const ls = (['q', 'k', 'v'] as const).map((p) => linearName(layer, p));
        out.push({
          layer,
          key: `layers.${layer}.attn.qkv`,
          linears: ls,
          inFeatures: dims.in,
          outFeatures: (['q', 'k', 'v'] as const).map((p) => linearDims(spec, layer, p).out),
        });
        continue;
      }
      out.push({ layer, key: linearName(layer, t), linears: [linearName(layer, t)], inFeatures: dims.in, outFeatures: [dims.out] });
    }
  }
  // A rank above a module's smaller side adds parameters (and memory: `--lora 100000` asked for gigabytes)
  // without adding expressiveness; refuse it before anything is allocated.
  for (const m of out) {
    const width = Math.min(
      m.inFeatures,
      m.outFeatures.reduce((a, b) => a + b, 0),
    );
    if (c.r > width) {
      throw new RangeError(
        `LoRA rank ${c.r} exceeds the width of ${m.key} (min(in ${m.inFeatures}, out ${m.outFeatures.reduce((a, b) => a + b, 0)}) = ${width}); use a rank of at most ${width}`,
      );
    }
  }
  return out;
}

/** Tensor names of a module's A and its B for linear i. */
export function loraAName(m: LoraModule): string {
  return `${m.key}.lora_A`;
}
export function loraBName(m: LoraModule, i: number): string {
  return `${m.linears[i]}.lora_B`;
}

/** LoRA parameters living on a backend, attachable to a decoder of the same spec. */
export class LoraAdapter {
  readonly scaling: number;
  readonly tensors = new Map<string, Tensor>();

  constructor(
    readonly config: LoraConfig,
    readonly modules: LoraModule[],
    readonly backend: Backend,
  ) {
    checkLoraConfig(config);
    this.scaling = config.alpha / config.r;
  }

  /** Fresh adapter: A Kaiming-uniform (PEFT), B zero. Deterministic in `seed`. */
  static create(backend: Backend, spec: ModelSpec, blocks: readonly number[], config: LoraConfig, seed: number): LoraAdapter {
    const mods = loraModules(spec, blocks, config);
    const a = new LoraAdapter(config, mods, backend);
    const rng = new Rng(seed);
    for (const m of mods) {
      const bound = 1 / Math.sqrt(m.inFeatures);
      const A = new Float64Array(config.r * m.inFeatures);
      for (let i = 0; i < A.length; i++) A[i] = rng.uniform(-bound, bound);
      a.set(loraAName(m), [config.r, m.inFeatures], A);
      m.outFeatures.forEach((o, i) => a.set(loraBName(m, i), [o, config.r], new Float64Array(o * config.r)));
    }
    return a;
  }

  /** Adapter from host tensors (a checkpoint), shapes checked. */
  static fromWeights(backend: Backend, spec: ModelSpec, blocks: readonly number[], config: LoraConfig, w: WeightMap): LoraAdapter {
    const mods = loraModules(spec, blocks, config);
    const a = new LoraAdapter(config, mods, backend);
    for (const [name, shape] of a.expectedShapes()) {
      const t = w.get(name);
      if (!t) throw new Error(`LoRA weights: missing ${name}`);
      if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
        throw new Error(`LoRA weights: ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
      a.set(name, shape, t.data);
    }
    for (const name of w.keys()) if (!a.tensors.has(name)) throw new Error(`LoRA weights: unexpected tensor ${name}`);
    return a;
  }

  expectedShapes(): Map<string, [number, number]> {
    const m = new Map<string, [number, number]>();
    for (const mod of this.modules) {
      m.set(loraAName(mod), [this.config.r, mod.inFeatures]);
      mod.outFeatures.forEach((o, i) => m.set(loraBName(mod, i), [o, this.config.r]));
    }
    return m;
  }

  private set(name: string, shape: number[], data: ArrayLike<number>): void {
    const t = new Tensor(this.backend, shape, this.backend.fromArray(data), true);
    t.name = name;
    this.tensors.set(name, t);
  }

  /** Trainable parameters in a stable order; LoRA matrices are `.weight`s in PEFT, so HF's decay rule decays them. */
  namedParams(): NamedParam[] {
    return [...this.tensors].map(([name, tensor]) => ({ name, tensor, decay: true }));
  }

  numParams(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.size;
    return n;
  }

  /** W + s·B_i·A for linear i of module m (graph recorded when grad mode is on). */
  effectiveWeight(W: Tensor, m: LoraModule, i: number): Tensor {
    const A = this.tensors.get(loraAName(m))!;
    const B = this.tensors.get(loraBName(m, i))!;
    return ops.add(W, ops.scale(ops.matmul(B, A), this.scaling));
  }

  /**
   * Puts effective weights into `dec` and returns a function restoring the originals. Call per forward
   * (the weights carry this forward's graph); the restore frees the effective weights' storage. The
   * B·A products behind them are left to the caller's tidy scope (or to backward's release).
   */
  attach(dec: Decoder): () => void {
    const saved: [string, Tensor][] = [];
    const made: Tensor[] = [];
    for (const m of this.modules) {
      m.linears.forEach((lin, i) => {
        const key = `${lin}.weight`;
        const W = dec.params.get(key);
        if (!W) throw new Error(`LoRA: the model has no dense ${key}`);
        const Weff = this.effectiveWeight(W, m, i);
        saved.push([key, W]);
        made.push(Weff);
        dec.params.set(key, Weff);
      });
    }
    return () => {
      for (const [k, W] of saved) dec.params.set(k, W);
      // Free the effective weights only (the graph closures reference A, B and W, which stay alive), through
      // the engine: backward's release or a scope may have freed them already, and a second backend free
      // would corrupt a GPU pool.
      for (const t of made) t.free();
    };
  }

  /** Runs `fn` with LoRA attached (synchronous `fn`; the forward must finish before restore). */
  with<T>(dec: Decoder, fn: () => T): T {
    const restore = this.attach(dec);
    try {
      return fn();
    } finally {
      restore();
    }
  }

  /** Merged dense weights W + s·B·A (host F32) for each adapted linear of `base` (canonical `X.weight`). */
  async mergedWeights(base: Map<string, Tensor>): Promise<WeightMap> {
    const out: WeightMap = new Map();
    for (const m of this.modules) {
      for (let i = 0; i < m.linears.length; i++) {
        const key = `${m.linears[i]}.weight`;
        const W = base.get(key);
        if (!W) throw new Error(`LoRA merge: no dense ${key}`);
        const Weff = tidy(() => noGrad(() => this.effectiveWeight(W, m, i)));
        const data = await Weff.read();
        Weff.free();
        out.set(key, { dtype: 'F32', shape: [...W.shape], data: data instanceof Float32Array ? data.slice() : Float32Array.from(data) });
      }
    }
    return out;
  }

  async toHost(): Promise<WeightMap> {
    const out: WeightMap = new Map();
    for (const [name, t] of this.tensors) {
      const d = await t.read();
      out.set(name, {
        dtype: 'F32',
        shape: [...t.shape],
        data: d instanceof Float32Array ? d.slice() : Float32Array.from(d),
      } satisfies HostTensor);
    }
    return out;
  }

  free(): void {
    for (const t of this.tensors.values()) t.free();
  }
}
