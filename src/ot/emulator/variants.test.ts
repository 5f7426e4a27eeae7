import { describe, expect, it } from 'vitest';
import { smallSpec } from '../../model/random-model';
import { COMPRESSION_METHODS } from './budget';
import { compressionLayout, GRADOT_DEFAULTS } from './scorer';
import { METHOD_VARIANTS, OT_METHOD_NAMES, resolveMethod } from './variants';

describe('method variants', () => {
  it('gradot-paper resolves to gradot with the paper layout (SCP MLP channels, uniform ranks)', () => {
    expect(resolveMethod('gradot-paper')).toEqual({ name: 'gradot-paper', method: 'gradot', mlp: 'scp', rankAllocation: 'uniform' });
    // The variant differs from gradot's own defaults in both readings, else it would compare nothing.
    expect(METHOD_VARIANTS['gradot-paper']!.mlp).not.toBe(GRADOT_DEFAULTS.mlp);
    expect(METHOD_VARIANTS['gradot-paper']!.rankAllocation).not.toBe(GRADOT_DEFAULTS.rankAllocation);
  });

  it('the layout built for gradot-paper is the paper one, for plain gradot the defaults', () => {
    const spec = smallSpec('llama', { numLayers: 6, hiddenSize: 32, numHeads: 4, vocabSize: 64, maxPositions: 16 });
    const split = { bottom: 1, top: 1 };
    const v = resolveMethod('gradot-paper')!;
    const paper = compressionLayout(spec, { method: v.method, keep: 0.4, split, mlp: v.mlp!, rankAllocation: v.rankAllocation! });
    expect(paper).toMatchObject({ gradot: true, mlpMode: 'scp', allocation: 'uniform' });
    // SCP prunes MLP channels: the plan narrows the middle MLPs instead of factoring them.
    expect(paper.plan.layers.every((l) => l.mlpWidth < spec.intermediateSize)).toBe(true);
    // Our default factors the MLP (DRD) and keeps every channel.
    expect(
      compressionLayout(spec, { method: 'gradot', keep: 0.4, split }).plan.layers.every((l) => l.mlpWidth === spec.intermediateSize),
    ).toBe(true);
    const ours = compressionLayout(spec, { method: 'gradot', keep: 0.4, split });
    expect(ours).toMatchObject({ gradot: true, mlpMode: GRADOT_DEFAULTS.mlp, allocation: GRADOT_DEFAULTS.rankAllocation });
  });

  it('plain method names resolve to themselves; unknown names to null', () => {
    for (const m of COMPRESSION_METHODS) expect(resolveMethod(m)).toEqual({ name: m, method: m });
    expect(OT_METHOD_NAMES).toEqual([...COMPRESSION_METHODS, 'gradot-paper']);
    expect(resolveMethod('gradot-pape')).toBeNull();
    expect(resolveMethod('toString')).toBeNull();
  });
});
