/**
 * Hugging Face <-> ModelSpec: config.json parsing/writing, tensor-name mapping between HF names and the
 * canonical names documented in spec.ts, and loading/saving whole HF folders (single or sharded
 * safetensors).
 *
 * Conventions decided here (see also spec.ts):
 * - Canonical `pos.weight` keeps OPT's two extra leading rows: it is [maxPositions + positionOffset, d], exactly
 *   HF's `embed_positions.weight`, and position t reads row t + positionOffset.
 * - Low-rank factors are always stored as `<linear>.weight_a` [out, rank] and `<linear>.weight_b` [rank, in]
 *   (nn.Linear orientation) in every family, never transposed, including GPT-2 (there is no HF convention
 *   for factored Conv1D, so we pick the one that is the same everywhere).
 * - GPT-2's fused `c_attn` ([in, 3d] Conv1D) is written fused only when q, k and v of that block are all dense.
 *   When any of them is factored, the block's q/k/v are written split as
 *   `h.{i}.attn.c_attn.{q|k|v}.{weight|weight_a|weight_b|bias}`; a dense split `.weight` keeps Conv1D
 *   orientation [in, out] like the rest of GPT-2. Both forms are accepted on load.
 * - Written names use the prefixes current `save_pretrained` uses (`transformer.`, `model.decoder.`,
 *   `model.`); on load the prefix is optional (legacy hub checkpoints omit it).
 * - Compressed models (ranks, pruned widths, dropped blocks) record per-layer `source`, `ranks` and
 *   `mlpWidth` under a `gradot` key of config.json; the HF keys describe the uncompressed widths with the
 *   kept number of layers.
 */
import { checkConfigBounds, checkSpecBounds, summarizeUnexpected } from '../faults/bounds';
import { ModelFormatError, ShapeMismatchError } from './errors';
import { SafetensorsReader, serializeSafetensors, type SafetensorsEntry, type WriteDType } from './safetensors';
import type { ModelSource } from './source';
import { denseLayers, type ActivationKind, type AttnProj, type Family, type LayerSpec, type MlpProj, type ModelSpec } from './spec';
import type { HostTensor, WeightMap } from './weights';
import { sameShape, transpose2d } from './weights';

export type HFConfig = Record<string, unknown>;

const ATTN: AttnProj[] = ['q', 'k', 'v', 'o'];
const MLP: MlpProj[] = ['up', 'gate', 'down'];

// ---------------------------------------------------------------------------------------------------------
// config.json -> ModelSpec

function cfgErr(msg: string): ModelFormatError {
  return new ModelFormatError(msg, 'config.json');
}

