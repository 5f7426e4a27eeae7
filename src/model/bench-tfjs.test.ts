import { describe, expect, it } from 'vitest';
import { benchTrainStep } from './bench-train';
import { benchTfjsTrainStep } from './bench-tfjs';

describe('TensorFlow.js peer of the training-step bench', () => {
  it('trains the same decoder: first-step and final losses match ours', async () => {
    const cfg = { layers: 2, hidden: 32, heads: 4, kvHeads: 2, intermediate: 48, vocab: 40, batch: 2, seq: 8, steps: 2, warmup: 1 };
    const ours = await benchTrainStep(cfg);
    const peer = await benchTfjsTrainStep(cfg);
    if (!peer.ok) throw new Error(peer.skipped);
    expect(peer.result.params).toBe(ours.params);
    expect(Math.abs(peer.result.firstLoss - ours.firstLoss!)).toBeLessThan(1e-4);
    // After three AdamW steps on the same tokens the two still agree (same model, same optimizer).
    expect(Math.abs(peer.result.loss - ours.loss)).toBeLessThan(2e-3);
    expect(peer.result.tokensPerSecond).toBeGreaterThan(0);
  });
});
