import { describe, expect, it } from 'vitest';
import { denseLayers, type ModelSpec } from '../../model/spec';
import {
  attnLinears,
  blockParamCount,
  maxUsefulRank,
  middleIndices,
  mlpLinears,
  planBudget,
  uniformChooseBlocks,
  type CompressionMethod,
} from './budget';

function gpt2Like(L = 6, d = 64, dff = 256): ModelSpec {
  return {
    family: 'gpt2',
    modelType: 'gpt2',
    vocabSize: 100,
    hiddenSize: d,
    numHeads: 4,
    numKvHeads: 4,
    headDim: d / 4,
    intermediateSize: dff,
    maxPositions: 64,
    norm: 'layernorm',
    normEps: 1e-5,
    activation: 'gelu_tanh',
    gatedMlp: false,
    positions: 'learned',
    positionOffset: 0,
    ropeTheta: 10000,
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    tieWordEmbeddings: true,
    layers: denseLayers(L, dff),
  };
}

function llamaLike(L = 6, d = 48, dff = 128): ModelSpec {
  return {
    ...gpt2Like(L, d, dff),
    family: 'llama',
    modelType: 'qwen2',
    numHeads: 6,
    numKvHeads: 2,
    headDim: 8,
    norm: 'rmsnorm',
    activation: 'silu',
    gatedMlp: true,
    positions: 'rope',
    qkvBias: true,
    oBias: false,
    mlpBias: false,
  };
}

/** Independent parameter count by brute enumeration of tensor shapes. */
function countByHand(spec: ModelSpec, layerIdx: number[], layers = layerIdx.map((i) => spec.layers[i])): number {
  let n = 0;
  for (const l of layers) {
    n += spec.norm === 'layernorm' ? 4 * spec.hiddenSize : 2 * spec.hiddenSize;
    for (const lin of [...attnLinears(spec), ...mlpLinears(spec, l!.mlpWidth)]) {
      const r = l!.ranks[lin.proj];
      n += r === undefined ? lin.out * lin.in : lin.out * r + r * lin.in;
      if (lin.bias) n += lin.out;
    }
  }
  return n;
}

describe('parameter counting', () => {
  it('blockParamCount equals a by-hand count for dense, low-rank and pruned blocks', () => {
    for (const spec of [gpt2Like(), llamaLike()]) {
      const dense = spec.layers[0]!;
      expect(blockParamCount(spec, dense)).toBe(countByHand(spec, [0]));
      const comp = { source: 0, ranks: { q: 3, o: 5, up: 2 }, mlpWidth: 17 };
      expect(blockParamCount(spec, comp)).toBe(countByHand(spec, [], [comp]));
    }
    // GPT-2 small block: 7,087,872 parameters.
    const g = { ...gpt2Like(1, 768, 3072), numHeads: 12, numKvHeads: 12, headDim: 64 };
    expect(blockParamCount(g, g.layers[0]!)).toBe(7087872);
  });

  it('middleIndices follows the L:R split and rejects splits with no middle', () => {
    expect(middleIndices(gpt2Like(6), { bottom: 2, top: 2 })).toEqual([2, 3]);
    expect(middleIndices(gpt2Like(6), { bottom: 1, top: 0 })).toEqual([1, 2, 3, 4, 5]);
    expect(() => middleIndices(gpt2Like(4), { bottom: 2, top: 2 })).toThrow(/no middle/);
  });
});

