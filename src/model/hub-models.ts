/**
 * Hub-shaped random checkpoints: the exact config.json fields, tensor names, shapes and dtypes of five
 * Hugging Face hub models, so tests and benchmarks run at real sizes without downloading anything.
 *
 * - gpt2: F32, legacy names without the `transformer.` prefix, Conv1D [in, out] weights, fused c_attn, and
 *   the causal-mask buffers `h.N.attn.bias` [1, 1, 1024, 1024] the hub file carries; no lm_head (tied).
 * - facebook/opt-125m: F16, names under `decoder.` (as the hub file stores them), no lm_head (tied).
 * - Qwen/Qwen2.5-0.5B: BF16, tied embeddings, q/k/v biases.
 * - HuggingFaceTB/SmolLM2-360M: BF16, tied embeddings, head_dim 64 with 15 heads / 5 KV heads.
 * - TinyLlama/TinyLlama-1.1B-Chat-v1.0: BF16, untied lm_head, 32 heads / 4 KV heads.
 *
 * Weights follow each architecture's own `_init_weights` (N(0, initializer_range) for linears and
 * embeddings, GPT-2's residual projections scaled by 1/sqrt(2·n_layer), norms 1, biases 0), so activations
 * and gradients have the scale of a freshly initialised hub model. The tokenizer is a synthetic byte-level BPE
 * whose id space is exactly the model's vocab_size (the hub's special tokens at the hub's ids).
 *
 * This module only describes; `make-model.ts` streams the files to disk (Node).
 */
import { canonicalShapes, canonicalToHF, specFromHFConfig, type HFConfig } from './hf';
import type { ModelSpec } from './spec';
import type { WriteDType } from './safetensors';

export const HUB_FAMILIES = ['gpt2', 'opt-125m', 'qwen2.5-0.5b', 'smollm2-360m', 'tinyllama-1.1b'] as const;
export type HubFamily = (typeof HUB_FAMILIES)[number];

export interface HubModelDef {
  /** The hub repository the shapes come from. */
  repo: string;
  config: HFConfig;
  dtype: WriteDType;
  /** Special tokens at their hub ids. */
  specials: { id: number; content: string }[];
  tokenizerConfig: Record<string, unknown>;
}

const GPT2_CONFIG: HFConfig = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  embd_pdrop: 0.1,
  eos_token_id: 50256,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  resid_pdrop: 0.1,
  summary_activation: null,
  summary_first_dropout: 0.1,
  summary_proj_to_labels: true,
  summary_type: 'cls_index',
  summary_use_proj: true,
  task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } },
  vocab_size: 50257,
};

const OPT_CONFIG: HFConfig = {
  _name_or_path: 'facebook/opt-125m',
  _remove_final_layer_norm: false,
  activation_dropout: 0.0,
  activation_function: 'relu',
  architectures: ['OPTForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 2,
  do_layer_norm_before: true,
  dropout: 0.1,
  eos_token_id: 2,
  ffn_dim: 3072,
  hidden_size: 768,
  init_std: 0.02,
  layerdrop: 0.0,
  max_position_embeddings: 2048,
  model_type: 'opt',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 1,
  prefix: '</s>',
  torch_dtype: 'float16',
  transformers_version: '4.21.0.dev0',
  use_cache: true,
  vocab_size: 50272,
  word_embed_proj_dim: 768,
};

const QWEN_CONFIG: HFConfig = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

const SMOLLM_CONFIG: HFConfig = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 960,
  initializer_range: 0.02,
  intermediate_size: 2560,
  is_llama_config: true,
  max_position_embeddings: 8192,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 15,
  num_hidden_layers: 32,
  num_key_value_heads: 5,
  pad_token_id: 2,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 100000,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.42.3',
  use_cache: true,
  vocab_size: 49152,
};

const TINYLLAMA_CONFIG: HFConfig = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.35.0',
  use_cache: true,
  vocab_size: 32000,
};

const gpt2TokCfg = (max: number, eos: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  add_bos_token: false,
  add_prefix_space: false,
  bos_token: eos,
  eos_token: eos,
  unk_token: eos,
  model_max_length: max,
  tokenizer_class: 'GPT2Tokenizer',
  clean_up_tokenization_spaces: false,
  errors: 'replace',
  ...extra,
});

