/**
 * The shipped demo model (public/models/demo) loads through the same Hugging Face path as any user
 * checkpoint and reproduces the loss and logits that the PyTorch trainer computed from the same F16 file
 * (tools/pretrain/make_reference.py -> tools/pretrain/reference_demo.json).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from '../engine/cpu/backend';
import { noGrad } from '../engine/tensor';
import { decoderFromWeights } from './decoder';
import { loadHFModel } from './hf';
import { nodeDirSource } from './source';

interface RefCase {
  text: string;
  input_ids: number[];
  mean_loss_next_token: number;
  logits_pos0_first16: number[];
  logits_last_first16: number[];
  argmax_per_position: number[];
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ref = JSON.parse(readFileSync(join(root, 'tools/pretrain/reference_demo.json'), 'utf8')) as { cases: RefCase[] };

describe('demo model vs the PyTorch reference', async () => {
  const { spec, weights } = await loadHFModel(nodeDirSource(join(root, 'public/models/demo')));
  const dec = decoderFromWeights(new CpuBackend({ dtype: 'f32' }), spec, weights, { requiresGrad: false });

  it('is the LLaMA family with grouped-query attention', () => {
    expect(spec.family).toBe('llama');
    expect(spec.layers.length).toBe(8);
    expect(spec.numKvHeads).toBeLessThan(spec.numHeads);
  });

  for (const [i, c] of ref.cases.entries()) {
    it(`case ${i}: loss, logits and argmax match (${c.input_ids.length} tokens)`, () => {
      const T = c.input_ids.length;
      const ids = Int32Array.from(c.input_ids);
      const targets = new Int32Array(T).fill(-100);
      for (let t = 0; t + 1 < T; t++) targets[t] = ids[t + 1]!;
      const { loss, logits } = noGrad(() => ({ loss: dec.loss(ids, targets, 1, T), logits: dec.forward(ids, 1, T) }));
      const l = readSync(loss.storage)[0]!;
      expect(Math.abs(l - c.mean_loss_next_token)).toBeLessThan(1e-4 * Math.abs(c.mean_loss_next_token));
      const V = spec.vocabSize;
      const lg = readSync(logits.storage);
      for (let j = 0; j < 16; j++) {
        expect(lg[j]).toBeCloseTo(c.logits_pos0_first16[j]!, 3);
        // The reference ran on input_ids[:-1], so its last position is our T-2.
        expect(lg[(T - 2) * V + j]).toBeCloseTo(c.logits_last_first16[j]!, 3);
      }
      const argmax: number[] = [];
      for (let t = 0; t + 1 < T; t++) {
        let best = 0;
        for (let v = 1; v < V; v++) if (lg[t * V + v]! > lg[t * V + best]!) best = v;
        argmax.push(best);
      }
      const agree = argmax.filter((a, t) => a === c.argmax_per_position[t]).length;
      // Near-ties between two logits may flip under f32 summation order; anything beyond one is a bug.
      expect(agree).toBeGreaterThanOrEqual(argmax.length - 1);
    });
  }
});