describe('planBudget', () => {
  const specs = { gpt2: gpt2Like(8), llama: llamaLike(8) };
  const keeps = [0.2, 0.37, 0.5, 0.6, 0.7, 0.9];

  for (const [name, spec] of Object.entries(specs)) {
    for (const method of ['gradot', 'svd', 'prune'] as CompressionMethod[]) {
      for (const keep of keeps) {
        it(`${name} ${method} keep=${keep}: exact count within one unit of the target`, () => {
          let plan;
          try {
            plan = planBudget(spec, { method, keep, split: { bottom: 2, top: 2 } });
          } catch (e) {
            // prune can be infeasible at small keeps; the error must say why and what is feasible.
            expect(method).toBe('prune');
            expect(String(e)).toMatch(/prune cannot reach keep=.*use keep >=/);
            return;
          }
          const after = countByHand(spec, [], plan.layers);
          expect(plan.paramsAfter).toBe(after);
          expect(plan.paramsBefore).toBe(countByHand(spec, plan.middle));
          expect(after).toBeLessThanOrEqual(plan.paramsTarget);
          expect(plan.paramsTarget - after).toBeLessThan(plan.granularity);
          for (const l of plan.layers) {
            for (const lin of [...attnLinears(spec), ...mlpLinears(spec, l.mlpWidth)]) {
              const r = l.ranks[lin.proj];
              if (r === undefined) continue;
              expect(r).toBeGreaterThanOrEqual(1);
              // Factors must be smaller than the dense matrix, or low-rank would not pay.
              expect(r * (lin.out + lin.in)).toBeLessThan(lin.out * lin.in);
              expect(r).toBeLessThanOrEqual(maxUsefulRank(lin.out, lin.in));
            }
          }
          if (method === 'gradot') {
            for (const l of plan.layers) {
              expect(Object.keys(l.ranks).sort()).toEqual(['k', 'o', 'q', 'v']);
              expect(l.mlpWidth).toBeLessThan(spec.intermediateSize);
            }
          }
          if (method === 'svd') for (const l of plan.layers) expect(l.mlpWidth).toBe(spec.intermediateSize);
          if (method === 'prune') for (const l of plan.layers) expect(l.ranks).toEqual({});
          // Uniform across blocks: widths and ranks differ by at most one unit between blocks.
          const widths = plan.layers.map((l) => l.mlpWidth);
          expect(Math.max(...widths) - Math.min(...widths)).toBeLessThanOrEqual(1);
        });
      }
    }
  }

  it('gradot keeps about the same fraction of attention and of MLP (the documented split)', () => {
    const spec = gpt2Like(8, 64, 256);
    const plan = planBudget(spec, { method: 'gradot', keep: 0.5, split: { bottom: 2, top: 2 } });
    const l = plan.layers[0]!;
    const attnKept = attnLinears(spec).reduce((s, lin) => s + (l.ranks[lin.proj] as number) * (lin.out + lin.in), 0);
    const attnAll = attnLinears(spec).reduce((s, lin) => s + lin.out * lin.in, 0);
    expect(Math.abs(attnKept / attnAll - (plan.kappa as number))).toBeLessThan(0.05);
    expect(Math.abs(l.mlpWidth / spec.intermediateSize - (plan.kappa as number))).toBeLessThan(0.02);
  });

  it('prune errors clearly when attention alone exceeds the budget', () => {
    expect(() => planBudget(gpt2Like(8), { method: 'prune', keep: 0.2, split: { bottom: 2, top: 2 } })).toThrow(/use keep >= 0\.3/);
  });

  it("drop uses OT's indices and counts whole blocks", () => {
    // OPT-1.3B 2-8-2: middle-relative 0,3,5,8,11,14,16,19 (the paper's §3.1 layout).
    expect(uniformChooseBlocks(20, 8)).toEqual([0, 3, 5, 8, 11, 14, 16, 19]);
    // Half-to-even: n=4, k=3 -> 0, 1.5 -> 2, 3.
    expect(uniformChooseBlocks(4, 3)).toEqual([0, 2, 3]);
    const spec = { ...gpt2Like(24, 16, 32) };
    const plan = planBudget(spec, { method: 'drop', keep: 0.4, split: { bottom: 2, top: 2 } });
    expect(plan.keptBlocks).toEqual([2, 5, 7, 10, 13, 16, 18, 21]);
    expect(plan.layers.map((l) => l.source)).toEqual([2, 5, 7, 10, 13, 16, 18, 21]);
    expect(Math.abs(plan.paramsAfter - plan.paramsTarget)).toBeLessThanOrEqual(plan.granularity);
    expect(planBudget(spec, { method: 'drop', keep: 0.01, split: { bottom: 2, top: 2 } }).keptBlocks).toEqual([2]);
  });

  it('none and keep=1 leave the middle dense; bad inputs are rejected', () => {
    const spec = gpt2Like(6);
    const p = planBudget(spec, { method: 'none', keep: 0.3, split: { bottom: 2, top: 2 } });
    expect(p.paramsAfter).toBe(p.paramsBefore);
    expect(planBudget(spec, { method: 'gradot', keep: 1, split: { bottom: 2, top: 2 } }).paramsAfter).toBe(p.paramsBefore);
    expect(() => planBudget(spec, { method: 'svd', keep: 0, split: { bottom: 2, top: 2 } })).toThrow(/keep/);
    expect(() => planBudget(spec, { method: 'svd', keep: 1.5, split: { bottom: 2, top: 2 } })).toThrow(/keep/);
    const comp = { ...spec, layers: spec.layers.map((l) => ({ ...l, mlpWidth: 10 })) };
    expect(() => planBudget(comp, { method: 'svd', keep: 0.5, split: { bottom: 2, top: 2 } })).toThrow(/already compressed/);
  });
});

describe('planBudget attnKeep (gradot)', () => {
  const spec = gpt2Like(8, 64, 256);
  const split = { bottom: 2, top: 2 };
  for (const attnKeep of [1, 0.8, 0.3]) {
    it(`attnKeep=${attnKeep}: attention at its own fraction, MLP absorbs the rest, count within one unit`, () => {
      const plan = planBudget(spec, { method: 'gradot', keep: 0.6, split, attnKeep });
      expect(plan.paramsAfter).toBe(countByHand(spec, [], plan.layers));
      expect(plan.paramsAfter).toBeLessThanOrEqual(plan.paramsTarget);
      expect(plan.paramsTarget - plan.paramsAfter).toBeLessThan(plan.granularity);
      const l = plan.layers[0]!;
      if (attnKeep === 1) expect(l.ranks).toEqual({});
      else {
        const kept = attnLinears(spec).reduce((s, lin) => s + (l.ranks[lin.proj] as number) * (lin.out + lin.in), 0);
        const all = attnLinears(spec).reduce((s, lin) => s + lin.out * lin.in, 0);
        expect(Math.abs(kept / all - attnKeep)).toBeLessThan(0.05);
      }
    });
  }
  it('rejects attnKeep the MLP cannot absorb, or on other methods', () => {
    expect(() => planBudget(spec, { method: 'gradot', keep: 0.2, split, attnKeep: 1 })).toThrow(/MLP would have to keep/);
    expect(() => planBudget(spec, { method: 'svd', keep: 0.5, split, attnKeep: 0.5 })).toThrow(/gradot only/);
  });
});
