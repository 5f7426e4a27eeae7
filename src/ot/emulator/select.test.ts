import { describe, expect, it } from 'vitest';
import { gaussianArray } from '../../engine/linalg/rng';
import { hostMatmul } from '../../engine/linalg/matmul';
import { exactSvd } from '../../engine/linalg/svd';
import { alwaysKeepCount, lowRankFactors, selectChannels, selectComponents, sliceMlp, type MlpTensors } from './select';
import { magnitudeChannelScores, pruneChannels, svdTruncate, dropBlocks } from './baselines';

describe('selectComponents', () => {
  it('always keeps the top ceil(5%) by σ, then removes the LOWEST scores', () => {
    const n = 40; // ceil(0.05·40) = 2 protected
    const S = Float64Array.from({ length: n }, (_, i) => n - i);
    // Scores: the two largest-σ components score worst, component 10 scores best, then 20, 30, 5.
    const scores = new Float64Array(n).fill(-1);
    scores[0] = -100;
    scores[1] = -99;
    scores[10] = 5;
    scores[20] = 4;
    scores[30] = 3;
    scores[5] = 2;
    expect(alwaysKeepCount(n)).toBe(2);
    expect(selectComponents(S, scores, 6)).toEqual([0, 1, 5, 10, 20, 30]);
    // Budget below the protected count: the top-`rank` by σ.
    expect(selectComponents(S, scores, 1)).toEqual([0]);
    // Ties in score fall to the larger σ.
    expect(selectComponents(S, new Float64Array(n), 4)).toEqual([0, 1, 2, 3]);
    expect(selectComponents(S, scores, n + 5)).toHaveLength(n);
    expect(() => selectComponents(S, scores.slice(1), 3)).toThrow(/scores/);
  });

  it('with score = σ it is plain truncated SVD', () => {
    const S = Float64Array.from([9, 7, 5, 3, 1, 0.5]);
    expect(selectComponents(S, S, 3)).toEqual([0, 1, 2]);
  });

  it('factors A·B reproduce U_K diag(σ_K) V_Kᵀ and the full matrix when all are kept', () => {
    const out = 7,
      inn = 5;
    const W = gaussianArray(out * inn, 3);
    const f = exactSvd(W, out, inn);
    const all = lowRankFactors(f, out, inn, [0, 1, 2, 3, 4]);
    const rec = hostMatmul(all.a, all.b, { m: out, n: inn, k: 5 });
    for (let i = 0; i < W.length; i++) expect(rec[i]).toBeCloseTo(W[i]!, 12);
    const kept = [1, 3];
    const part = lowRankFactors(f, out, inn, kept);
    const ab = hostMatmul(part.a, part.b, { m: out, n: inn, k: 2 });
    for (let i = 0; i < out; i++)
      for (let j = 0; j < inn; j++) {
        let s = 0;
        for (const k of kept) s += f.U[i * 5 + k]! * f.S[k]! * f.Vt[k * inn + j]!;
        expect(ab[i * inn + j]).toBeCloseTo(s, 12);
      }
  });
});

describe('channels', () => {
  const d = 4,
    dff = 9;
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const silu = (x: number) => x / (1 + Math.exp(-x));

  /** MLP forward for one input row; `mask` zeroes channels (the reference for slicing). */
  function mlpForward(m: MlpTensors, x: Float64Array, width: number, mask?: Set<number>): Float64Array {
    const y = new Float64Array(m.d);
    for (let j = 0; j < width; j++) {
      if (mask && !mask.has(j)) continue;
      let u = m.upB ? m.upB[j]! : 0;
      for (let i = 0; i < m.d; i++) u += m.upW[j * m.d + i]! * x[i]!;
      let h: number;
      if (m.gateW) {
        let g = m.gateB ? m.gateB[j]! : 0;
        for (let i = 0; i < m.d; i++) g += m.gateW[j * m.d + i]! * x[i]!;
        h = silu(g) * u;
      } else h = gelu(u);
      for (let i = 0; i < m.d; i++) y[i]! += m.downW[i * width + j]! * h;
    }
    if (m.downB) for (let i = 0; i < m.d; i++) y[i]! += m.downB[i]!;
    return y;
  }

  for (const gated of [false, true]) {
    it(`sliceMlp computes exactly the masked full MLP (gated=${gated})`, () => {
      const m: MlpTensors = {
        d,
        dff,
        upW: gaussianArray(dff * d, 1),
        upB: gaussianArray(dff, 2),
        downW: gaussianArray(d * dff, 3),
        downB: gaussianArray(d, 4),
        gateW: gated ? gaussianArray(dff * d, 5) : undefined,
        gateB: gated ? gaussianArray(dff, 6) : undefined,
      };
      const kept = [0, 2, 3, 7];
      const s = sliceMlp(m, kept);
      expect(s.upW.length).toBe(4 * d);
      expect(s.downW.length).toBe(d * 4);
      const x = gaussianArray(d, 9);
      const ref = mlpForward(m, x, dff, new Set(kept));
      const got = mlpForward({ ...s, dff: 4 }, x, 4);
      for (let i = 0; i < d; i++) expect(got[i]).toBeCloseTo(ref[i]!, 12);
      expect(() => sliceMlp(m, [3, 2])).toThrow(/ascending/);
    });
  }

  it('selectChannels keeps the highest scores, ascending ids', () => {
    expect(selectChannels([0.5, -2, 3, 1, -0.1], 3)).toEqual([0, 2, 3]);
    expect(() => selectChannels([1, 2], 0)).toThrow(/width/);
  });

  it('magnitude scores are the product of row/column L2 norms (bias with its row)', () => {
    const m: MlpTensors = {
      d: 2,
      dff: 3,
      upW: [3, 4, 0, 1, 1, 0],
      upB: [0, 0, 1],
      downW: [1, 0, 2, 0, 0, 2],
      gateW: undefined,
    };
    // up rows: |[3,4,0]|=5, |[0,1,0]|=1, |[1,0,1]|=√2; down cols: |[1,0]|=1, |[0,0]|=0, |[2,2]|=2√2.
    const s = magnitudeChannelScores(m);
    expect(s[0]).toBeCloseTo(5, 12);
    expect(s[1]).toBeCloseTo(0, 12);
    expect(s[2]).toBeCloseTo(4, 12);
    expect(pruneChannels(m, 2)).toEqual([0, 2]);
    const gated = { ...m, gateW: [1, 0, 0, 2, 0, 3], gateB: undefined };
    const sg = magnitudeChannelScores(gated);
    expect(sg[2]).toBeCloseTo(12, 12);
  });
});

describe('baselines', () => {
  it('svdTruncate is top-r by σ with the Eckart-Young error', () => {
    const out = 12,
      inn = 9,
      r = 4;
    const W = gaussianArray(out * inn, 17);
    const full = exactSvd(W, out, inn);
    const t = svdTruncate(W, out, inn, r);
    expect(Array.from(t.S)).toEqual(Array.from(full.S.slice(0, r)));
    const rec = hostMatmul(t.a, t.b, { m: out, n: inn, k: r });
    let err = 0;
    for (let i = 0; i < W.length; i++) err += (rec[i]! - W[i]!) ** 2;
    let tail = 0;
    for (let i = r; i < full.rank; i++) tail += full.S[i]! ** 2;
    expect(Math.sqrt(err)).toBeCloseTo(Math.sqrt(tail), 10);
  });

  it("dropBlocks is OT's uniform choice", () => {
    expect(dropBlocks(20, 8)).toEqual([0, 3, 5, 8, 11, 14, 16, 19]);
  });
});
