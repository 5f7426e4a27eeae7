import { describe, expect, it } from 'vitest';
import { middleKeptFraction, paramCounts, parseSplit, splitParamCounts } from './params';
import { randomModel, smallSpec } from './random-model';
import { specFromHFConfig } from './hf';
import type { ModelSpec } from './spec';

describe('parameter counts', () => {
  it('GPT-2 small has the well-known 124,439,808 parameters', () => {
    const s = specFromHFConfig({ model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 });
    const p = paramCounts(s);
    expect(p.total).toBe(124_439_808);
    expect(p.embeddings).toBe(50257 * 768 + 1024 * 768);
    expect(p.lmHead).toBe(0);
    expect(p.blocks[0]!.attention).toBe(4 * 768 * 768 + 4 * 768);
    expect(p.blocks[0]!.mlp).toBe(2 * 768 * 3072 + 3072 + 768);
    expect(p.blocks[0]!.norms).toBe(4 * 768);
  });

  it('Qwen2.5-0.5B has 494,032,768 parameters (tied, q/k/v bias, GQA)', () => {
    const s = specFromHFConfig({
      model_type: 'qwen2',
      vocab_size: 151936,
      hidden_size: 896,
      intermediate_size: 4864,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      max_position_embeddings: 32768,
      tie_word_embeddings: true,
      rope_theta: 1e6,
      rms_norm_eps: 1e-6,
    });
    expect(paramCounts(s).total).toBe(494_032_768);
  });

  it('matches the sum of tensor sizes of a random model, with ranks and pruned widths', () => {
    const base = smallSpec('llama', { numLayers: 4 });
    const spec: ModelSpec = {
      ...base,
      layers: base.layers.map((l, i) => (i === 2 ? { source: 2, ranks: { q: 3, down: 5 }, mlpWidth: 20 } : l)),
    };
    const w = randomModel(spec, 1);
    const p = paramCounts(spec);
    let sum = 0;
    for (const t of w.values()) sum += t.data.length;
    expect(p.total).toBe(sum);
    const b = p.blocks[2]!;
    // q: 32x3 + 3x32; k, v: 16x32 each; o: 32x32; up/gate: 20x32; down: 32x5 + 5x20
    expect(b.attention).toBe(32 * 3 + 3 * 32 + 2 * 16 * 32 + 32 * 32);
    expect(b.mlp).toBe(2 * 20 * 32 + 32 * 5 + 5 * 20);
    const sp = splitParamCounts(spec, 1, 1);
    expect(sp.middle).toBe(p.blocks[1]!.total + p.blocks[2]!.total);
    expect(sp.adapters).toBe(p.blocks[0]!.total + p.blocks[3]!.total);
    expect(sp.frozen + sp.adapters + sp.middle).toBe(p.total);
    expect(middleKeptFraction(base, spec, 1, 1)).toBeLessThan(1);
    expect(middleKeptFraction(base, base, 1, 1)).toBe(1);
    expect(() => splitParamCounts(spec, 3, 2)).toThrow(/does not fit/);
    expect(parseSplit('2:3')).toEqual({ l: 2, r: 3 });
    expect(() => parseSplit('2-3')).toThrow();
  });
});
