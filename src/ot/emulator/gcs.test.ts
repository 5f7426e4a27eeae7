import { describe, expect, it } from 'vitest';
import { gaussianArray } from '../../engine/linalg/rng';
import { hostMatmul } from '../../engine/linalg/matmul';
import { exactSvd } from '../../engine/linalg/svd';
import { augmentedA, type LinearStats } from './kfac';
import { bruteForceTerms, drdScores, GCS_READINGS, scpScores, type MlpStats, type MlpWeights } from './gcs';

/** Random stats: A from random rows (so meanX is consistent), random SPD G, random g and gBias. */
function randomStats(inDim: number, outDim: number, seed: number): LinearStats {
  const rows = inDim + outDim + 5;
  const X = gaussianArray(rows * inDim, seed).map((v, i) => v + 0.3 * (i % inDim)); // nonzero mean
  const E = gaussianArray(rows * outDim, seed + 1);
  const A = hostMatmul(X, X, { m: inDim, n: inDim, k: rows, transA: true }).map((v) => v / rows);
  const G = hostMatmul(E, E, { m: outDim, n: outDim, k: rows, transA: true }).map((v) => v / rows);
  const meanX = new Float64Array(inDim);
  for (let r = 0; r < rows; r++) for (let i = 0; i < inDim; i++) meanX[i]! += X[r * inDim + i]! / rows;
  return {
    inDim,
    outDim,
    A,
    G,
    meanX,
    g: gaussianArray(outDim * inDim, seed + 2),
    gBias: gaussianArray(outDim, seed + 3),
    rows,
    lossTokens: rows,
    batches: 1,
  };
}

const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-10 * Math.max(1, Math.abs(b)));

describe('DRD closed form', () => {
  for (const [out, inn] of [
    [7, 5],
    [5, 9],
    [6, 6],
  ] as const) {
    it(`equals brute force ‖GδA‖₁ − λ⟨g,δ⟩ for every component of a random ${out}x${inn} W`, () => {
      const W = gaussianArray(out * inn, out * 10 + inn);
      const f = exactSvd(W, out, inn);
      const st = randomStats(inn, out, 40 + out);
      const lambda = 0.7;
      const sc = drdScores(f, st, lambda);
      expect(sc.reading).toBe(GCS_READINGS.drd);
      for (let k = 0; k < f.rank; k++) {
        const delta = new Float64Array(out * inn);
        for (let i = 0; i < out; i++)
          for (let j = 0; j < inn; j++) delta[i * inn + j] = -f.S[k]! * f.U[i * f.rank + k]! * f.Vt[k * inn + j]!;
        const bf = bruteForceTerms(delta, out, inn, st.G, st.A, st.g);
        close(sc.gradShift[k]!, bf.gradShift);
        close(sc.lossIncrease[k]!, bf.lossIncrease);
        close(sc.score[k]!, bf.gradShift - lambda * bf.lossIncrease);
      }
    });
  }
});

