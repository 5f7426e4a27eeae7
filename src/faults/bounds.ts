/**
 * Sane bounds on model dimensions, checked on config.json's raw values BEFORE anything is sized from them
 * (a `num_hidden_layers: 1e9` would otherwise build a billion layer records, then allocate), and on a
 * finished ModelSpec (emulator packages carry theirs in emulator.json).
 */
import { LimitError } from './errors';
import { CONFIG_LIMITS } from './limits';
import type { ModelSpec } from '../model/spec';

/** config.json keys of every supported family, by the bound that applies to them. */
const CONFIG_KEYS: Record<string, keyof typeof CONFIG_LIMITS> = {
  n_layer: 'layers',
  num_hidden_layers: 'layers',
  n_embd: 'hiddenSize',
  hidden_size: 'hiddenSize',
  word_embed_proj_dim: 'hiddenSize',
  n_inner: 'intermediateSize',
  intermediate_size: 'intermediateSize',
  ffn_dim: 'intermediateSize',
  vocab_size: 'vocabSize',
  n_head: 'heads',
  num_attention_heads: 'heads',
  num_key_value_heads: 'heads',
  head_dim: 'headDim',
  n_positions: 'maxPositions',
  n_ctx: 'maxPositions',
  max_position_embeddings: 'maxPositions',
};

/** Throws LimitError naming the key, its value and the bound, for the first out-of-bounds dimension. */
export function checkConfigBounds(config: Record<string, unknown>, file = 'config.json'): void {
  for (const [key, bound] of Object.entries(CONFIG_KEYS)) {
    const v = config[key];
    if (typeof v !== 'number') continue; // type errors are the config reader's to name
    const max = CONFIG_LIMITS[bound];
    if (v > max) throw new LimitError(file, `${bound} <= ${max}`, `'${key}' is ${v}, above any supported model`);
  }
}

/** The dimension and parameter-count bounds on a spec (e.g. an emulator package's). */
export function checkSpecBounds(spec: ModelSpec, file: string): void {
  const dims: [string, number, keyof typeof CONFIG_LIMITS][] = [
    ['layers', spec.layers?.length ?? 0, 'layers'],
    ['hiddenSize', spec.hiddenSize, 'hiddenSize'],
    ['intermediateSize', spec.intermediateSize, 'intermediateSize'],
    ['vocabSize', spec.vocabSize, 'vocabSize'],
    ['numHeads', spec.numHeads, 'heads'],
    ['numKvHeads', spec.numKvHeads, 'heads'],
    ['headDim', spec.headDim, 'headDim'],
    ['maxPositions', spec.maxPositions, 'maxPositions'],
  ];
  for (const [name, v, bound] of dims) {
    if (!(Number.isInteger(v) && v > 0))
      throw new LimitError(file, `${bound} <= ${CONFIG_LIMITS[bound]}`, `${name} must be a positive integer, got ${String(v)}`);
    if (v > CONFIG_LIMITS[bound])
      throw new LimitError(file, `${bound} <= ${CONFIG_LIMITS[bound]}`, `${name} is ${v}, above any supported model`);
  }
  // Upper estimate without walking tensors: embeddings + head + per block (q,k,v,o + up,gate,down).
  const d = spec.hiddenSize;
  const est =
    2 * spec.vocabSize * d +
    spec.maxPositions * d +
    spec.layers.length * (4 * d * Math.max(d, spec.numHeads * spec.headDim) + 3 * d * spec.intermediateSize);
  if (est > CONFIG_LIMITS.params) {
    throw new LimitError(
      file,
      `params <= ${CONFIG_LIMITS.params / 1e9} B`,
      `the dimensions describe a model of up to ${(est / 1e9).toFixed(1)} B parameters`,
    );
  }
}

/** One warning for many unexpected tensors (a header of a million names must not print a million lines). */
export function summarizeUnexpected(file: string, names: readonly string[], show = 5): string[] {
  if (names.length <= show) return names.map((n) => `${file}: unexpected tensor '${n}' ignored`);
  return [
    `${file}: ${names.length} unexpected tensors ignored (${names
      .slice(0, show)
      .map((n) => `'${n}'`)
      .join(', ')}, …)`,
  ];
}