function getInt(c: HFConfig, key: string, dflt?: number): number {
  const v = c[key];
  if (v === undefined || v === null) {
    if (dflt !== undefined) return dflt;
    throw cfgErr(`missing required key '${key}'`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw cfgErr(`'${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function getNum(c: HFConfig, key: string, dflt?: number): number {
  const v = c[key];
  if (v === undefined || v === null) {
    if (dflt !== undefined) return dflt;
    throw cfgErr(`missing required key '${key}'`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw cfgErr(`'${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function getBool(c: HFConfig, key: string, dflt: boolean): boolean {
  const v = c[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw cfgErr(`'${key}' must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

function activationFromHF(name: unknown, key: string): ActivationKind {
  switch (name) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return 'gelu_tanh';
    case 'gelu':
      return 'gelu_erf';
    case 'relu':
      return 'relu';
    case 'silu':
    case 'swish':
      return 'silu';
    default:
      throw cfgErr(`unsupported ${key} ${JSON.stringify(name)} (supported: gelu_new, gelu_pytorch_tanh, gelu, relu, silu)`);
  }
}

function activationToHF(a: ActivationKind): string {
  return { gelu_tanh: 'gelu_new', gelu_erf: 'gelu', relu: 'relu', silu: 'silu' }[a];
}

export const SUPPORTED_MODEL_TYPES = ['gpt2', 'opt', 'llama', 'qwen2', 'mistral'] as const;

/** Per-layer structure recorded under config.json's `gradot` key for compressed models. */
export interface GradotConfigBlock {
  version: 1;
  /** Number of blocks in the model this one was compressed from. */
  sourceNumLayers?: number;
  layers: LayerSpec[];
}

function layersFromGradot(c: HFConfig, n: number, intermediate: number): LayerSpec[] {
  const g = c.gradot;
  if (g === undefined || g === null) return denseLayers(n, intermediate);
  const layers = (g as { layers?: unknown }).layers;
  if (!Array.isArray(layers) || layers.length !== n) {
    throw cfgErr(`gradot.layers must list ${n} layers (one per block)`);
  }
  return layers.map((l: unknown, i) => {
    const o = l as { source?: unknown; ranks?: unknown; mlpWidth?: unknown };
    const source = typeof o.source === 'number' && Number.isInteger(o.source) && o.source >= 0 ? o.source : i;
    const mlpWidth = o.mlpWidth === undefined ? intermediate : o.mlpWidth;
    if (typeof mlpWidth !== 'number' || !Number.isInteger(mlpWidth) || mlpWidth <= 0 || mlpWidth > intermediate) {
      throw cfgErr(`gradot.layers[${i}].mlpWidth must be an integer in [1, ${intermediate}]`);
    }
    const ranks: LayerSpec['ranks'] = {};
    if (o.ranks !== undefined) {
      if (o.ranks === null || typeof o.ranks !== 'object') throw cfgErr(`gradot.layers[${i}].ranks must be an object`);
      for (const [k, v] of Object.entries(o.ranks as Record<string, unknown>)) {
        if (!(ATTN as string[]).includes(k) && !(MLP as string[]).includes(k))
          throw cfgErr(`gradot.layers[${i}].ranks has unknown projection '${k}'`);
        if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
          throw cfgErr(`gradot.layers[${i}].ranks.${k} must be a positive integer`);
        ranks[k as AttnProj | MlpProj] = v;
      }
    }
    return { source, ranks, mlpWidth };
  });
}

/**
 * Maps a Hugging Face config.json onto a ModelSpec. Throws ModelFormatError for unknown model types and for
 * options our decoder does not implement (rather than loading a model that silently computes something
 * else). Non-fatal notes go to `warnings`.
 */
export function specFromHFConfig(config: HFConfig, warnings: string[] = []): ModelSpec {
  // Before any value sizes anything (layer lists, shapes): `num_hidden_layers: 1e9` is a named error.
  checkConfigBounds(config);
  const mt = config.model_type;
  if (typeof mt !== 'string') throw cfgErr(`missing 'model_type' (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  if (mt === 'gpt2') {
    const d = getInt(config, 'n_embd');
    const nl = getInt(config, 'n_layer');
    const h = getInt(config, 'n_head');
    if (d % h !== 0) throw cfgErr(`n_embd ${d} is not divisible by n_head ${h}`);
    const inter = getInt(config, 'n_inner', 4 * d);
    if (getBool(config, 'scale_attn_by_inverse_layer_idx', false)) throw cfgErr('unsupported: scale_attn_by_inverse_layer_idx = true');
    if (!getBool(config, 'scale_attn_weights', true)) throw cfgErr('unsupported: scale_attn_weights = false');
    return {
      family: 'gpt2',
      modelType: 'gpt2',
      vocabSize: getInt(config, 'vocab_size'),
      hiddenSize: d,
      numHeads: h,
      numKvHeads: h,
      headDim: d / h,
      intermediateSize: inter,
      maxPositions: config.n_positions != null ? getInt(config, 'n_positions') : getInt(config, 'n_ctx', 1024),
      norm: 'layernorm',
      normEps: getNum(config, 'layer_norm_epsilon', 1e-5),
      activation: activationFromHF(config.activation_function ?? 'gelu_new', 'activation_function'),
      gatedMlp: false,
      positions: 'learned',
      positionOffset: 0,
      ropeTheta: 0,
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      tieWordEmbeddings: getBool(config, 'tie_word_embeddings', true),
      layers: layersFromGradot(config, nl, inter),
    };
  }
  if (mt === 'opt') {
    const d = getInt(config, 'hidden_size');
    const nl = getInt(config, 'num_hidden_layers');
    const h = getInt(config, 'num_attention_heads');
    if (d % h !== 0) throw cfgErr(`hidden_size ${d} is not divisible by num_attention_heads ${h}`);
    if (!getBool(config, 'do_layer_norm_before', true)) {
      throw cfgErr('unsupported OPT variant: do_layer_norm_before = false (post-norm, e.g. opt-350m)');
    }
    const proj = getInt(config, 'word_embed_proj_dim', d);
    if (proj !== d) throw cfgErr(`unsupported OPT variant: word_embed_proj_dim ${proj} != hidden_size ${d} (project_in/out)`);
    if (!getBool(config, 'layer_norm_elementwise_affine', true))
      throw cfgErr('unsupported OPT variant: layer_norm_elementwise_affine = false');
    const inter = getInt(config, 'ffn_dim');
    const bias = getBool(config, 'enable_bias', true);
    return {
      family: 'opt',
      modelType: 'opt',
      vocabSize: getInt(config, 'vocab_size'),
      hiddenSize: d,
      numHeads: h,
      numKvHeads: h,
      headDim: d / h,
      intermediateSize: inter,
      maxPositions: getInt(config, 'max_position_embeddings'),
      // HF's OPT hard-codes nn.LayerNorm's default eps.
      norm: 'layernorm',
      normEps: 1e-5,
      activation: activationFromHF(config.activation_function ?? 'relu', 'activation_function'),
      gatedMlp: false,
      positions: 'learned',
      positionOffset: 2,
      ropeTheta: 0,
      qkvBias: bias,
      oBias: bias,
      mlpBias: bias,
      tieWordEmbeddings: getBool(config, 'tie_word_embeddings', true),
      layers: layersFromGradot(config, nl, inter),
    };
  }
  if (mt === 'llama' || mt === 'qwen2' || mt === 'mistral') {
    const d = getInt(config, 'hidden_size');
    const nl = getInt(config, 'num_hidden_layers');
    const h = getInt(config, 'num_attention_heads');
    const kv = getInt(config, 'num_key_value_heads', h);
    if (h % kv !== 0) throw cfgErr(`num_attention_heads ${h} is not a multiple of num_key_value_heads ${kv}`);
    const headDim = getInt(config, 'head_dim', Math.floor(d / h));
    if (config.head_dim == null && d % h !== 0) throw cfgErr(`hidden_size ${d} is not divisible by num_attention_heads ${h}`);
    const inter = getInt(config, 'intermediate_size');
    const rs = config.rope_scaling as { type?: string; rope_type?: string } | null | undefined;
    const rsType = rs ? (rs.rope_type ?? rs.type) : undefined;
    if (rs && rsType !== 'default') throw cfgErr(`unsupported rope_scaling ${JSON.stringify(rs)} (only plain RoPE is implemented)`);
    if (mt === 'qwen2' && getBool(config, 'use_sliding_window', false)) throw cfgErr('unsupported: use_sliding_window = true');
    if (mt === 'mistral' && typeof config.sliding_window === 'number') {
      warnings.push(
        `config.json: sliding_window ${config.sliding_window} is ignored (full causal attention is used; identical for sequences up to that length)`,
      );
    }
    let qkvBias: boolean, oBias: boolean, mlpBias: boolean;
    if (mt === 'qwen2') {
      qkvBias = true;
      oBias = false;
      mlpBias = false;
    } else if (mt === 'llama') {
      qkvBias = oBias = getBool(config, 'attention_bias', false);
      mlpBias = getBool(config, 'mlp_bias', false);
    } else {
      qkvBias = oBias = mlpBias = false;
    }
    return {
      family: 'llama',
      modelType: mt,
      vocabSize: getInt(config, 'vocab_size'),
      hiddenSize: d,
      numHeads: h,
      numKvHeads: kv,
      headDim,
      intermediateSize: inter,
      maxPositions: getInt(config, 'max_position_embeddings'),
      norm: 'rmsnorm',
      normEps: getNum(config, 'rms_norm_eps', 1e-6),
      activation: activationFromHF(config.hidden_act ?? 'silu', 'hidden_act'),
      gatedMlp: true,
      positions: 'rope',
      positionOffset: 0,
      ropeTheta: getNum(config, 'rope_theta', 10000),
      qkvBias,
      oBias,
      mlpBias,
      tieWordEmbeddings: getBool(config, 'tie_word_embeddings', false),
      layers: layersFromGradot(config, nl, inter),
    };
  }
  throw cfgErr(`unsupported model_type '${mt}' (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
}

export function isCompressed(spec: ModelSpec): boolean {
  return spec.layers.some((l, i) => l.source !== i || l.mlpWidth !== spec.intermediateSize || Object.keys(l.ranks).length > 0);
}

function checkRepresentable(spec: ModelSpec): void {
  const bad = (m: string): never => {
    throw new ModelFormatError(`cannot write a ${spec.modelType} config for this spec: ${m}`);
  };
  if (spec.family === 'gpt2' || spec.family === 'opt') {
    if (spec.numKvHeads !== spec.numHeads) bad('numKvHeads must equal numHeads');
    if (spec.numHeads * spec.headDim !== spec.hiddenSize) bad('numHeads * headDim must equal hiddenSize');
    if (spec.norm !== 'layernorm' || spec.positions !== 'learned' || spec.gatedMlp)
      bad('expects layernorm, learned positions, ungated MLP');
  }
  if (spec.family === 'gpt2' && !(spec.qkvBias && spec.oBias && spec.mlpBias)) bad('GPT-2 always has biases');
  if (spec.family === 'opt' && !(spec.qkvBias === spec.oBias && spec.oBias === spec.mlpBias)) bad('OPT biases are all on or all off');
  if (spec.family === 'llama' && (spec.norm !== 'rmsnorm' || spec.positions !== 'rope' || !spec.gatedMlp))
    bad('expects rmsnorm, rope, gated MLP');
}

/**
 * A config.json for `spec` that Hugging Face accepts. Keys of `base` (e.g. the original config's
 * bos/eos ids, torch_dtype) are kept unless the spec determines them.
 */
export function hfConfigFromSpec(spec: ModelSpec, base: HFConfig = {}): HFConfig {
  checkRepresentable(spec);
  const out: HFConfig = { ...base };
  delete out.gradot;
  const nl = spec.layers.length;
  if (spec.family === 'gpt2') {
    Object.assign(out, {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: spec.vocabSize,
      n_positions: spec.maxPositions,
      n_embd: spec.hiddenSize,
      n_layer: nl,
      n_head: spec.numHeads,
      n_inner: spec.intermediateSize,
      activation_function: activationToHF(spec.activation),
      layer_norm_epsilon: spec.normEps,
      tie_word_embeddings: spec.tieWordEmbeddings,
    });
    if ('n_ctx' in base) out.n_ctx = spec.maxPositions;
  } else if (spec.family === 'opt') {
    Object.assign(out, {
      architectures: ['OPTForCausalLM'],
      model_type: 'opt',
      vocab_size: spec.vocabSize,
      hidden_size: spec.hiddenSize,
      num_hidden_layers: nl,
      num_attention_heads: spec.numHeads,
      ffn_dim: spec.intermediateSize,
      max_position_embeddings: spec.maxPositions,
      activation_function: activationToHF(spec.activation),
      do_layer_norm_before: true,
      word_embed_proj_dim: spec.hiddenSize,
      enable_bias: spec.qkvBias,
      layer_norm_elementwise_affine: true,
      tie_word_embeddings: spec.tieWordEmbeddings,
    });
  } else {
    const mt = spec.modelType === 'qwen2' || spec.modelType === 'mistral' ? spec.modelType : 'llama';
    const arch = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', mistral: 'MistralForCausalLM' }[mt];
    Object.assign(out, {
      architectures: [arch],
      model_type: mt,
      vocab_size: spec.vocabSize,
      hidden_size: spec.hiddenSize,
      intermediate_size: spec.intermediateSize,
      num_hidden_layers: nl,
      num_attention_heads: spec.numHeads,
      num_key_value_heads: spec.numKvHeads,
      head_dim: spec.headDim,
      max_position_embeddings: spec.maxPositions,
      rms_norm_eps: spec.normEps,
      rope_theta: spec.ropeTheta,
      hidden_act: activationToHF(spec.activation),
      tie_word_embeddings: spec.tieWordEmbeddings,
    });
    if (mt === 'llama') {
      if (spec.qkvBias !== spec.oBias)
        throw new ModelFormatError('cannot write a llama config: attention_bias covers q/k/v and o together');
      out.attention_bias = spec.qkvBias;
      out.mlp_bias = spec.mlpBias;
    } else if (mt === 'qwen2' && (!spec.qkvBias || spec.oBias || spec.mlpBias)) {
      throw new ModelFormatError('cannot write a qwen2 config: qwen2 has q/k/v biases only');
    }
  }
  if (isCompressed(spec)) {
    const g: GradotConfigBlock = {
      version: 1,
      layers: spec.layers.map((l) => ({ source: l.source, ranks: { ...l.ranks }, mlpWidth: l.mlpWidth })),
    };
    const prev = base.gradot as Partial<GradotConfigBlock> | undefined;
    if (prev?.sourceNumLayers !== undefined) g.sourceNumLayers = prev.sourceNumLayers;
    out.gradot = g;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// canonical tensor list

export interface LinearDims {
  out: number;
  in: number;
  rank?: number;
}

/** [out, in] (and rank when factored) of a block's linear, after pruning. */
export function linearDims(spec: ModelSpec, layer: number, proj: AttnProj | MlpProj): LinearDims {
  const l = spec.layers[layer];
  if (!l) throw new RangeError(`layer ${layer} out of range (model has ${spec.layers.length})`);
  const d = spec.hiddenSize;
  const q = spec.numHeads * spec.headDim;
  const kv = spec.numKvHeads * spec.headDim;
  const dims: Record<AttnProj | MlpProj, [number, number]> = {
    q: [q, d],
    k: [kv, d],
    v: [kv, d],
    o: [d, q],
    up: [l.mlpWidth, d],
    gate: [l.mlpWidth, d],
    down: [d, l.mlpWidth],
  };
  const [o, i] = dims[proj];
  const rank = l.ranks[proj];
  return rank === undefined ? { out: o, in: i } : { out: o, in: i, rank };
}

export function projsOf(spec: ModelSpec): { attn: AttnProj[]; mlp: MlpProj[] } {
  return { attn: ATTN, mlp: spec.gatedMlp ? ['up', 'gate', 'down'] : ['up', 'down'] };
}

/** Every tensor a model with this spec has, canonical name -> shape, in a stable order. */
export function canonicalShapes(spec: ModelSpec): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const d = spec.hiddenSize;
  const normBias = spec.norm === 'layernorm';
  m.set('embed.weight', [spec.vocabSize, d]);
  if (spec.positions === 'learned') m.set('pos.weight', [spec.maxPositions + spec.positionOffset, d]);
  const { attn, mlp } = projsOf(spec);
  spec.layers.forEach((_, i) => {
    const p = `layers.${i}.`;
    const lin = (base: string, proj: AttnProj | MlpProj, bias: boolean): void => {
      const { out, in: inn, rank } = linearDims(spec, i, proj);
      if (rank === undefined) m.set(`${base}.weight`, [out, inn]);
      else {
        m.set(`${base}.weight_a`, [out, rank]);
        m.set(`${base}.weight_b`, [rank, inn]);
      }
      if (bias) m.set(`${base}.bias`, [out]);
    };
    m.set(`${p}ln1.weight`, [d]);
    if (normBias) m.set(`${p}ln1.bias`, [d]);
    for (const a of attn) lin(`${p}attn.${a}`, a, a === 'o' ? spec.oBias : spec.qkvBias);
    m.set(`${p}ln2.weight`, [d]);
    if (normBias) m.set(`${p}ln2.bias`, [d]);
    for (const f of mlp) lin(`${p}mlp.${f}`, f, spec.mlpBias);
  });
  m.set('norm.weight', [d]);
  if (normBias) m.set('norm.bias', [d]);
  if (!spec.tieWordEmbeddings) m.set('lm_head.weight', [spec.vocabSize, d]);
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// name mapping

/**
 * One HF tensor and the canonical tensor(s) it holds. `canonical` has three entries for GPT-2's fused
 * c_attn (q, k, v concatenated along the output dim); `transpose` means HF stores it [in, out] (Conv1D).
 */
export interface HFMapping {
  hf: string;
  canonical: string[];
  transpose: boolean;
}

const MODEL_PREFIX: Record<Family, string> = { gpt2: 'transformer.', opt: 'model.decoder.', llama: 'model.' };
/** Prefixes accepted on load, longest first; the empty prefix covers legacy checkpoints. */
const LOAD_PREFIXES: Record<Family, string[]> = {
  gpt2: ['transformer.', ''],
  opt: ['model.decoder.', 'decoder.', ''],
  llama: ['model.', ''],
};

const TOP: Record<Family, Record<string, string>> = {
  gpt2: { embed: 'wte', pos: 'wpe', norm: 'ln_f' },
  opt: { embed: 'embed_tokens', pos: 'embed_positions', norm: 'final_layer_norm' },
  llama: { embed: 'embed_tokens', norm: 'norm' },
};
const LAYER_PREFIX: Record<Family, string> = { gpt2: 'h', opt: 'layers', llama: 'layers' };
const SUB: Record<Family, Record<string, string>> = {
  gpt2: {
    ln1: 'ln_1',
    ln2: 'ln_2',
    'attn.q': 'attn.c_attn.q',
    'attn.k': 'attn.c_attn.k',
    'attn.v': 'attn.c_attn.v',
    'attn.o': 'attn.c_proj',
    'mlp.up': 'mlp.c_fc',
    'mlp.down': 'mlp.c_proj',
  },
  opt: {
    ln1: 'self_attn_layer_norm',
    ln2: 'final_layer_norm',
    'attn.q': 'self_attn.q_proj',
    'attn.k': 'self_attn.k_proj',
    'attn.v': 'self_attn.v_proj',
    'attn.o': 'self_attn.out_proj',
    'mlp.up': 'fc1',
    'mlp.down': 'fc2',
  },
  llama: {
    ln1: 'input_layernorm',
    ln2: 'post_attention_layernorm',
    'attn.q': 'self_attn.q_proj',
    'attn.k': 'self_attn.k_proj',
    'attn.v': 'self_attn.v_proj',
    'attn.o': 'self_attn.o_proj',
    'mlp.up': 'mlp.up_proj',
    'mlp.gate': 'mlp.gate_proj',
    'mlp.down': 'mlp.down_proj',
  },
};
const SUFFIXES = ['weight', 'weight_a', 'weight_b', 'bias'];

function invert(r: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [v, k]));
}
const TOP_INV = { gpt2: invert(TOP.gpt2), opt: invert(TOP.opt), llama: invert(TOP.llama) };
const SUB_INV = { gpt2: invert(SUB.gpt2), opt: invert(SUB.opt), llama: invert(SUB.llama) };

const CANON_LAYER_RE = /^layers\.(\d+)\.(ln1|ln2|attn\.[qkvo]|mlp\.(?:up|gate|down))\.(weight|weight_a|weight_b|bias)$/;
const CANON_TOP_RE = /^(embed|pos|norm|lm_head)\.(weight|bias)$/;

export interface NameMapOptions {
  /**
   * GPT-2 only: write/read layer i's q, k, v fused into c_attn. Default: fused unless one of them is
   * factored in `spec` (when a spec is given), else fused.
   */
  fusedQKV?: boolean;
  /** HF layer index for canonical layer i (e.g. the source block index, for adapters). Default identity. */
  layerIndex?: (i: number) => number;
  /** Prefix the model-body prefix (`transformer.`, `model.decoder.`, `model.`). Default true. */
  prefix?: boolean;
}

function gpt2Fused(spec: ModelSpec | undefined, layer: number, opts: NameMapOptions): boolean {
  if (opts.fusedQKV !== undefined) return opts.fusedQKV;
  const l = spec?.layers[layer];
  return !l || (l.ranks.q === undefined && l.ranks.k === undefined && l.ranks.v === undefined);
}

/** The HF tensor holding a canonical tensor. `familyOrSpec` as a spec decides GPT-2 fusion per layer. */
export function canonicalToHF(familyOrSpec: Family | ModelSpec, canonical: string, opts: NameMapOptions = {}): HFMapping {
  const spec = typeof familyOrSpec === 'string' ? undefined : familyOrSpec;
  const family = typeof familyOrSpec === 'string' ? familyOrSpec : familyOrSpec.family;
  const pre = opts.prefix === false ? '' : MODEL_PREFIX[family];
  const top = CANON_TOP_RE.exec(canonical);
  if (top) {
    const [, what, suffix] = top as unknown as [string, string, string];
    if (what === 'lm_head') return { hf: `lm_head.${suffix}`, canonical: [canonical], transpose: false };
    const t = TOP[family][what];
    if (!t) throw new ModelFormatError(`${family} has no tensor '${canonical}'`);
    return { hf: `${pre}${t}.${suffix}`, canonical: [canonical], transpose: false };
  }
  const m = CANON_LAYER_RE.exec(canonical);
  if (!m) throw new ModelFormatError(`not a canonical tensor name: '${canonical}'`);
  const [, iStr, sub, suffix] = m as unknown as [string, string, string, string];
  const i = Number(iStr);
  const hfI = opts.layerIndex ? opts.layerIndex(i) : i;
  const lp = `${pre}${LAYER_PREFIX[family]}.${hfI}.`;
  const hfSub = SUB[family][sub];
  if (!hfSub) throw new ModelFormatError(`${family} has no tensor '${canonical}'`);
  if (family === 'gpt2' && /^attn\.[qkv]$/.test(sub) && (suffix === 'weight' || suffix === 'bias') && gpt2Fused(spec, i, opts)) {
    return {
      hf: `${lp}attn.c_attn.${suffix}`,
      canonical: ['q', 'k', 'v'].map((p) => `layers.${i}.attn.${p}.${suffix}`),
      transpose: suffix === 'weight',
    };
  }
  return {
    hf: `${lp}${hfSub}.${suffix}`,
    canonical: [canonical],
    transpose: family === 'gpt2' && suffix === 'weight' && !sub.startsWith('ln'),
  };
}

/**
 * The canonical tensor(s) an HF tensor name holds, or null when the name is not part of the model (buffers,
 * foreign heads). Prefixes are optional. `layerIndex` inverts NameMapOptions.layerIndex.
 */
export function hfToCanonical(family: Family, hfName: string, layerIndex?: (hfI: number) => number): HFMapping | null {
  if (hfName === 'lm_head.weight') return { hf: hfName, canonical: ['lm_head.weight'], transpose: false };
  let bare: string | null = null;
  for (const p of LOAD_PREFIXES[family]) {
    if (hfName.startsWith(p)) {
      bare = hfName.slice(p.length);
      break;
    }
  }
  if (bare === null) return null;
  const dot = bare.lastIndexOf('.');
  const suffix = bare.slice(dot + 1);
  const path = bare.slice(0, dot);
  if (!SUFFIXES.includes(suffix)) return null;
  const t = TOP_INV[family][path];
  if (t) return suffix === 'weight' || suffix === 'bias' ? { hf: hfName, canonical: [`${t}.${suffix}`], transpose: false } : null;
  const lm = new RegExp(`^${LAYER_PREFIX[family]}\\.(\\d+)\\.(.+)$`).exec(path);
  if (!lm) return null;
  const i = layerIndex ? layerIndex(Number(lm[1])) : Number(lm[1]);
  const sub = lm[2]!;
  if (family === 'gpt2' && sub === 'attn.c_attn') {
    if (suffix !== 'weight' && suffix !== 'bias') return null;
    return { hf: hfName, canonical: ['q', 'k', 'v'].map((p) => `layers.${i}.attn.${p}.${suffix}`), transpose: suffix === 'weight' };
  }
  const c = SUB_INV[family][sub];
  if (!c) return null;
  if (c.startsWith('ln') && suffix !== 'weight' && suffix !== 'bias') return null;
  return {
    hf: hfName,
    canonical: [`layers.${i}.${c}.${suffix}`],
    transpose: family === 'gpt2' && suffix === 'weight' && !c.startsWith('ln'),
  };
}

/**
 * Buffers that HF checkpoints may contain and that are not parameters (ignored silently on load, never
 * counted as parameters): GPT-2's causal-mask `attn.bias` / `attn.masked_bias`, LLaMA's rotary `inv_freq`.
 */
export function isKnownBuffer(family: Family, hfName: string): boolean {
  if (family === 'gpt2') return /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/.test(hfName);
  if (family === 'llama') return /rotary_emb\.inv_freq$/.test(hfName);
  return false;
}

/** Size of a tokenizer.json's id space (largest id + 1 over model.vocab and added_tokens), without building it. */
export function tokenizerJsonIdCount(json: unknown): number | null {
  const j = json as { model?: { vocab?: unknown }; added_tokens?: unknown } | null;
  let max = -1;
  const v = j?.model?.vocab;
  if (v && typeof v === 'object' && !Array.isArray(v))
    for (const id of Object.values(v as Record<string, unknown>)) if (typeof id === 'number' && id > max) max = id;
  // Unigram vocabularies are [piece, score] lists: ids are positions.
  if (Array.isArray(v)) max = Math.max(max, v.length - 1);
  if (Array.isArray(j?.added_tokens))
    for (const t of j.added_tokens as { id?: unknown }[]) if (typeof t?.id === 'number' && t.id > max) max = t.id;
  return max >= 0 ? max + 1 : null;
}

/**
 * A tokenizer's id space against the model's embedding rows. More ids than rows: a named error (ids past
 * the table would stop every forward). Far fewer (more than 2% of the rows unused): a warning saying what
 * breaks — it is almost certainly another model's tokenizer, so text is cut into tokens this model never
 * saw. A few spare rows are normal (hub models pad vocab_size to a multiple of 64 or 128). Returns the
 * warning or null.
 */
export function checkTokenizerVocab(tokenizerIds: number, spec: ModelSpec, file = 'tokenizer.json'): string | null {
  const rows = spec.vocabSize;
  if (tokenizerIds > rows) {
    throw new ModelFormatError(
      `the tokenizer has ${tokenizerIds} token ids but the model's embedding has ${rows} rows (config.json vocab_size): ` +
        `ids ${rows}..${tokenizerIds - 1} have no embedding; this is not this model's tokenizer`,
      file,
    );
  }
  if (rows - tokenizerIds > 0.02 * rows) {
    return (
      `${file}: the tokenizer has ${tokenizerIds} token ids but the model has ${rows} embedding rows: ` +
      `probably another model's tokenizer — text will be split into tokens this model was not trained on (garbage losses and outputs)`
    );
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// tensor transforms between the two namings

function concatRows(parts: HostTensor[]): HostTensor {
  const cols = parts[0]!.shape.length === 2 ? parts[0]!.shape[1]! : 1;
  const rows = parts.reduce((s, p) => s + p.shape[0]!, 0);
  const data = new Float32Array(rows * cols);
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.length;
  }
  return { dtype: parts[0]!.dtype, shape: parts[0]!.shape.length === 2 ? [rows, cols] : [rows], data };
}

function splitRows(t: HostTensor, rows: number[]): HostTensor[] {
  const cols = t.shape.length === 2 ? t.shape[1]! : 1;
  const out: HostTensor[] = [];
  let off = 0;
  for (const r of rows) {
    const data = t.data.slice(off * cols, (off + r) * cols);
    out.push({ dtype: t.dtype, shape: t.shape.length === 2 ? [r, cols] : [r], data });
    off += r;
  }
  return out;
}

function hfShapeOf(canonShapes: number[][], transpose: boolean): number[] {
  if (canonShapes.length === 1) {
    const s = canonShapes[0]!;
    return transpose ? [s[1]!, s[0]!] : [...s];
  }
  const rows = canonShapes.reduce((a, s) => a + s[0]!, 0);
  if (canonShapes[0]!.length === 1) return [rows];
  const cols = canonShapes[0]![1]!;
  return transpose ? [cols, rows] : [rows, cols];
}

/** canonical -> HF for a whole (possibly partial, e.g. adapter) weight map. */
export function toHFWeights(spec: ModelSpec, weights: WeightMap, opts: NameMapOptions = {}): WeightMap {
  const out: WeightMap = new Map();
  const done = new Set<string>();
  for (const name of weights.keys()) {
    if (done.has(name)) continue;
    const m = canonicalToHF(spec, name, opts);
    const parts = m.canonical.map((c) => {
      const t = weights.get(c);
      if (!t) throw new ModelFormatError(`'${m.hf}' needs '${c}', which is missing (write q, k and v together or pass fusedQKV: false)`);
      return t;
    });
    m.canonical.forEach((c) => done.add(c));
    let t = parts.length === 1 ? parts[0]! : concatRows(parts);
    if (m.transpose) t = transpose2d(t);
    out.set(m.hf, parts.length === 1 && !m.transpose ? { dtype: t.dtype, shape: [...t.shape], data: t.data } : t);
  }
  return out;
}

/** One HF tensor -> its canonical tensor(s). */
export function fromHFTensor(spec: ModelSpec, m: HFMapping, t: HostTensor): [string, HostTensor][] {
  const x = m.transpose ? transpose2d(t) : t;
  if (m.canonical.length === 1) return [[m.canonical[0]!, x]];
  const layer = Number(/^layers\.(\d+)\./.exec(m.canonical[0]!)![1]);
  const rows = (['q', 'k', 'v'] as const).map((p) => linearDims(spec, layer, p).out);
  if (x.shape[0] !== rows[0]! + rows[1]! + rows[2]!) {
    throw new ShapeMismatchError('(weights)', m.hf, [rows[0]! + rows[1]! + rows[2]!], [x.shape[0]!], 'fused q|k|v rows');
  }
  const parts = splitRows(x, rows);
  return m.canonical.map((c, i) => [c, parts[i]!]);
}

/**
 * HF-named tensors (e.g. an adapter file written by toHFWeights) -> canonical, each shape checked against
 * `spec`. Names that are not model tensors are returned in `ignored`.
 */
export function fromHFWeights(
  spec: ModelSpec,
  hf: WeightMap,
  opts: { layerIndex?: (hfI: number) => number; file?: string } = {},
): { weights: WeightMap; ignored: string[] } {
  const file = opts.file ?? '(weights)';
  const expected = canonicalShapes(spec);
  const weights: WeightMap = new Map();
  const ignored: string[] = [];
  for (const [name, t] of hf) {
    const m = hfToCanonical(spec.family, name, opts.layerIndex);
    if (!m) {
      ignored.push(name);
      continue;
    }
    const shapes = m.canonical.map((c) => {
      const s = expected.get(c);
      if (!s) throw new ModelFormatError(`maps to '${c}', which this model does not have`, file, name);
      return s;
    });
    const want = hfShapeOf(shapes, m.transpose);
    if (!sameShape(want, t.shape)) throw new ShapeMismatchError(file, name, want, t.shape, `canonical ${m.canonical.join(' | ')}`);
    for (const [c, x] of fromHFTensor(spec, m, t)) weights.set(c, x);
  }
  return { weights, ignored };
}

// ---------------------------------------------------------------------------------------------------------
// loading

export interface HFTensorInfo {
  file: string;
  dtype: string;
  shape: number[];
  bytes: number;
}

export interface HFLoadPlan {
  spec: ModelSpec;
  config: HFConfig;
  /** Every tensor in the checkpoint files, by HF name. */
  tensors: Map<string, HFTensorInfo>;
  /** HF tensors that make up the model, with their canonical targets, in canonical order. */
  mappings: HFMapping[];
  warnings: string[];
  files: { name: string; size: number }[];
  /** Distinct on-disk dtypes of the model's tensors. */
  dtypes: string[];
}

export interface LoadedHFModel extends Omit<HFLoadPlan, 'mappings'> {
  /** Canonical weights, F32 data. */
  weights: WeightMap;
}

async function readJson(source: ModelSource, name: string): Promise<unknown> {
  const text = await source.readText(name);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(`invalid JSON (${(e as Error).message})`, name);
  }
}

async function weightFiles(source: ModelSource): Promise<string[]> {
  if (await source.has('model.safetensors.index.json')) {
    const idx = (await readJson(source, 'model.safetensors.index.json')) as { weight_map?: Record<string, string> };
    if (!idx || typeof idx.weight_map !== 'object' || idx.weight_map === null) {
      throw new ModelFormatError("missing 'weight_map'", 'model.safetensors.index.json');
    }
    return [...new Set(Object.values(idx.weight_map))].sort();
  }
  if (await source.has('model.safetensors')) return ['model.safetensors'];
  const all = await source.list();
  const st = all.filter((f) => f.endsWith('.safetensors') && !f.includes('/'));
  if (st.length > 0) return st;
  if (all.some((f) => f.endsWith('.bin') || f.endsWith('.pt') || f.endsWith('.pth'))) {
    throw new ModelFormatError(
      `only safetensors checkpoints are supported; found PyTorch pickles in ${source.label} (convert them with safetensors' convert script)`,
    );
  }
  throw new ModelFormatError(`no model.safetensors (or model.safetensors.index.json) in ${source.label}`);
}

/**
 * Reads config.json and every safetensors header, maps and validates every expected tensor's shape
 * against the spec — without decoding any tensor data (so `inspect` is instant on large models).
 */
export async function planHFLoad(source: ModelSource): Promise<HFLoadPlan & { readers: Map<string, SafetensorsReader> }> {
  if (!(await source.has('config.json'))) throw new ModelFormatError(`no config.json in ${source.label}`);
  const config = (await readJson(source, 'config.json')) as HFConfig;
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new ModelFormatError('not a JSON object', 'config.json');
  const warnings: string[] = [];
  const spec = specFromHFConfig(config, warnings);
  checkSpecBounds(spec, 'config.json');
  const readers = new Map<string, SafetensorsReader>();
  const tensors = new Map<string, HFTensorInfo>();
  const files: { name: string; size: number }[] = [];
  for (const f of await weightFiles(source)) {
    const r = await SafetensorsReader.open(source, f);
    readers.set(f, r);
    files.push({ name: f, size: r.header.fileSize });
    for (const [name, e] of r.header.entries as Map<string, SafetensorsEntry>) {
      const prev = tensors.get(name);
      if (prev) throw new ModelFormatError(`tensor appears in both ${prev.file} and ${f}`, f, name);
      tensors.set(name, { file: f, dtype: e.dtype, shape: e.shape, bytes: e.end - e.begin });
    }
  }
  // Index the checkpoint by the canonical tensors each HF name provides.
  const byCanon = new Map<string, HFMapping>();
  const family = spec.family;
  for (const name of tensors.keys()) {
    const m = hfToCanonical(family, name);
    if (!m) continue;
    for (const c of m.canonical) byCanon.set(c, m);
  }
  const expected = canonicalShapes(spec);
  const used = new Set<string>();
  const mappings: HFMapping[] = [];
  const dtypes = new Set<string>();
  for (const [canon, shape] of expected) {
    const m = byCanon.get(canon);
    if (!m) {
      const want = canonicalToHF(spec, canon);
      throw new ModelFormatError(
        `missing tensor '${want.hf}' (canonical '${canon}', shape [${hfShapeOf([shape], want.transpose).join(', ')}]) in ${[...readers.keys()].join(', ')}`,
        [...readers.keys()][0],
        want.hf,
      );
    }
    if (used.has(m.hf)) continue;
    used.add(m.hf);
    const info = tensors.get(m.hf)!;
    const shapes = m.canonical.map((c) => {
      const s = expected.get(c);
      if (!s) throw new ModelFormatError(`'${m.hf}' maps to '${c}', which this config does not have`, info.file, m.hf);
      return s;
    });
    const want = hfShapeOf(shapes, m.transpose);
    if (!sameShape(want, info.shape)) {
      throw new ShapeMismatchError(info.file, m.hf, want, info.shape, `canonical ${m.canonical.join(' | ')}, from config.json`);
    }
    dtypes.add(info.dtype);
    mappings.push(m);
  }
  const unexpected = new Map<string, string[]>();
  for (const name of tensors.keys()) {
    if (used.has(name) || isKnownBuffer(family, name)) continue;
    if (name === 'lm_head.weight' && spec.tieWordEmbeddings) continue;
    const f = tensors.get(name)!.file;
    unexpected.set(f, [...(unexpected.get(f) ?? []), name]);
  }
  for (const [f, names] of unexpected) warnings.push(...summarizeUnexpected(f, names));
  return { spec, config, tensors, mappings, warnings, files, dtypes: [...dtypes].sort(), readers };
}

export interface LoadHFOptions {
  /** Called after each HF tensor is decoded, with bytes read so far and in total. */
  onProgress?: (doneBytes: number, totalBytes: number, tensor: string) => void;
  signal?: AbortSignal;
  /**
   * Receives each canonical tensor as soon as it is decoded (e.g. to upload it to the GPU). With
   * `keepWeights: false` the result's `weights` stays empty, so the host never holds the whole model.
   */
  onTensor?: (name: string, t: HostTensor) => void | Promise<void>;
  keepWeights?: boolean;
}

/** Loads an HF folder into canonical weights, validating every tensor against config.json. */
export async function loadHFModel(source: ModelSource, opts: LoadHFOptions = {}): Promise<LoadedHFModel> {
  const plan = await planHFLoad(source);
  const weights: WeightMap = new Map();
  const total = plan.mappings.reduce((s, m) => s + plan.tensors.get(m.hf)!.bytes, 0);
  let done = 0;
  for (const m of plan.mappings) {
    opts.signal?.throwIfAborted();
    const info = plan.tensors.get(m.hf)!;
    const t = await plan.readers.get(info.file)!.read(m.hf);
    for (const [c, x] of fromHFTensor(plan.spec, m, t)) {
      if (opts.onTensor) await opts.onTensor(c, x);
      if (opts.keepWeights !== false) weights.set(c, x);
    }
    done += info.bytes;
    opts.onProgress?.(done, total, m.hf);
  }
  // Keep canonical order for deterministic iteration downstream.
  const ordered: WeightMap = new Map();
  if (opts.keepWeights !== false) for (const k of canonicalShapes(plan.spec).keys()) ordered.set(k, weights.get(k)!);
  const { spec, config, tensors, warnings, files, dtypes } = plan;
  return { spec, config, tensors, warnings, files, dtypes, weights: ordered };
}

/** Throws ShapeMismatchError / ModelFormatError unless `weights` has exactly the tensors `spec` needs. */
export function validateWeights(spec: ModelSpec, weights: WeightMap, label = '(weights)'): void {
  const expected = canonicalShapes(spec);
  for (const [name, shape] of expected) {
    const t = weights.get(name);
    if (!t) throw new ModelFormatError('missing tensor', label, name);
    if (!sameShape(shape, t.shape)) throw new ShapeMismatchError(label, name, shape, t.shape);
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new ModelFormatError('data length does not match shape', label, name);
  }
  for (const name of weights.keys()) {
    if (!expected.has(name)) throw new ModelFormatError('tensor not part of this spec', label, name);
  }
}

/**
 * Checks a canonical-named safetensors header (e.g. an emulator package's weights) against a spec without
 * decoding data: every expected tensor present with the right shape; extras become warnings.
 */
export function checkCanonicalHeader(
  spec: ModelSpec,
  entries: Map<string, { dtype: string; shape: number[] }>,
  file: string,
): { dtypes: string[]; warnings: string[] } {
  const dtypes = new Set<string>();
  const expected = canonicalShapes(spec);
  for (const [name, shape] of expected) {
    const e = entries.get(name);
    if (!e) throw new ModelFormatError(`missing tensor (shape [${shape.join(', ')}])`, file, name);
    if (!sameShape(shape, e.shape)) throw new ShapeMismatchError(file, name, shape, e.shape);
    dtypes.add(e.dtype);
  }
  const warnings = summarizeUnexpected(
    file,
    [...entries.keys()].filter((k) => !expected.has(k)),
  );
  return { dtypes: [...dtypes].sort(), warnings };
}

// ---------------------------------------------------------------------------------------------------------
// saving

export interface SaveHFOptions {
  dtype?: WriteDType;
  /** Original config.json to keep extra keys from (bos/eos ids, ...). */
  baseConfig?: HFConfig;
  /** Split into shards of at most this many bytes (HF layout with model.safetensors.index.json). */
  maxShardBytes?: number;
}

const TORCH_DTYPE: Record<WriteDType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * An HF folder as files: config.json + model.safetensors (or shards + index), HF tensor names. The third
 * argument is the options or just the dtype.
 */
export function saveHFModel(spec: ModelSpec, weights: WeightMap, optsOrDtype: SaveHFOptions | WriteDType = {}): Map<string, Uint8Array> {
  const opts: SaveHFOptions = typeof optsOrDtype === 'string' ? { dtype: optsOrDtype } : optsOrDtype;
  validateWeights(spec, weights);
  const dtype = opts.dtype ?? 'F32';
  const config = hfConfigFromSpec(spec, opts.baseConfig);
  config.torch_dtype = TORCH_DTYPE[dtype];
  const hf = toHFWeights(spec, weights);
  const files = new Map<string, Uint8Array>();
  files.set('config.json', new TextEncoder().encode(JSON.stringify(config, null, 2) + '\n'));
  const meta = { format: 'pt' };
  const elt = dtype === 'F32' ? 4 : 2;
  const names = [...hf.keys()].sort();
  const total = names.reduce((s, n) => s + hf.get(n)!.data.length * elt, 0);
  if (opts.maxShardBytes === undefined || total <= opts.maxShardBytes) {
    files.set('model.safetensors', serializeSafetensors(hf, { dtype, metadata: meta }));
    return files;
  }
  const shards: string[][] = [[]];
  let cur = 0;
  for (const n of names) {
    const b = hf.get(n)!.data.length * elt;
    if (cur > 0 && cur + b > opts.maxShardBytes) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1]!.push(n);
    cur += b;
  }
  const pad = (k: number): string => String(k).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  shards.forEach((list, k) => {
    const fname = `model-${pad(k + 1)}-of-${pad(shards.length)}.safetensors`;
    files.set(
      fname,
      serializeSafetensors(
        list.map((n) => [n, hf.get(n)!] as [string, HostTensor]),
        { dtype, metadata: meta },
      ),
    );
    for (const n of list) weightMap[n] = fname;
  });
  files.set(
    'model.safetensors.index.json',
    new TextEncoder().encode(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n'),
  );
  return files;
}