describe('SCP closed form', () => {
  const d = 5,
    dff = 8;

  function mlp(gated: boolean, bias: boolean, seed: number): { w: MlpWeights; st: MlpStats } {
    const w: MlpWeights = {
      d,
      dff,
      upW: gaussianArray(dff * d, seed),
      downW: gaussianArray(d * dff, seed + 1),
      upB: bias ? gaussianArray(dff, seed + 2) : undefined,
      gateW: gated ? gaussianArray(dff * d, seed + 3) : undefined,
      gateB: gated && bias ? gaussianArray(dff, seed + 4) : undefined,
    };
    const up = randomStats(d, dff, seed + 10);
    // up and gate read the same input, so they share A and meanX in a real model.
    const st: MlpStats = {
      up,
      down: randomStats(dff, d, seed + 20),
      gate: gated ? { ...randomStats(d, dff, seed + 30), A: up.A, meanX: up.meanX } : undefined,
    };
    return { w, st };
  }

  /** Brute force for channel j: explicit δ per matrix ([W|b] with Ã where the bias is deleted). */
  function brute(w: MlpWeights, st: MlpStats, j: number) {
    let gradShift = 0,
      lossIncrease = 0;
    const row = (W: ArrayLike<number>, b: ArrayLike<number> | undefined, s: LinearStats) => {
      const din = b ? d + 1 : d;
      const delta = new Float64Array(dff * din);
      const g = new Float64Array(dff * din);
      for (let r = 0; r < dff; r++) {
        for (let i = 0; i < d; i++) g[r * din + i] = s.g[r * d + i]!;
        if (b) g[r * din + d] = s.gBias[r]!;
      }
      for (let i = 0; i < d; i++) delta[j * din + i] = -W[j * d + i]!;
      if (b) delta[j * din + d] = -b[j]!;
      const t = bruteForceTerms(delta, dff, din, s.G, b ? augmentedA(s) : s.A, g);
      gradShift += t.gradShift;
      lossIncrease += t.lossIncrease;
    };
    row(w.upW, w.upB, st.up);
    if (w.gateW && st.gate) row(w.gateW, w.gateB, st.gate);
    const delta = new Float64Array(d * dff);
    for (let i = 0; i < d; i++) delta[i * dff + j] = -w.downW[i * dff + j]!;
    const t = bruteForceTerms(delta, d, dff, st.down.G, st.down.A, st.down.g);
    gradShift += t.gradShift;
    lossIncrease += t.lossIncrease;
    return { gradShift, lossIncrease };
  }

  for (const [gated, bias] of [
    [false, true],
    [false, false],
    [true, false],
    [true, true],
  ] as const) {
    it(`equals brute force for every channel (gated=${gated}, bias=${bias})`, () => {
      const { w, st } = mlp(gated, bias, gated ? 300 : 200 + (bias ? 1 : 0));
      const lambda = 1.3;
      const sc = scpScores(w, st, lambda);
      expect(sc.reading).toBe(GCS_READINGS.scp);
      for (let j = 0; j < dff; j++) {
        const bf = brute(w, st, j);
        close(sc.gradShift[j]!, bf.gradShift);
        close(sc.lossIncrease[j]!, bf.lossIncrease);
        close(sc.score[j]!, bf.gradShift - lambda * bf.lossIncrease);
      }
    });
  }

  it('the bias changes the score (it is not silently ignored)', () => {
    const { w, st } = mlp(false, true, 500);
    const withB = scpScores(w, st, 1).score;
    const without = scpScores({ ...w, upB: undefined }, st, 1).score;
    let diff = 0;
    for (let j = 0; j < dff; j++) diff += Math.abs(withB[j]! - without[j]!);
    expect(diff).toBeGreaterThan(1e-3);
  });

  it('rejects stats that do not match the weights', () => {
    const { w, st } = mlp(false, false, 600);
    expect(() => scpScores({ ...w, dff: dff + 1 }, st, 1)).toThrow(/shapes/);
    expect(() => scpScores({ ...w, gateW: w.upW }, st, 1)).toThrow(/gate/);
  });
});

describe('λ modes', () => {
  it("'raw' keeps the scores; 'balanced' makes λ=1 weigh both terms' totals equally", async () => {
    const { effectiveLambda, rescore } = await import('./gcs');
    const W = gaussianArray(6 * 4, 1);
    const parts = drdScores(exactSvd(W, 6, 4), randomStats(4, 6, 2), 0.3);
    expect(Array.from(rescore(parts, 0.3, 'raw').score)).toEqual(Array.from(parts.score));
    const lam = effectiveLambda(parts, 1, 'balanced');
    let gs = 0,
      li = 0;
    for (let i = 0; i < parts.gradShift.length; i++) {
      gs += parts.gradShift[i]!;
      li += Math.abs(parts.lossIncrease[i]!);
    }
    expect(lam * li).toBeCloseTo(gs, 10);
    const b = rescore(parts, 1, 'balanced');
    expect(b.lambda).toBeCloseTo(lam, 12);
    for (let i = 0; i < b.score.length; i++) expect(b.score[i]).toBeCloseTo(parts.gradShift[i]! - lam * parts.lossIncrease[i]!, 10);
  });
});

