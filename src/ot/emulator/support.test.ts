import { describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from '../../engine/cpu/backend';
import { backward } from '../../engine/tensor';
import { countTargets } from '../../engine/ops';
import { decoderFromWeights } from '../../model/decoder';
import { randomTestModel, smallSpec } from '../../model/random-model';
import { KfacAccumulator } from './kfac';
import { blockLinearNames, planSupportGroups, supportPass, type SupportBatch } from './support';
import { compressModel, GradotScorer } from './compress';

function makeBatches(vocab: number, seed: number, n: number, B: number, T: number): SupportBatch[] {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s;
  };
  return Array.from({ length: n }, (_, k) => {
    const ids = Int32Array.from({ length: B * T }, () => next() % vocab);
    // Shifted targets, last position ignored; batch 1 also ignores a few more (unequal N_b).
    const targets = Int32Array.from({ length: B * T }, (_, i) => ((i + 1) % T === 0 || (k === 1 && i % 3 === 0) ? -100 : ids[i + 1]!));
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
      let lossSum = 0,
        tokSum = 0;
      for (const b of batches) {
        const N = countTargets(b.targets);
        const xs = new Map<string, Float64Array>();
        const loss = dec.loss(b.ids, b.targets, b.B, b.T, {
          hooks: {
            filter: (n) => host.has(n),
            onInput: (n, x) => {
              xs.set(n, Float64Array.from(readSync(x.storage)));
            },
            onOutputGrad: (n, dy) => {
              const x = xs.get(n)!;
              const rows = dy.shape[0]!;
              let acc = host.get(n);
              if (!acc) {
                acc = new KfacAccumulator(x.length / rows, dy.shape[1]!);
                host.set(n, acc);
              }
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
          const a = got[k],
            r = ref[k];
          expect(a.length).toBe(r.length);
          let err = 0,
            mag = 0;
          for (let i = 0; i < a.length; i++) {
            err = Math.max(err, Math.abs(a[i]! - r[i]!));
            mag = Math.max(mag, Math.abs(r[i]!));
          }
          expect(err).toBeLessThanOrEqual(1e-10 * Math.max(mag, 1e-3));
        }
      }

      // g is the gradient of the support-set mean token loss: finite differences on two entries.
      const meanLoss = async (w: typeof weights) => {
        const d2 = decoderFromWeights(be, spec, w);
        let s = 0,
          t = 0;
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
          data[idx]! += delta;
          w.set(`${target}.weight`, { ...t, data });
          return w;
        };
        // Weights are f32 on the host: use the actual bumped values for the step.
        const wp = bump(h),
          wm = bump(-h);
        const step = wp.get(`${target}.weight`)!.data[idx]! - wm.get(`${target}.weight`)!.data[idx]!;
        const fd = ((await meanLoss(wp)) - (await meanLoss(wm))) / step;
        expect(Math.abs(res.stats.get(target)!.g[idx]! - fd)).toBeLessThan(1e-6);
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

describe('supportPass block groups (memory budget)', () => {
  for (const family of ['gpt2', 'qwen2'] as const) {
    it(`${family}: one block per group gives bit-identical statistics and kept sets to all blocks at once`, async () => {
      const be = new CpuBackend({ dtype: 'f32' });
      const spec = smallSpec(family, { numLayers: 6, hiddenSize: 32, numHeads: 4 });
      const weights = randomTestModel(spec, 11);
      const dec = decoderFromWeights(be, spec, weights);
      const batches = makeBatches(spec.vocabSize, 5, 3, 2, 8);
      const middle = [1, 2, 3, 4];
      const all = await supportPass(dec, batches, middle, { memoryBudget: Infinity });
      const grouped = await supportPass(dec, batches, middle, { memoryBudget: 1 });
      expect(all.groups).toEqual([middle]);
      expect(grouped.groups).toEqual([[4], [3], [2], [1]]);
      expect(grouped.meanLoss).toBe(all.meanLoss);
      expect(grouped.digest).toBe(all.digest);
      expect([...grouped.stats.keys()]).toEqual([...all.stats.keys()]);
      for (const [n, s] of all.stats) {
        const t = grouped.stats.get(n)!;
        for (const k of ['A', 'G', 'g', 'gBias', 'meanX'] as const) expect(Array.from(t[k])).toEqual(Array.from(s[k]));
        expect(t.rows).toBe(s.rows);
      }
      // q, k and v share one input statistic (same array), as do up and gate.
      expect(all.stats.get('layers.2.attn.k')!.A).toBe(all.stats.get('layers.2.attn.q')!.A);
      if (spec.gatedMlp) expect(all.stats.get('layers.2.mlp.gate')!.A).toBe(all.stats.get('layers.2.mlp.up')!.A);

      // Streaming the grouped statistics into a scorer (factors dropped: recomputed) = compressing with all of them.
      const opts = { method: 'gradot' as const, keep: 0.5, split: { bottom: 1, top: 1 } };
      const ref = compressModel(spec, weights, opts, all.stats);
      const scorer = new GradotScorer(spec, weights, opts, 0);
      await supportPass(dec, batches, middle, { memoryBudget: 1, linears: scorer.needed, onStats: (n, s) => scorer.consume(n, s) });
      const got = compressModel(spec, weights, opts, undefined, scorer);
      expect(got.layers.map((l) => l.keptComponents)).toEqual(ref.layers.map((l) => l.keptComponents));
      for (const [n, t] of ref.weights) expect(Array.from(got.weights.get(n)!.data)).toEqual(Array.from(t.data));
      for (const mlp of ['scp', 'drd'] as const) {
        const o2 = { ...opts, mlp, rankAllocation: 'uniform' as const };
        const r2 = compressModel(spec, weights, o2, all.stats);
        const sc2 = new GradotScorer(spec, weights, o2);
        for (const n of sc2.needed) sc2.consume(n, grouped.stats.get(n)!);
        const g2 = compressModel(spec, weights, o2, undefined, sc2);
        expect(g2.layers.map((l) => [l.keptComponents, l.keptChannels])).toEqual(r2.layers.map((l) => [l.keptComponents, l.keptChannels]));
      }
    });
  }

  it('recycleStats: arrays handed back to the pass give the same statistics bit for bit, and are reused', async () => {
    const be = new CpuBackend({ dtype: 'f32' });
    // d = dff/2 with a gated MLP: up/gate's G, down's A (dff²) and the attention's A/G (d²) repeat sizes.
    const spec = smallSpec('qwen2', { numLayers: 5, hiddenSize: 32, numHeads: 4 });
    const dec = decoderFromWeights(be, spec, randomTestModel(spec, 21));
    const batches = makeBatches(spec.vocabSize, 9, 3, 2, 8);
    const middle = [1, 2, 3];
    const ref = await supportPass(dec, batches, middle, { memoryBudget: Infinity });
    const copies = new Map<string, Record<string, number[]>>();
    const seen = new Set<Float64Array>();
    let reused = 0;
    const res = await supportPass(dec, batches, middle, {
      memoryBudget: Infinity,
      recycleStats: true,
      onStats: (n, s) => {
        for (const a of [s.G, s.g, s.gBias]) {
          if (seen.has(a)) reused++;
          seen.add(a);
        }
        copies.set(n, {
          A: Array.from(s.A),
          G: Array.from(s.G),
          g: Array.from(s.g),
          gBias: Array.from(s.gBias),
          meanX: Array.from(s.meanX),
        });
      },
    });
    expect(res.stats.size).toBe(0);
    expect(reused).toBeGreaterThan(0);
    expect([...copies.keys()].sort()).toEqual([...ref.stats.keys()].sort());
    for (const [n, s] of ref.stats) {
      const c = copies.get(n)!;
      for (const k of ['A', 'G', 'g', 'gBias', 'meanX'] as const) expect(c[k]).toEqual(Array.from(s[k]));
    }
  });

  it('planSupportGroups packs contiguous blocks under the budget, one block at least', () => {
    expect(planSupportGroups([1, 2, 3, 4], () => 10, 25)).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(planSupportGroups([1, 2, 3], () => 10, 5)).toEqual([[1], [2], [3]]);
    expect(planSupportGroups([1, 2, 5], () => 10, 100)).toEqual([[1, 2], [5]]);
  });
});
