import { describe, expect, it } from 'vitest';
import * as ops from '../../engine/ops';
import { backward } from '../../engine/tensor';
import { IGNORE_INDEX } from '../../data/types';
import { targetLogits } from './target-logits';
import { cpuDecoder, tinyModel } from './test-helpers';

describe('targetLogits', () => {
  it('gathered loss and adapter gradients equal the full-logits ones', async () => {
    const { spec, weights } = tinyModel('llama', 2);
    const B = 2,
      T = 8;
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 11 + 2) % 32);
    const targets = Int32Array.from({ length: B * T }, (_, i) => (i % T >= T - 2 ? (i * 3) % 32 : IGNORE_INDEX));
    const run = async (gather: boolean): Promise<{ loss: number; g: Float32Array }> => {
      const dec = cpuDecoder(spec, weights);
      dec.setTrainable((n) => n === 'layers.0.mlp.up.weight');
      const tl = gather ? targetLogits(dec, ids, targets, B, T) : { logits: dec.forward(ids, B, T), targets };
      expect(tl.logits.shape[0]).toBe(gather ? 4 : B * T);
      const l = ops.crossEntropy(tl.logits, tl.targets);
      backward(l);
      return { loss: await l.item(), g: (await dec.params.get('layers.0.mlp.up.weight')!.grad!.read()) as Float32Array };
    };
    const a = await run(true);
    const b = await run(false);
    expect(a.loss).toBeCloseTo(b.loss, 5);
    for (let i = 0; i < a.g.length; i++) expect(a.g[i]).toBeCloseTo(b.g[i]!, 6);
  });
});
