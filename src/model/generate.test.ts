import { describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from '../engine/cpu/backend';
import { Rng } from '../engine/random';
import { noGrad } from '../engine/tensor';
import { decoderFromWeights } from './decoder';
import { argmax, generate, sampleProbs, sampleToken, topKIds } from './generate';
import { randomModel, smallSpec } from './random-model';

function model(family: 'llama' | 'gpt2' | 'opt' = 'llama') {
  const spec = smallSpec(family, { maxPositions: 16 });
  return decoderFromWeights(new CpuBackend({ dtype: 'f32' }), spec, randomModel(spec, 5, { std: 0.3 }));
}

describe('generate', () => {
  it('lastLogits equals the last row of forward', () => {
    const dec = model();
    const ids = Int32Array.from([3, 9, 1, 4, 7, 2, 8, 5]);
    const V = dec.spec.vocabSize;
    const full = noGrad(() => readSync(dec.forward(ids, 2, 4).storage));
    const last = noGrad(() => readSync(dec.lastLogits(ids, 2, 4).storage));
    for (let b = 0; b < 2; b++) {
      for (let v = 0; v < V; v++) expect(last[b * V + v]).toBeCloseTo(full[(b * 4 + 3) * V + v]!, 6);
    }
  });

  it('greedy decoding is the argmax of a full forward at every step, and crops to the position window', async () => {
    for (const fam of ['llama', 'gpt2', 'opt'] as const) {
      const dec = model(fam);
      const prompt = [1, 2, 3, 4, 5];
      const r = await generate(dec, prompt, { maxNewTokens: 14 }); // runs past maxPositions = 16
      expect(r.tokens.length).toBe(14);
      expect(r.stop).toBe('length');
      const seq = [...prompt];
      for (let i = 0; i < 14; i++) {
        const ctx = Int32Array.from(seq.slice(-16));
        const logits = noGrad(() => readSync(dec.forward(ctx, 1, ctx.length).storage));
        const V = dec.spec.vocabSize;
        const next = argmax(logits.subarray((ctx.length - 1) * V));
        expect(r.tokens[i], `${fam} step ${i}`).toBe(next);
        seq.push(next);
      }
    }
  });

  it('sampling is reproducible from the seed, top-k 1 is greedy, eos stops', async () => {
    const dec = model();
    const a = await generate(dec, [1, 2], { maxNewTokens: 10, temperature: 1.5, seed: 42 });
    const b = await generate(dec, [1, 2], { maxNewTokens: 10, temperature: 1.5, seed: 42 });
    const c = await generate(dec, [1, 2], { maxNewTokens: 10, temperature: 1.5, seed: 43 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
    const g = await generate(dec, [1, 2], { maxNewTokens: 10 });
    const k1 = await generate(dec, [1, 2], { maxNewTokens: 10, temperature: 2, topK: 1, seed: 7 });
    expect(k1.tokens).toEqual(g.tokens);
    const streamed: number[] = [];
    const e = await generate(dec, [1, 2], { maxNewTokens: 10, eosTokenId: g.tokens[3], onToken: (id) => streamed.push(id) });
    const firstEos = g.tokens.indexOf(g.tokens[3]!);
    expect(e.stop).toBe('eos');
    expect(Array.from(e.tokens)).toEqual(Array.from(g.tokens.slice(0, firstEos + 1)));
    expect(streamed).toEqual(Array.from(e.tokens));
  });

  it('sampleToken draws from softmax(logits / temperature) restricted to the top k', () => {
    const row = [0.5, 2.0, -1.0, 1.0, 1.9, -3];
    expect(topKIds(row, 3)).toEqual([1, 4, 3]);
    const rng = new Rng(1);
    const n = 40_000;
    for (const [temperature, topK] of [
      [1, 0],
      [0.7, 3],
    ] as const) {
      const ids = topKIds(row, topK);
      const p = sampleProbs(row, ids, temperature);
      const counts = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const t = sampleToken(row, { temperature, topK }, rng);
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      for (const t of counts.keys()) expect(ids).toContain(t);
      ids.forEach((id, j) => {
        const freq = (counts.get(id) ?? 0) / n;
        // 5 binomial standard deviations
        expect(Math.abs(freq - p[j]!)).toBeLessThan(5 * Math.sqrt((p[j]! * (1 - p[j]!)) / n) + 1e-9);
      });
    }
  });
});
