import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights } from '../../model/decoder';
import { splitParamCounts } from '../../model/params';
import { mulberry32, randomTestModel, smallSpec } from '../../model/random-model';
import { allocateRanksGlobally, GLOBAL_RANK_READING, maxUsefulRank, type RankCandidate } from './budget';
import { compressModel, GRADOT_DEFAULTS, MLP_READINGS } from './compress';
import { LAMBDA_READINGS } from './gcs';
import { supportPass, type SupportBatch } from './support';

describe('allocateRanksGlobally', () => {
  it('meets the pool exactly up to one unit, keeps protected components, ranks by score per parameter', () => {
    const r = mulberry32(7);
    for (let trial = 0; trial < 20; trial++) {
      const cands: RankCandidate[] = Array.from({ length: 2 + Math.floor(r() * 5) }, (_, c) => {
        const out = 4 + Math.floor(r() * 12),
          inn = 4 + Math.floor(r() * 12);
        const n = Math.min(out, inn);
        return { key: `m${c}`, out, in: inn, score: Array.from({ length: n }, () => r() * 2 - 0.5), protect: [0] };
      });
      const full = cands.reduce((s, c) => s + maxUsefulRank(c.out, c.in) * (c.out + c.in), 0);
      const pool = Math.floor(full * (0.2 + 0.6 * r()));
      const { kept, used } = allocateRanksGlobally(cands, pool);
      let sum = 0;
      for (const c of cands) {
        const k = kept.get(c.key)!;
        expect(k).toContain(0);
        expect(k.length).toBeLessThanOrEqual(maxUsefulRank(c.out, c.in));
        expect(new Set(k).size).toBe(k.length);
        sum += k.length * (c.out + c.in);
      }
      expect(sum).toBe(used);
      expect(used).toBeLessThanOrEqual(pool);
      // Budget exact up to one unit: every matrix still able to grow has a unit bigger than what is left.
      for (const c of cands) {
        if (kept.get(c.key)!.length < Math.min(maxUsefulRank(c.out, c.in), c.score.length))
          expect(c.out + c.in).toBeGreaterThan(pool - used);
      }
      // Greedy order: an excluded component (matrix not capped) never beats a kept one of the same matrix
      // per parameter unless it did not fit.
      for (const c of cands) {
        const k = new Set(kept.get(c.key)!);
        const keptMin = Math.min(...[...k].filter((i) => i !== 0).map((i) => c.score[i]!));
        const outMax = Math.max(...Array.from(c.score, (s, i) => (k.has(i) ? -Infinity : s)));
        if (Number.isFinite(keptMin) && Number.isFinite(outMax)) expect(keptMin).toBeGreaterThanOrEqual(outMax);
      }
    }
  });

  it('throws when the protected components alone exceed the pool', () => {
    expect(() => allocateRanksGlobally([{ key: 'a', out: 4, in: 4, score: [1, 2, 3, 4], protect: [0, 1] }], 10)).toThrow(/protected/);
  });
});

function batches(vocab: number, n: number, B: number, T: number, seed: number): SupportBatch[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const ids = Int32Array.from({ length: B * T }, () => Math.floor(r() * vocab));
    const targets = Int32Array.from({ length: B * T }, (_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1]!));
    return { ids, targets, B, T };
  });
}

describe('gradot readings: mlp drd, global rank allocation', () => {
  const spec = smallSpec('llama', { numLayers: 5, hiddenSize: 32, numHeads: 4 });
  const weights = randomTestModel(spec, 13);
  const split = { bottom: 1, top: 1 };
  it('every combination meets the budget (stored params = plan, target - after < one unit) and is recorded', async () => {
    const dec = decoderFromWeights(new CpuBackend(), spec, weights);
    const sp = await supportPass(dec, batches(spec.vocabSize, 2, 2, 8, 3), [1, 2, 3]);
    for (const mlp of ['scp', 'drd'] as const) {
      for (const rankAllocation of ['uniform', 'global'] as const) {
        for (const keep of [0.4, 0.6]) {
          const r = compressModel(
            spec,
            weights,
            { method: 'gradot', keep, split, lambdaAttn: 0, lambdaMlp: 0, mlp, rankAllocation },
            sp.stats,
          );
          expect(splitParamCounts(r.spec, 1, 1).middle).toBe(r.plan.paramsAfter);
          let stored = 0;
          for (const [n, t] of r.weights) {
            const b = Number(n.split('.')[1]);
            if (n.startsWith('layers.') && b >= 1 && b < r.spec.layers.length - 1) stored += t.data.length;
          }
          expect(stored).toBe(r.plan.paramsAfter);
          expect(r.plan.paramsAfter).toBeLessThanOrEqual(r.plan.paramsTarget);
          expect(r.plan.paramsTarget - r.plan.paramsAfter).toBeLessThan(Math.max(1, r.plan.granularity));
          expect(r.readings.mlp).toBe(MLP_READINGS[mlp]);
          expect(r.readings.rankAllocation).toBe(rankAllocation === 'global' ? GLOBAL_RANK_READING : undefined);
          if (mlp === 'drd') expect(r.spec.layers[2]!.ranks.up).toBeGreaterThan(0);
          for (const l of r.layers.filter((x) => x.role === 'middle')) {
            for (const [p, k] of Object.entries(l.keptComponents ?? {})) expect(k!.length).toBe((l.ranks as Record<string, number>)[p]);
          }
        }
      }
    }
    // The global reading actually moves ranks between matrices.
    const u = compressModel(
      spec,
      weights,
      { method: 'gradot', keep: 0.5, split, lambdaAttn: 0, lambdaMlp: 0, mlp: 'drd', rankAllocation: 'uniform' },
      sp.stats,
    );
    const g = compressModel(
      spec,
      weights,
      { method: 'gradot', keep: 0.5, split, lambdaAttn: 0, lambdaMlp: 0, mlp: 'drd', rankAllocation: 'global' },
      sp.stats,
    );
    expect(JSON.stringify(g.spec.layers.map((l) => l.ranks))).not.toBe(JSON.stringify(u.spec.layers.map((l) => l.ranks)));
    expect(() => compressModel(spec, weights, { method: 'svd', keep: 0.5, split, mlp: 'drd' })).toThrow(/gradot only/);
    // Defaults: mlp = drd with global ranks; attnKeep implies the SCP layout.
    const d = compressModel(spec, weights, { method: 'gradot', keep: 0.5, split, lambdaAttn: 0, lambdaMlp: 0 }, sp.stats);
    expect(d.readings.mlp).toBe(MLP_READINGS[GRADOT_DEFAULTS.mlp]);
    expect(d.readings.rankAllocation).toBe(GLOBAL_RANK_READING);
    expect(JSON.stringify(d.spec.layers)).toBe(JSON.stringify(g.spec.layers));
    // λ is read balanced unless raw is asked for (at λ = 0 both select alike).
    expect(d.readings.lambda).toBe(LAMBDA_READINGS.balanced);
    expect(
      compressModel(spec, weights, { method: 'gradot', keep: 0.5, split, lambdaAttn: 0, lambdaMlp: 0, lambdaMode: 'raw' }, sp.stats)
        .readings.lambda,
    ).toBe(LAMBDA_READINGS.raw);
    const a = compressModel(spec, weights, { method: 'gradot', keep: 0.5, split, attnKeep: 0.5 }, sp.stats);
    expect(a.readings.mlp).toBe(MLP_READINGS.scp);
    expect(a.spec.layers[2]!.mlpWidth).toBeLessThan(spec.intermediateSize);
  });
});
