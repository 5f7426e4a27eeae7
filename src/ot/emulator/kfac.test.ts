import { describe, expect, it } from 'vitest';
import { gaussianArray } from '../../engine/linalg/rng';
import { augmentedA, KfacAccumulator } from './kfac';

/** Toy layer y = x Wᵀ + b with loss over a batch = mean_t 0.5‖y_t − target_t‖² (mean over the batch's tokens). */
function toy(inDim: number, outDim: number, seed: number) {
  const W = gaussianArray(outDim * inDim, seed);
  const b = gaussianArray(outDim, seed + 1);
  const batches = [3, 5, 2].map((rows, i) => ({
    rows,
    x: gaussianArray(rows * inDim, seed + 10 + i),
    t: gaussianArray(rows * outDim, seed + 20 + i),
  }));
  const forward = (Wv: Float64Array, bv: Float64Array, x: Float64Array, rows: number) => {
    const y = new Float64Array(rows * outDim);
    for (let r = 0; r < rows; r++)
      for (let o = 0; o < outDim; o++) {
        let s = bv[o]!;
        for (let i = 0; i < inDim; i++) s += Wv[o * inDim + i]! * x[r * inDim + i]!;
        y[r * outDim + o] = s;
      }
    return y;
  };
  /** Support-set mean token loss (all rows are loss tokens here). */
  const totalLoss = (Wv: Float64Array, bv: Float64Array) => {
    let s = 0,
      n = 0;
    for (const bt of batches) {
      const y = forward(Wv, bv, bt.x, bt.rows);
      for (let i = 0; i < y.length; i++) s += 0.5 * (y[i]! - bt.t[i]!) ** 2;
      n += bt.rows;
    }
    return s / n;
  };
  return { W, b, batches, forward, totalLoss };
}

describe('KfacAccumulator', () => {
  const inDim = 4,
    outDim = 3;
  const tm = toy(inDim, outDim, 100);

  function run(): ReturnType<KfacAccumulator['finish']> {
    const acc = new KfacAccumulator(inDim, outDim);
    for (const bt of tm.batches) {
      const y = tm.forward(tm.W, tm.b, bt.x, bt.rows);
      // Backward of the batch-mean loss: dy = (y − t) / N_b.
      const dy = y.map((v, i) => (v - bt.t[i]!) / bt.rows);
      acc.addBatch(bt.x, dy, bt.rows, bt.rows);
    }
    return acc.finish();
  }

  it('g and gBias match finite differences of the support-set mean token loss', () => {
    const s = run();
    const h = 1e-6;
    for (let k = 0; k < tm.W.length; k++) {
      const Wp = Float64Array.from(tm.W);
      Wp[k]! += h;
      const Wm = Float64Array.from(tm.W);
      Wm[k]! -= h;
      const fd = (tm.totalLoss(Wp, tm.b) - tm.totalLoss(Wm, tm.b)) / (2 * h);
      expect(Math.abs(s.g[k]! - fd)).toBeLessThan(1e-7);
    }
    for (let k = 0; k < outDim; k++) {
      const bp = Float64Array.from(tm.b);
      bp[k]! += h;
      const bm = Float64Array.from(tm.b);
      bm[k]! -= h;
      const fd = (tm.totalLoss(tm.W, bp) - tm.totalLoss(tm.W, bm)) / (2 * h);
      expect(Math.abs(s.gBias[k]! - fd)).toBeLessThan(1e-7);
    }
  });

  it('A, G, meanX equal the direct averages over all rows (G of the un-averaged gradient e = N_b·dy)', () => {
    const s = run();
    const A = new Float64Array(inDim * inDim);
    const G = new Float64Array(outDim * outDim);
    const mu = new Float64Array(inDim);
    let n = 0;
    for (const bt of tm.batches) {
      const y = tm.forward(tm.W, tm.b, bt.x, bt.rows);
      for (let r = 0; r < bt.rows; r++) {
        n++;
        for (let i = 0; i < inDim; i++) {
          mu[i]! += bt.x[r * inDim + i]!;
          for (let j = 0; j < inDim; j++) A[i * inDim + j]! += bt.x[r * inDim + i]! * bt.x[r * inDim + j]!;
        }
        for (let i = 0; i < outDim; i++)
          for (let j = 0; j < outDim; j++) {
            const ei = y[r * outDim + i]! - bt.t[r * outDim + i]!;
            const ej = y[r * outDim + j]! - bt.t[r * outDim + j]!;
            G[i * outDim + j]! += ei * ej;
          }
      }
    }
    for (let i = 0; i < A.length; i++) expect(s.A[i]).toBeCloseTo(A[i]! / n, 12);
    for (let i = 0; i < G.length; i++) expect(s.G[i]).toBeCloseTo(G[i]! / n, 12);
    for (let i = 0; i < inDim; i++) expect(s.meanX[i]).toBeCloseTo(mu[i]! / n, 12);
    expect(s.rows).toBe(10);
    expect(s.batches).toBe(3);
  });

  it('streaming in pieces equals one big batch when N_b is the same', () => {
    const x = gaussianArray(8 * inDim, 3);
    const dy = gaussianArray(8 * outDim, 4);
    const one = new KfacAccumulator(inDim, outDim);
    one.addBatch(x, dy, 8, 8);
    const two = new KfacAccumulator(inDim, outDim);
    // The same batch's rows fed in two calls must carry their own N_b share; here: two batches of 4 tokens
    // whose dy are the full-batch dy rescaled to a 4-token mean.
    two.addBatch(
      x.subarray(0, 4 * inDim),
      dy.subarray(0, 4 * outDim).map((v) => v * 2),
      4,
      4,
    );
    two.addBatch(
      x.subarray(4 * inDim),
      dy.subarray(4 * outDim).map((v) => v * 2),
      4,
      4,
    );
    const a = one.finish(),
      b = two.finish();
    for (const k of ['A', 'G', 'g', 'gBias', 'meanX'] as const) {
      for (let i = 0; i < a[k].length; i++) expect(b[k][i]).toBeCloseTo(a[k][i]!, 12);
    }
  });

  it('augmentedA is E[x̃x̃ᵀ] for x̃ = [x; 1]', () => {
    const rows = 6;
    const x = gaussianArray(rows * inDim, 8);
    const acc = new KfacAccumulator(inDim, outDim);
    acc.addBatch(x, gaussianArray(rows * outDim, 9), rows, rows);
    const At = augmentedA(acc.finish());
    const n1 = inDim + 1;
    for (let i = 0; i < n1; i++)
      for (let j = 0; j < n1; j++) {
        let s = 0;
        for (let r = 0; r < rows; r++) s += (i < inDim ? x[r * inDim + i]! : 1) * (j < inDim ? x[r * inDim + j]! : 1);
        expect(At[i * n1 + j]).toBeCloseTo(s / rows, 12);
      }
  });

  it('rejects mismatched shapes and empty accumulators', () => {
    const acc = new KfacAccumulator(inDim, outDim);
    expect(() => acc.finish()).toThrow(/no batches/);
    expect(() => acc.addBatch(new Float64Array(5), new Float64Array(3), 1, 1)).toThrow(/x has/);
  });
});
