import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../engine/cpu/backend';
import { randomTestModel, smallSpec } from '../model/random-model';
import { buildEmulator } from '../ot/emulator/package';
import { NonFiniteError } from './errors';
import { checkFiniteStats, checkFiniteTensors, firstNonFinite } from './finite';

describe('non-finite checks', () => {
  it('find NaN, +Inf and -Inf, name the tensor, count and first index', () => {
    expect(firstNonFinite(new Float32Array([1, 2, 3]))).toBe(-1);
    for (const bad of [NaN, Infinity, -Infinity]) expect(firstNonFinite(new Float32Array([0, 1, bad, 2]))).toBe(2);
    expect(() => checkFiniteTensors([['a', { data: new Float32Array([1, NaN, Infinity]) }]], 'model')).toThrow(
      /model \[a\]: 2 of 3 values are not finite \(first: NaN at index 1\)/,
    );
    const stats = new Map([['layers.1.attn.q', { inDim: 2, outDim: 2, A: new Float64Array([1, Infinity]), G: new Float64Array(4) }]]);
    expect(() => checkFiniteStats(stats, 'tiny')).toThrow(NonFiniteError);
    expect(() => checkFiniteStats(stats, 'tiny')).toThrow(/support statistics layers\.1\.attn\.q\.A hold 1 non-finite values/);
  });

  it('compress stops on support statistics that overflow (finite weights, huge activations)', async () => {
    const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 16, numHeads: 2, vocabSize: 64, maxPositions: 16 });
    const w = randomTestModel(spec, 3);
    // Finite but enormous: the middle block's activations overflow f32.
    for (const k of ['layers.1.mlp.up.weight', 'layers.1.mlp.gate.weight', 'layers.1.mlp.down.weight', 'layers.0.mlp.down.weight']) {
      const t = w.get(k)!;
      for (let i = 0; i < t.data.length; i++) t.data[i]! *= 1e18;
    }
    const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 1) % 64);
    const targets = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 6) % 64);
    const err = await buildEmulator(spec, w, {
      method: 'gradot',
      keep: 0.5,
      split: { bottom: 1, top: 1 },
      backend: new CpuBackend(),
      modelId: 'huge',
      support: [{ ids, targets, B: 2, T: 8 }],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect(String(err)).toMatch(/huge: the support statistics .* non-finite values/);
  });
});
