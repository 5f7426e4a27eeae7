/**
 * ModelSpec: the one decoder definition every Hugging Face family maps onto (GPT-2, OPT, LLaMA/Qwen2),
 * plus the two structural edits compression makes: low-rank (two-factor) linears and pruned MLP widths,
 * and dropped blocks (the OT `drop` baseline) via `layers[i].source`.
 *
 * Tensor naming: inside the engine every family uses one canonical naming (below); `hf.ts` maps Hugging
 * Face names (and GPT-2's fused, transposed Conv1D `c_attn`) to it on load and back on save, so real
 * checkpoints load unchanged and exports use the base model's own names.
 *   embed.weight [V,d]          pos.weight [P,d] (learned positions only)
 *   layers.{i}.ln1.weight/.bias  layers.{i}.attn.{q,k,v,o}.weight [out,in] (+ .bias)
 *   layers.{i}.ln2.weight/.bias  layers.{i}.mlp.{up,gate,down}.weight (+ .bias; gate only when gated)
 *   norm.weight/.bias           lm_head.weight [V,d] (absent when tied to embed)
 * A low-rank linear `X.weight` (W ≈ A·B, W is [out,in]) is stored as `X.weight_a` [out,rank] and
 * `X.weight_b` [rank,in]; its bias stays `X.bias`. A pruned MLP keeps its names with smaller shapes.
 */

export type Family = 'gpt2' | 'opt' | 'llama';
export type NormKind = 'layernorm' | 'rmsnorm';
export type ActivationKind = 'gelu_tanh' | 'gelu_erf' | 'relu' | 'silu';
export type AttnProj = 'q' | 'k' | 'v' | 'o';
export type MlpProj = 'up' | 'gate' | 'down';

export interface LayerSpec {
  /** Index of this block in the original (uncompressed) model. */
  source: number;
  /** Rank of each attention projection stored as two factors; absent = dense. */
  ranks: Partial<Record<AttnProj | MlpProj, number>>;
  /** MLP intermediate width of this block (== intermediateSize unless pruned). */
  mlpWidth: number;
}

export interface ModelSpec {
  family: Family;
  /** `model_type` from config.json, kept for round-tripping (e.g. 'qwen2', 'llama', 'opt', 'gpt2'). */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  norm: NormKind;
  normEps: number;
  activation: ActivationKind;
  /** SwiGLU-style MLP (gate and up projections). */
  gatedMlp: boolean;
  positions: 'learned' | 'rope';
  /** OPT's learned positions start at index 2. */
  positionOffset: number;
  ropeTheta: number;
  /** q/k/v biases (GPT-2, OPT, Qwen2). */
  qkvBias: boolean;
  /** Output projection bias (GPT-2, OPT). */
  oBias: boolean;
  /** MLP biases (GPT-2, OPT). */
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  layers: LayerSpec[];
}

export function numLayers(spec: ModelSpec): number {
  return spec.layers.length;
}

export function denseLayers(n: number, intermediateSize: number): LayerSpec[] {
  return Array.from({ length: n }, (_, i) => ({ source: i, ranks: {}, mlpWidth: intermediateSize }));
}
