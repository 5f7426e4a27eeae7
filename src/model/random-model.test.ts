import { describe, expect, it } from 'vitest';
import { canonicalShapes } from './hf';
import { gaussian, randomModel, randomTestModel, smallSpec } from './random-model';
import type { ModelSpec } from './spec';

function stats(a: Float32Array): { mean: number; std: number } {
  let s = 0;
  for (const v of a) s += v;
  const mean = s / a.length;
  let q = 0;
  for (const v of a) q += (v - mean) ** 2;
  return { mean, std: Math.sqrt(q / a.length) };
}

describe('random models', () => {
  it('are deterministic in the seed and have every tensor of the spec', () => {
    const spec = smallSpec('gpt2');
    const a = randomModel(spec, 1);
    const b = randomModel(spec, 1);
    const c = randomModel(spec, 2);
    expect([...a.keys()]).toEqual([...canonicalShapes(spec).keys()]);
    for (const [k, t] of a) {
      expect(t.shape).toEqual(canonicalShapes(spec).get(k));
      expect(Array.from(t.data)).toEqual(Array.from(b.get(k)!.data));
    }
    expect(Array.from(a.get('embed.weight')!.data)).not.toEqual(Array.from(c.get('embed.weight')!.data));
  });

  it('GPT-2 init statistics: N(0, 0.02), residual projections scaled, norms 1/0, biases 0', () => {
    const spec = smallSpec('gpt2', { hiddenSize: 64, numLayers: 2 });
    const w = randomModel(spec, 3);
    const e = stats(w.get('embed.weight')!.data);
    expect(Math.abs(e.mean)).toBeLessThan(0.002);
    expect(e.std).toBeGreaterThan(0.019);
    expect(e.std).toBeLessThan(0.021);
    expect(stats(w.get('layers.0.mlp.down.weight')!.data).std).toBeCloseTo(0.02 / 2, 3);
    expect(Array.from(w.get('layers.1.ln1.weight')!.data).every((v) => v === 1)).toBe(true);
    expect(Array.from(w.get('norm.bias')!.data).every((v) => v === 0)).toBe(true);
    expect(Array.from(w.get('layers.0.attn.q.bias')!.data).every((v) => v === 0)).toBe(true);
  });

  it('randomTestModel jitters norms and biases', () => {
    const w = randomTestModel(smallSpec('opt'), 4);
    const ln = stats(w.get('layers.0.ln1.weight')!.data);
    expect(Math.abs(ln.mean - 1)).toBeLessThan(0.1);
    expect(ln.std).toBeGreaterThan(0.03);
    expect(stats(w.get('layers.0.mlp.up.bias')!.data).std).toBeGreaterThan(0.005);
  });

  it('low-rank factors multiply to about the dense std', () => {
    const base = smallSpec('llama', { hiddenSize: 64, numHeads: 4 });
    const spec: ModelSpec = { ...base, layers: [{ source: 0, ranks: { q: 16 }, mlpWidth: base.intermediateSize }, base.layers[1]!] };
    const w = randomModel(spec, 5);
    const A = w.get('layers.0.attn.q.weight_a')!; // [64, 16]
    const B = w.get('layers.0.attn.q.weight_b')!; // [16, 64]
    const W = new Float32Array(64 * 64);
    for (let i = 0; i < 64; i++)
      for (let j = 0; j < 64; j++) {
        let s = 0;
        for (let r = 0; r < 16; r++) s += A.data[i * 16 + r]! * B.data[r * 64 + j]!;
        W[i * 64 + j] = s;
      }
    const st = stats(W).std;
    expect(st).toBeGreaterThan(0.015);
    expect(st).toBeLessThan(0.025);
  });

  it('gaussian sampler has unit variance', () => {
    const g = gaussian(9);
    const a = Float32Array.from({ length: 20000 }, () => g());
    const s = stats(a);
    expect(Math.abs(s.mean)).toBeLessThan(0.03);
    expect(Math.abs(s.std - 1)).toBeLessThan(0.02);
  });

  it('smallSpec families and overrides', () => {
    expect(smallSpec('qwen2')).toMatchObject({
      family: 'llama',
      modelType: 'qwen2',
      qkvBias: true,
      numKvHeads: 2,
      tieWordEmbeddings: true,
    });
    expect(smallSpec('opt')).toMatchObject({ positionOffset: 2, activation: 'relu' });
    const s = smallSpec('gpt2', { numLayers: 5, hiddenSize: 48, numHeads: 6, intermediateSize: 100 });
    expect(s.layers.length).toBe(5);
    expect(s.headDim).toBe(8);
    expect(s.layers[4]).toEqual({ source: 4, ranks: {}, mlpWidth: 100 });
  });
});
