/**
 * backward's onLeafGrad: each leaf that requires grad is reported once, when its gradient is complete (the
 * same bits as a plain backward's .grad, also for a leaf read by several ops), top of the graph first, and a
 * callee that takes the gradient (frees it) does not disturb the rest of the backward.
 */
import { describe, expect, it } from 'vitest';
import type { Backend } from './backend';
import { CpuBackend, readSync } from './cpu/backend';
import { trackStorages } from './memory';
import * as ops from './ops';
import { Rng } from './random';
import { Tensor, backward, randn, tidy } from './tensor';

/** A 3-layer SiLU MLP with W0 also read by the last layer (as a tied matrix is), cross-entropy loss. */
function build(be: Backend, seed: number) {
  const rng = new Rng(seed);
  const d = 6;
  const W0 = randn(be, [d, d], rng, 0.5, 0, { requiresGrad: true });
  const W1 = randn(be, [d, d], rng, 0.5, 0, { requiresGrad: true });
  const b1 = randn(be, [d], rng, 0.5, 0, { requiresGrad: true });
  const W2 = randn(be, [d, d], rng, 0.5, 0, { requiresGrad: true });
  const x = randn(be, [5, d], rng);
  const targets = Int32Array.from([0, 3, 5, 1, 2]);
  const params = { W0, W1, b1, W2 };
  const loss = (): Tensor => {
    const h0 = ops.activation(ops.linear(x, W0), 'silu');
    const h1 = ops.activation(ops.linear(h0, W1, b1), 'silu');
    const h2 = ops.activation(ops.linear(h1, W2), 'silu');
    return ops.crossEntropy(ops.linear(h2, W0), targets); // W0 read again at the top
  };
  return { params, loss, x };
}

describe('backward onLeafGrad', () => {
  it('reports every trainable leaf once with its final gradient, top first, W0 (read twice) after both uses', () => {
    const be = new CpuBackend({ dtype: 'f64' });
    const plain = build(be, 7);
    tidy(() => backward(plain.loss(), { release: true }));
    const want = new Map(Object.entries(plain.params).map(([n, t]) => [n, Array.from(readSync(t.grad!.storage))]));

    const hooked = build(be, 7);
    const names = new Map<Tensor, string>(Object.entries(hooked.params).map(([n, t]) => [t, n]));
    const seen: string[] = [];
    const got = new Map<string, number[]>();
    tidy(() =>
      backward(hooked.loss(), {
        release: true,
        onLeafGrad: (leaf) => {
          const n = names.get(leaf)!;
          seen.push(n);
          got.set(n, Array.from(readSync(leaf.grad!.storage)));
        },
      }),
    );
    expect(seen.length).toBe(4);
    expect(new Set(seen).size).toBe(4);
    expect(seen.indexOf('W2')).toBeLessThan(seen.indexOf('W1'));
    expect(seen.indexOf('W1')).toBeLessThan(seen.indexOf('W0'));
    expect(seen[seen.length - 1]).toBe('W0');
    for (const [n, g] of want) {
      expect(got.get(n), n).toEqual(g);
      expect(g.some((v) => v !== 0)).toBe(true);
    }
  });

  it('a callee that takes each gradient leaves nothing alive and the later gradients unchanged', () => {
    const tr = trackStorages(new CpuBackend({ dtype: 'f32' }), { strict: true });
    const be = tr.backend;
    const plain = build(be, 11);
    tidy(() => backward(plain.loss(), { release: true }));
    const want = new Map(Object.entries(plain.params).map(([n, t]) => [n, Array.from(readSync(t.grad!.storage))]));
    for (const t of Object.values(plain.params)) t.grad!.free();

    const hooked = build(be, 11);
    const names = new Map<Tensor, string>(Object.entries(hooked.params).map(([n, t]) => [t, n]));
    const got = new Map<string, number[]>();
    tidy(() =>
      backward(hooked.loss(), {
        release: true,
        onLeafGrad: (leaf) => {
          const g = leaf.grad!;
          got.set(names.get(leaf)!, Array.from(readSync(g.storage)));
          leaf.grad = null;
          g.free();
        },
      }),
    );
    for (const t of Object.values(hooked.params)) expect(t.grad).toBeNull();
    for (const [n, g] of want) expect(got.get(n), n).toEqual(g);
    // What is left is the two models' parameters and inputs only.
    for (const m of [plain, hooked]) {
      for (const t of Object.values(m.params)) t.free();
      m.x.free();
    }
    expect(tr.live()).toBe(0);
  });
});