describe('balanced λ on fresh random statistics', () => {
  const W = gaussianArray(9 * 7, 41);
  const f = exactSvd(W, 9, 7);
  const parts = drdScores(f, randomStats(7, 9, 43), 0);
  const order = (x: ArrayLike<number>) => Array.from({ length: x.length }, (_, i) => i).sort((i, j) => x[j]! - x[i]! || i - j);

  it('λ = 0 ranks exactly by the gradient-shift term (ascending shift = removed first)', async () => {
    const { rescore } = await import('./gcs');
    const b = rescore(parts, 0, 'balanced');
    expect(b.lambda).toBe(0);
    expect(Array.from(b.score)).toEqual(Array.from(parts.gradShift));
    expect(order(b.score)).toEqual(order(parts.gradShift));
  });

  it('a large λ ranks by the loss-increase term (largest loss increase removed first)', async () => {
    const { rescore, spearman } = await import('./gcs');
    const negLoss = parts.lossIncrease.map((v) => -v);
    expect(order(rescore(parts, 1e6, 'balanced').score)).toEqual(order(negLoss));
    // Between the two ends the ranking moves away from the gradient-shift one towards the loss one.
    const toLoss = [0, 1, 8, 1e6].map((l) => spearman(rescore(parts, l, 'balanced').score, negLoss));
    const toShift = [0, 1, 8, 1e6].map((l) => spearman(rescore(parts, l, 'balanced').score, parts.gradShift));
    expect(toShift[0]).toBeCloseTo(1, 12);
    expect(toLoss[3]).toBeCloseTo(1, 12);
    expect(toLoss[3]!).toBeGreaterThan(toLoss[0]!);
    expect(toShift[3]!).toBeLessThan(toShift[0]!);
  });

  it('spearman: hand-computed values, ties as average ranks', async () => {
    const { spearman } = await import('./gcs');
    expect(spearman([1, 2, 3, 4], [10, 20, 30, 40])).toBeCloseTo(1, 12);
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 12);
    // ranks a = 0,1,2,3; b = 1,0,3,2 → Σd² = 4, ρ = 1 − 6·4/(4·15) = 0.6.
    expect(spearman([1, 2, 3, 4], [2, 1, 4, 3])).toBeCloseTo(0.6, 12);
    // ties: b ranks 0.5, 0.5, 2, 3; centred a = ±1.5, ±0.5, b = −1, −1, 0.5, 1.5 → 4.5/sqrt(5·4.5).
    expect(spearman([1, 2, 3, 4], [5, 5, 6, 7])).toBeCloseTo(4.5 / Math.sqrt(5 * 4.5), 12);
  });
});

describe('GCS sign conventions', () => {
  it('a component whose removal raises the loss scores lower (is removed first) as λ grows', async () => {
    const { selectComponents } = await import('./select');
    const out = 6,
      inn = 5;
    const W = gaussianArray(out * inn, 77);
    const f = exactSvd(W, out, inn);
    const st = randomStats(inn, out, 78);
    // g = +c·u_2 v_2ᵀ: removing component 2 (δ = −σ u vᵀ) changes the loss by ⟨g, δ⟩ = −cσ < 0 for c > 0,
    // so take c < 0 to make removal RAISE the loss.
    const c = -5;
    st.g = new Float64Array(out * inn);
    for (let i = 0; i < out; i++) for (let j = 0; j < inn; j++) st.g[i * inn + j] = c * f.U[i * f.rank + 2]! * f.Vt[2 * inn + j]!;
    const p0 = drdScores(f, st, 0);
    const p = drdScores(f, st, 1e6);
    expect(p.lossIncrease[2]).toBeGreaterThan(0);
    for (const k of [0, 1, 3, 4]) expect(Math.abs(p.lossIncrease[k]!)).toBeLessThan(1e-9);
    expect(p.score[2]).toBeLessThan(Math.min(...Array.from(p.score).filter((_, k) => k !== 2)));
    // Keep 4 of 5 (top-1 protected): with a huge λ component 2 is the one removed.
    expect(selectComponents(f.S, p.score, 4)).toEqual([0, 1, 3, 4]);
    // With λ = 0 the choice is by gradient shift alone and component 2 is no longer singled out by g.
    expect(p0.score[2]).toBeCloseTo(p0.gradShift[2]!, 12);
  });
});
