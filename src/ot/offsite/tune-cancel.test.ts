import { describe, expect, it } from 'vitest';
import { tune, type TuneResult } from './tune';
import { cpuDecoder, synthExamples, tinyModel } from './test-helpers';

describe('a cancelled tune', () => {
  it('hands back the adapter after its last finished step on the abort error', async () => {
    const { spec, weights } = tinyModel('llama', 3);
    const dec = cpuDecoder(spec, weights);
    const before = new Map<string, Float32Array>();
    for (const p of dec.namedParams(false)) before.set(p.name, Float32Array.from(await p.tensor.read()));
    const ac = new AbortController();
    const err = await tune(
      dec,
      { train: synthExamples(24, 3), valid: null },
      {
        split: { bottom: 1, top: 1 },
        lr: 3e-3,
        batchSize: 4,
        epochs: 2,
        seed: 1,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.phase === 'train' && p.step === 2) ac.abort();
        },
      },
    ).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).not.toBeNull();
    const partial = (err as { partial?: TuneResult }).partial!;
    expect(partial.steps).toBe(2);
    expect(partial.totalSteps).toBeGreaterThan(2);
    expect(Number.isFinite(partial.trainLoss)).toBe(true);
    // The adapter blocks' weights moved from the model's and equal the decoder's current ones.
    let moved = 0;
    for (const [name, w] of partial.adapter.weights) {
      const b = before.get(name)!;
      expect(w.data.length).toBe(b.length);
      if (w.data.some((x, i) => x !== b[i])) moved++;
    }
    expect(partial.adapter.weights.size).toBeGreaterThan(0);
    expect(moved).toBeGreaterThan(0);
  });
});
