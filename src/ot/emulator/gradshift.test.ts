import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights } from '../../model/decoder';
import { randomTestModel, smallSpec } from '../../model/random-model';
import { compressModel } from './compress';
import { backward, tidy } from '../../engine/tensor';
import { adapterGradientShift, adapterParamPairs, backwardByBlocks } from './gradshift';

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

  for (const dtype of ['f32', 'f64'] as const) {
    it(`equals 1 - cos of the concatenated adapter gradients, computed separately, per batch (${dtype})`, async () => {
      const b2 = new CpuBackend({ dtype });
      const full = decoderFromWeights(b2, spec, weights);
      const dropped = compressModel(spec, weights, { method: 'drop', keep: 0.34, split: { bottom: 1, top: 1 } });
      const emu = decoderFromWeights(b2, dropped.spec, dropped.weights);
      const pairs = adapterParamPairs(full, emu, { bottom: 1, top: 1 });
      const other = { ids: ids.map((v) => (v * 7 + 3) % spec.vocabSize), targets, B: 2, T: 6 };
      const grads = async (dec: typeof full, names: string[], bt: typeof batch) => {
        const set = new Set(names);
        dec.setTrainable((n) => set.has(n));
        dec.zeroGrad();
        tidy(() => backward(dec.loss(bt.ids, bt.targets, bt.B, bt.T)));
        const out: number[] = [];
        for (const n of names) out.push(...(await dec.params.get(n)!.grad!.read()));
        dec.zeroGrad();
        dec.setTrainable(() => false);
        return out;
      };
      const want: number[] = [];
      for (const bt of [batch, other]) {
        const gf = await grads(
          full,
          pairs.map((p) => p[0]),
          bt,
        );
        const ge = await grads(
          emu,
          pairs.map((p) => p[1]),
          bt,
        );
        let dot = 0,
          nf = 0,
          ne = 0;
        for (let i = 0; i < gf.length; i++) {
          dot += gf[i]! * ge[i]!;
          nf += gf[i]! ** 2;
          ne += ge[i]! ** 2;
        }
        want.push(1 - dot / Math.sqrt(nf * ne));
      }
      const r = await adapterGradientShift(full, emu, [batch, other], { bottom: 1, top: 1 });
      // The emulator's gradients are folded as the backward finishes them (top blocks first), so the sums
      // run in another order than over the concatenated vector: equal up to double rounding.
      expect(r.perBatch.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(Math.abs(r.perBatch[i]! - want[i]!)).toBeLessThan(1e-12 * Math.abs(want[i]!));
      expect(want[0]).not.toBe(want[1]);
    });
  }

  for (const fam of ['gpt2', 'llama'] as const) {
    it(`block by block gives the whole-graph loss and gradients bit for bit (${fam})`, async () => {
      const sp = smallSpec(fam, { numLayers: 4, hiddenSize: 16, numHeads: 2 });
      const w = randomTestModel(sp, 9);
      const f32 = new CpuBackend();
      const trainable = (n: string) => /^layers\.(0|3)\./.test(n);
      const run = async (byBlocks: boolean) => {
        const dec = decoderFromWeights(f32, sp, w);
        dec.setTrainable(trainable);
        let loss: number;
        if (byBlocks) loss = await backwardByBlocks(dec, batch);
        else {
          const l = tidy(() => {
            const l = dec.loss(batch.ids, batch.targets, batch.B, batch.T);
            backward(l, { release: true });
            return l;
          });
          loss = await l.item();
        }
        const grads = new Map<string, Float32Array>();
        for (const [n, t] of dec.params) if (t.grad) grads.set(n, (await t.grad.read()) as Float32Array);
        return { loss, grads };
      };
      const whole = await run(false);
      const blocks = await run(true);
      expect(blocks.loss).toBe(whole.loss);
      expect([...blocks.grads.keys()]).toEqual([...whole.grads.keys()]);
      expect(whole.grads.size).toBeGreaterThan(4);
      for (const [n, g] of whole.grads) {
        expect(Buffer.from(blocks.grads.get(n)!.buffer).equals(Buffer.from(g.buffer)), n).toBe(true);
      }
    });
  }
});
