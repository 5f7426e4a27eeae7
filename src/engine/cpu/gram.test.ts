import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend } from './backend';
import { initCpuThreads, setCpuThreads } from './pool';
import { Rng } from '../random';

/** Fresh random rows (never zeros), some exactly repeated values so ties in the sums are exercised too. */
function rand(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, (_, i) => (i % 97 === 0 ? 0.5 : r.normal()));
}

describe('CpuBackend.gram', () => {
  afterAll(() => setCpuThreads(1));

  for (const [rows, dim] of [
    [37, 300],
    [64, 513],
    [130, 1100],
    [5, 40],
  ] as const) {
    it(`equals matmul(xᵀ, x) bit for bit (${rows}x${dim}), on 1 and 2 threads`, async () => {
      const be = new CpuBackend();
      const x = be.fromArray(rand(rows * dim, rows * 1000 + dim));
      const want = await be.read(be.matmul(x, x, { batch: 1, m: dim, n: dim, k: rows, transA: true }));
      const got1 = await be.read(be.gram(x, rows, dim));
      expect(Buffer.from(got1.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      await initCpuThreads({ threads: 2 });
      const got2 = await be.read(be.gram(x, rows, dim));
      setCpuThreads(1);
      expect(Buffer.from(got2.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      // And it is the Gram matrix (against an f64 reference), symmetric.
      const X = await be.read(x);
      for (const [i, j] of [
        [0, 0],
        [dim - 1, 3],
        [7, dim - 2],
      ] as const) {
        let s = 0;
        for (let r = 0; r < rows; r++) s += X[r * dim + i]! * X[r * dim + j]!;
        expect(got1[i * dim + j]).toBeCloseTo(s, 3);
        expect(got1[j * dim + i]).toBe(got1[i * dim + j]);
      }
    });
  }
});
