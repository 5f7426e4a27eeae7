// The LM head's cross-entropy in row blocks: the same loss and input gradient as the one-product path, bit
// for bit, W's gradient to rounding; and its own gradients pass finite differences.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from './cpu/backend';
import { headBlockRows, headPieceRows } from './head-blocks';
import { headGradCounts, linearCrossEntropyRows } from './head-loss';
import * as ops from './ops';
import { Rng } from './random';
import { backward, Tensor } from './tensor';
import { gradCheck } from './testing';

function setup(rows: number, d: number, V: number, seed: number, wGrad: boolean) {
  const be = new CpuBackend();
  const r = new Rng(seed);
  const x = Float32Array.from({ length: rows * d }, () => r.normal());
  const w = Float32Array.from({ length: V * d }, () => 0.3 * r.normal());
  // Some rows ignored, the rest random targets.
  const targets = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 3 ? -100 : Math.floor(r.uniform() * V)));
  const make = () => ({
    X: new Tensor(be, [rows, d], be.fromArray(x), true),
    W: new Tensor(be, [V, d], be.fromArray(w), wGrad),
  });
  return { be, targets, make };
}

describe('linearCrossEntropyRows', () => {
  it('picks blocks from the logit bytes', () => {
    expect(headBlockRows(512, 50257)).toBe(512); // gpt2: one block, the plain path
    expect(headBlockRows(512, 151936)).toBe(220); // Qwen2.5: three blocks
    expect(headBlockRows(3, 10, 4 * 10)).toBe(1);
    expect(headPieceRows(50257, 768)).toBe(50257); // gpt2's head is staged whole
    expect(headPieceRows(151936, 896)).toBe(37449); // Qwen2.5's in five pieces
  });

  it('in vocabulary pieces: the same loss bit for bit, x and W gradients to rounding', async () => {
    const rows = 13,
      d = 8,
      V = 41;
    const { targets, make } = setup(rows, d, V, 3, true);
    const run = async (blockBytes: number, pieceBytes: number) => {
      const { X, W } = make();
      const per = linearCrossEntropyRows(X, W, targets, -100, blockBytes, pieceBytes);
      backward(ops.sum(per));
      return { per: await per.read(), dx: await X.grad!.read(), dw: await W.grad!.read() };
    };
    const ref = await run(Infinity, Infinity);
    for (const [bb, pb] of [
      [Infinity, 4 * d * 10], // pieces of 10 vocabulary rows, one row block
      [4 * V * 4, 4 * d * 7], // both
    ] as const) {
      const got = await run(bb, pb);
      expect(Buffer.from(got.per.buffer).equals(Buffer.from(ref.per.buffer))).toBe(true);
      for (let i = 0; i < ref.dx.length; i++) expect(got.dx[i]).toBeCloseTo(ref.dx[i]!, 6);
      for (let i = 0; i < ref.dw.length; i++) expect(got.dw[i]).toBeCloseTo(ref.dw[i]!, 6);
    }
  });

  for (const wGrad of [false, true]) {
    it(`in blocks equals the one-product path (loss and dx bit for bit${wGrad ? ', dW to rounding' : ''})`, async () => {
      const rows = 23,
        d = 16,
        V = 37;
      const { be, targets, make } = setup(rows, d, V, wGrad ? 7 : 5, wGrad);
      const run = async (blockBytes: number) => {
        const { X, W } = make();
        const per = linearCrossEntropyRows(X, W, targets, -100, blockBytes);
        const l = ops.scale(ops.sum(per), 1 / 19);
        backward(l);
        return {
          per: await per.read(),
          dx: await X.grad!.read(),
          dw: W.grad ? await W.grad.read() : null,
        };
      };
      const ref = await run(Infinity);
      const blocked = await run(4 * V * 5); // 5 rows per block: 5 blocks, the last one short
      expect(Buffer.from(blocked.per.buffer).equals(Buffer.from(ref.per.buffer))).toBe(true);
      expect(Buffer.from(blocked.dx.buffer).equals(Buffer.from(ref.dx.buffer))).toBe(true);
      for (let i = 0; i < rows; i++) if (targets[i] === -100) expect(ref.per[i]).toBe(0);
      if (wGrad) {
        for (let i = 0; i < ref.dw!.length; i++) expect(blocked.dw![i]).toBeCloseTo(ref.dw![i]!, 6);
      } else {
        expect(blocked.dw).toBeNull();
      }
      void be;
    });
  }

  for (const pieces of [false, true]) {
    it(`x's gradient made in the forward for the expected seed is the backward's own, bit for bit${pieces ? ' (vocabulary pieces)' : ''}; another seed recomputes`, async () => {
      const rows = 29,
        d = 12,
        V = 53;
      const { be, targets, make } = setup(rows, d, V, pieces ? 17 : 11, false);
      const N = Array.from(targets).filter((t) => t !== -100).length;
      const pb = pieces ? 4 * d * 9 : Infinity;
      const run = async (rowGrad: number | undefined, s: number) => {
        const { X, W } = make();
        const per = linearCrossEntropyRows(X, W, targets, -100, 4 * V * 6, pb, rowGrad);
        const l = ops.scale(ops.sum(per), s);
        backward(l);
        return { per: await per.read(), dx: await X.grad!.read() };
      };
      const same = (a: Float32Array | Float64Array, b: Float32Array | Float64Array) =>
        expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      const ref = await run(undefined, 1 / N);
      // The mean's seed as the f32 backend rounds it: used.
      const c0 = { ...headGradCounts };
      const hit = await run(Math.fround(1 / N), 1 / N);
      expect(headGradCounts.early).toBe(c0.early + 1);
      same(hit.per, ref.per);
      same(hit.dx, ref.dx);
      // A wrong guess (another scale): recomputed, still the backward's own gradient.
      const ref2 = await run(undefined, 0.37);
      const miss = await run(Math.fround(1 / N), 0.37);
      expect(headGradCounts.recomputed).toBe(c0.recomputed + 1);
      same(miss.dx, ref2.dx);
      expect(Buffer.from(miss.dx.buffer).equals(Buffer.from(hit.dx.buffer))).toBe(false);
      void be;
    });
  }

  it("the decoder's expected seed is what a mean's backward hands each row (f32 and f64)", async () => {
    for (const dtype of ['f32', 'f64'] as const) {
      const be = new CpuBackend({ dtype });
      for (const c of [1, 3, 7, 509, 511, 2048, 1e5 + 3]) {
        const t = new Tensor(be, [5], be.fromArray(Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5])), true);
        backward(ops.scale(ops.sum(t), 1 / c));
        const g = await t.grad!.read();
        const want = dtype === 'f64' ? 1 / c : Math.fround(1 / c);
        for (const v of g) expect(Object.is(v, want)).toBe(true);
      }
    }
  });

  it('passes finite differences in row blocks and vocabulary pieces (x and W)', () => {
    const be = new CpuBackend({ dtype: 'f64' });
    const V = 11;
    const targets = Int32Array.from([3, -100, 0, 10, 7, 2, 5]);
    const r = gradCheck(
      be,
      ([x, w]) => linearCrossEntropyRows(x!, w!, targets, -100, 8 * V * 2, 4 * 6 * 4),
      [{ shape: [7, 6] }, { shape: [V, 6] }],
      13,
    );
    expect(r.checked).toBeGreaterThan(0);
    expect(r.maxRelErr).toBeLessThan(1e-6);
  });
});