export const HUB_MODELS: Record<HubFamily, HubModelDef> = {
  gpt2: {
    repo: 'gpt2',
    config: GPT2_CONFIG,
    dtype: 'F32',
    specials: [{ id: 50256, content: '<|endoftext|>' }],
    tokenizerConfig: gpt2TokCfg(1024, '<|endoftext|>'),
  },
  'opt-125m': {
    repo: 'facebook/opt-125m',
    config: OPT_CONFIG,
    dtype: 'F16',
    specials: [
      { id: 0, content: '<s>' },
      { id: 1, content: '<pad>' },
      { id: 2, content: '</s>' },
      { id: 3, content: '<unk>' },
    ],
    tokenizerConfig: gpt2TokCfg(2048, '</s>', { pad_token: '<pad>', unk_token: '<unk>' }),
  },
  'qwen2.5-0.5b': {
    repo: 'Qwen/Qwen2.5-0.5B',
    config: QWEN_CONFIG,
    dtype: 'BF16',
    specials: [
      { id: 151643, content: '<|endoftext|>' },
      { id: 151644, content: '<|im_start|>' },
      { id: 151645, content: '<|im_end|>' },
    ],
    tokenizerConfig: gpt2TokCfg(32768, '<|endoftext|>', { bos_token: null, pad_token: '<|endoftext|>' }),
  },
  'smollm2-360m': {
    repo: 'HuggingFaceTB/SmolLM2-360M',
    config: SMOLLM_CONFIG,
    dtype: 'BF16',
    specials: [
      { id: 0, content: '<|endoftext|>' },
      { id: 1, content: '<|im_start|>' },
      { id: 2, content: '<|im_end|>' },
    ],
    tokenizerConfig: gpt2TokCfg(8192, '<|endoftext|>', { bos_token: '<|im_start|>', eos_token: '<|im_end|>' }),
  },
  'tinyllama-1.1b': {
    repo: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    config: TINYLLAMA_CONFIG,
    dtype: 'BF16',
    specials: [
      { id: 0, content: '<unk>' },
      { id: 1, content: '<s>' },
      { id: 2, content: '</s>' },
    ],
    tokenizerConfig: gpt2TokCfg(2048, '</s>', { bos_token: '<s>', unk_token: '<unk>', pad_token: '</s>' }),
  },
};

/** Accepts the family key or the hub repo id (case-insensitive). */
export function hubFamily(name: string): HubFamily | null {
  const n = name.toLowerCase();
  for (const f of HUB_FAMILIES) if (f === n || HUB_MODELS[f].repo.toLowerCase() === n) return f;
  return null;
}

/** One tensor of the hub file: its name, shape, how to initialise it. */
export interface HubTensor {
  name: string;
  shape: number[];
  dtype: 'F32' | 'F16' | 'BF16';
  init: { kind: 'normal'; std: number; zeroRow?: number } | { kind: 'const'; value: number } | { kind: 'causal-mask' };
}

/**
 * The init of one canonical tensor under HF's `_init_weights` for the spec's family. `std` is the config's
 * initializer_range (init_std for OPT).
 */
export function hfInit(spec: ModelSpec, canonical: string, std: number, padId?: number): HubTensor['init'] {
  if (/(^|\.)(ln1|ln2|norm)\.weight$/.test(canonical)) return { kind: 'const', value: 1 };
  if (canonical.endsWith('.bias')) return { kind: 'const', value: 0 };
  if (spec.family === 'gpt2' && /\.(attn\.o|mlp\.down)\.weight$/.test(canonical)) {
    return { kind: 'normal', std: std / Math.sqrt(2 * spec.layers.length) };
  }
  if (canonical === 'embed.weight' && padId !== undefined) return { kind: 'normal', std, zeroRow: padId };
  return { kind: 'normal', std };
}

/**
 * Every tensor of the hub file for `family`, sorted by name (the order safetensors writes them). `overrides`
 * replace config keys (tests shrink the model this way; names and dtypes stay the hub's).
 */
