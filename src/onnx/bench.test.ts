// Smoke test of the `gradot bench` ort section on a tiny model: both sides score the same batch (the
// log-likelihoods agree) and the throughput numbers are finite. Timings themselves are never asserted.
import { describe, expect, it } from 'vitest';
import { randomTestModel, smallSpec } from '../model/random-model';
import { benchEvalThroughput } from './bench';

describe('benchEvalThroughput', () => {
  it('runs ours and onnxruntime on the same batch and reports a ratio', async () => {
    const spec = smallSpec('llama', { numLayers: 2, maxPositions: 16 });
    const r = await benchEvalThroughput({ spec, weights: randomTestModel(spec, 3), name: 'tiny' }, { batch: 2, seq: 16, reps: 1 });
    expect(r.json.maxRelDiff).toBeLessThan(1e-5);
    expect(Number.isFinite(r.json.ratio) && r.json.ratio > 0).toBe(true);
    expect(r.text).toContain('ratio ours/ort');
  });
});
