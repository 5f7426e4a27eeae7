import { describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from '../../engine/cpu/backend';
import { backward } from '../../engine/tensor';
import { countTargets } from '../../engine/ops';
import { decoderFromWeights } from '../../model/decoder';
import { randomTestModel, smallSpec } from '../../model/random-model';
import { KfacAccumulator } from './kfac';
import { blockLinearNames, supportPass, type SupportBatch } from './support';

function makeBatches(vocab: number, seed: number, n: number, B: number, T: number): SupportBatch[] {
  let s = seed;
  const next = () => { s = (s * 1103515245 + 12345) % 2147483648; return s; };
  return Array.from({ length: n }, (_, k) => {
    const ids = Int32Array.from({ length: B * T }, () => next() % vocab);
    // Shifted targets, last position ignored; batch 1 also ignores a few more (unequal N_b).
    const targets = Int32Array.from({ length: B * T }, (_, i) => ((i + 1) % T === 0 || (k === 1 && i % 3 === 0) ? -100 : ids[i + 1]));
    return { ids, targets, B, T };
  });
}

describe('supportPass', () => {
  for (const family of ['gpt2', 'llama'] as const) {
    it(`${family}: backend-streamed stats equal a host KFAC accumulation of the hooked x and dy; g matches finite differences`, async () => {
      const be = new CpuBackend({ dtype: 'f64' });
      const spec = smallSpec(family, { numLayers: 4, hiddenSize: 16, numHeads: 2 });
      const weights = randomTestModel(spec, 7);
      const dec = decoderFromWeights(be, spec, weights);
      const batches = makeBatches(spec.vocabSize, 3, 3, 2, 6);
      const middle = [1, 2];
      const res = await supportPass(dec, batches, middle);
      const names = blockLinearNames(dec, middle);
      expect([...res.stats.keys()]).toEqual(names);
      expect(res.batches).toBe(3);
      expect(res.digest).toMatch(/^[0-9a-f]{64}$/);
      // Parameters are frozen again afterwards.
      for (const t of dec.params.values()) expect(t.requiresGrad).toBe(false);

      // Host reference with the same hooks.
      const host = new Map(names.map((n) => [n, null as KfacAccumulator | null]));
      dec.setTrainable((n) => names.some((l) => n.startsWith(l + '.')));
      let lossSum = 0, tokSum = 0;
      for (const b of batches) {
        const N = countTargets(b.targets);
        const xs = new Map<string, Float64Array>();
        const loss = dec.loss(b.ids, b.targets, b.B, b.T, {
          hooks: {
            filter: (n) => host.has(n),
            onInput: (n, x) => { xs.set(n, Float64Array.from(readSync(x.storage))); },
            onOutputGrad: (n, dy) => {
              const x = xs.get(n)!;
              const rows = dy.shape[0];
              let acc = host.get(n);
              if (!acc) { acc = new KfacAccumulator(x.length / rows, dy.shape[1]); host.set(n, acc); }
              acc.addBatch(x, Float64Array.from(readSync(dy.storage)), rows, N);
            },
          },
        });
        backward(loss);
        lossSum += (await loss.item()) * N;
        tokSum += N;
        dec.zeroGrad();
      }
      dec.setTrainable(() => false);
      expect(res.meanLoss).toBeCloseTo(lossSum / tokSum, 12);
      for (const n of names) {
        const ref = host.get(n)!.finish();
        const got = res.stats.get(n)!;
        for (const k of ['A', 'G', 'g', 'gBias', 'meanX'] as const) {
          const a = got[k], r = ref[k];
          expect(a.length).toBe(r.length);
          let err = 0, mag = 0;
          for (let i = 0; i < a.length; i++) { err = Math.max(err, Math.abs(a[i] - r[i])); mag = Math.max(mag, Math.abs(r[i])); }
          expect(err).toBeLessThanOrEqual(1e-10 * Math.max(mag, 1e-3));
        }
      }

      // g is the gradient of the support-set mean token loss: finite differences on two entries.
      const meanLoss = async (w: typeof weights) => {
        const d2 = decoderFromWeights(be, spec, w);
        let s = 0, t = 0;
        for (const b of batches) {
          const N = countTargets(b.targets);
          s += (await d2.loss(b.ids, b.targets, b.B, b.T).item()) * N;
          t += N;
        }
        return s / t;
      };
      const target = `${names[0]}`;
      for (const idx of [0, 5]) {
        const h = 1e-5;
        const bump = (delta: number) => {
          const w = new Map(weights);
          const t = w.get(`${target}.weight`)!;
          const data = t.data.slice();
          data[idx] += delta;
          w.set(`${target}.weight`, { ...t, data });
          return w;
        };
        // Weights are f32 on the host: use the actual bumped values for the step.
        const wp = bump(h), wm = bump(-h);
        const step = wp.get(`${target}.weight`)!.data[idx] - wm.get(`${target}.weight`)!.data[idx];
        const fd = ((await meanLoss(wp)) - (await meanLoss(wm))) / step;
        expect(Math.abs(res.stats.get(target)!.g[idx] - fd)).toBeLessThan(1e-6);
      }
    });
  }

  it('rejects support data without loss tokens', async () => {
    const be = new CpuBackend({ dtype: 'f64' });
    const spec = smallSpec('gpt2', { numLayers: 3, hiddenSize: 16, numHeads: 2 });
    const dec = decoderFromWeights(be, spec, randomTestModel(spec, 1));
    const b = { ids: new Int32Array(4), targets: new Int32Array(4).fill(-100), B: 1, T: 4 };
    await expect(supportPass(dec, [b], [1])).rejects.toThrow(/no loss tokens/);
  });
});
