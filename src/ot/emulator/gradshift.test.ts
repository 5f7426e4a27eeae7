import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights } from '../../model/decoder';
import { randomTestModel, smallSpec } from '../../model/random-model';
import { compressModel } from './compress';
import { adapterGradientShift, adapterParamPairs } from './gradshift';

describe('adapterGradientShift', () => {
  const spec = smallSpec('gpt2', { numLayers: 5, hiddenSize: 16, numHeads: 2 });
  const weights = randomTestModel(spec, 4);
  const be = new CpuBackend({ dtype: 'f64' });
  const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 5 + 1) % spec.vocabSize);
  const targets = Int32Array.from(ids, (_, i) => (i % 6 === 5 ? -100 : ids[i + 1]!));
  const batch = { ids, targets, B: 2, T: 6 };

  it('is 0 for an identical emulator and pairs top blocks from the top', async () => {
    const full = decoderFromWeights(be, spec, weights);
    const same = decoderFromWeights(be, spec, weights);
    const r = await adapterGradientShift(full, same, [batch], { bottom: 1, top: 1 });
    expect(r.cosineDistance).toBeLessThan(1e-12);
    expect(r.fullLoss).toBe(r.emulatorLoss);
    const dropped = compressModel(spec, weights, { method: 'drop', keep: 0.34, split: { bottom: 1, top: 1 } });
    const emu = decoderFromWeights(be, dropped.spec, dropped.weights);
    const pairs = adapterParamPairs(full, emu, { bottom: 1, top: 1 });
    expect(pairs.find(([a]) => a === 'layers.4.attn.q.weight')).toEqual([
      'layers.4.attn.q.weight',
      `layers.${dropped.spec.layers.length - 1}.attn.q.weight`,
    ]);
    const d = await adapterGradientShift(full, emu, [batch], { bottom: 1, top: 1 });
    expect(d.cosineDistance).toBeGreaterThan(1e-6);
    expect(d.adapterParams).toBe(r.adapterParams);
    // Parameters are left as they were (frozen).
    for (const t of full.params.values()) expect(t.requiresGrad).toBe(false);
  });
});