export function hubTensors(family: HubFamily, overrides: HFConfig = {}): { spec: ModelSpec; config: HFConfig; tensors: HubTensor[] } {
  const def = HUB_MODELS[family];
  const config = { ...def.config, ...overrides };
  const spec = specFromHFConfig(config);
  const std = (config.initializer_range ?? config.init_std ?? 0.02) as number;
  const padId = typeof config.pad_token_id === 'number' && spec.family === 'opt' ? config.pad_token_id : undefined;
  const shapes = canonicalShapes(spec);
  const out: HubTensor[] = [];
  const seen = new Set<string>();
  for (const c of shapes.keys()) {
    const m = canonicalToHF(spec, c, { prefix: spec.family === 'llama' });
    if (seen.has(m.hf)) continue;
    seen.add(m.hf);
    const parts = m.canonical.map((x) => shapes.get(x)!);
    let shape: number[];
    if (parts.length === 1) shape = m.transpose ? [parts[0]![1]!, parts[0]![0]!] : [...parts[0]!];
    else {
      const rows = parts.reduce((s, p) => s + p[0]!, 0);
      shape = parts[0]!.length === 1 ? [rows] : m.transpose ? [parts[0]![1]!, rows] : [rows, parts[0]![1]!];
    }
    const name = spec.family === 'opt' && !m.hf.startsWith('lm_head.') ? `decoder.${m.hf}` : m.hf;
    out.push({ name, shape, dtype: def.dtype, init: hfInit(spec, c, std, padId) });
  }
  if (spec.family === 'gpt2') {
    const n = spec.maxPositions;
    for (let i = 0; i < spec.layers.length; i++)
      out.push({ name: `h.${i}.attn.bias`, shape: [1, 1, n, n], dtype: def.dtype, init: { kind: 'causal-mask' } });
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { spec, config, tensors: out };
}

// ---------------------------------------------------------------------------------------------------------
// synthetic byte-level BPE of an exact vocabulary size

/** GPT-2's bytes_to_unicode: byte -> printable character. */
export function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCharCode(cs[i]!)));
  return out;
}

/** Bytes in a rough English-frequency order, so the earliest (highest-priority) merges are common pairs. */
function byteOrder(): number[] {
  const first = ' etaoinshrdlucmfwypvbgkjqxz,.ETAOINSHRDLUCMFWYPVBGKJQXZ0123456789\'"-!?:;()\n';
  const order: number[] = [];
  const seen = new Set<number>();
  for (const ch of first) {
    const b = ch.charCodeAt(0);
    if (!seen.has(b)) {
      seen.add(b);
      order.push(b);
    }
  }
  for (let b = 0; b < 256; b++) if (!seen.has(b)) order.push(b);
  return order;
}

/**
 * tokenizer.json (byte-level BPE, GPT-2 pre-tokenizer/decoder) whose id space is exactly `vocabSize`:
 * the specials at their ids, the 256 byte tokens, then merges (two-byte tokens along anti-diagonals of the
 * byte-frequency order, then three-byte tokens) until every other id is used. Synthetic — the token
 * boundaries do not match the hub tokenizer's — but it loads and encodes like one.
 */
export function syntheticBpeTokenizer(vocabSize: number, specials: { id: number; content: string }[]): Record<string, unknown> {
  const b2u = byteToUnicode();
  const specialIds = new Set(specials.map((s) => s.id));
  for (const s of specials) if (s.id >= vocabSize) throw new RangeError(`special token ${s.content} id ${s.id} >= vocab size ${vocabSize}`);
  const regular = vocabSize - specials.length;
  if (regular < 256) throw new RangeError(`vocab size ${vocabSize} leaves no room for the 256 byte tokens`);
  let nextId = 0;
  const takeId = (): number => {
    while (specialIds.has(nextId)) nextId++;
    return nextId++;
  };
  const vocab: Record<string, number> = {};
  const reserved = new Set(specials.map((s) => s.content));
  const order = byteOrder();
  for (const b of order) vocab[b2u[b]!] = takeId();
  const merges: string[] = [];
  let need = regular - 256;
  const chars = order.map((b) => b2u[b]!);
  // Two-byte tokens: pairs (i, j) by increasing i + j (common bytes pair first).
  const pairs: string[] = [];
  for (let s = 0; s <= 2 * 255 && need > 0; s++) {
    for (let i = Math.max(0, s - 255); i <= Math.min(255, s) && need > 0; i++) {
      const a = chars[i]!,
        b = chars[s - i]!;
      if (reserved.has(a + b)) continue;
      merges.push(`${a} ${b}`);
      vocab[a + b] = takeId();
      pairs.push(a + b);
      need--;
    }
  }
  // Three-byte tokens: (pair p, byte j) by increasing p + j.
  for (let s = 0; need > 0; s++) {
    for (let p = Math.max(0, s - 255); p <= Math.min(pairs.length - 1, s) && need > 0; p++) {
      const a = pairs[p]!,
        b = chars[s - p]!;
      if (reserved.has(a + b)) continue;
      merges.push(`${a} ${b}`);
      vocab[a + b] = takeId();
      need--;
    }
    if (s > pairs.length + 255) throw new Error('syntheticBpeTokenizer: ran out of merges');
  }
  for (const sp of specials) vocab[sp.content] = sp.id;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s) => ({
      id: s.id,
      content: s.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
