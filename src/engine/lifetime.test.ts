/**
 * Tensor lifetimes: Tensor.free idempotence and use-after-free errors, saved-for-backward storages, tidy /
 * scopes, backward's release, and the live counters. Runs on CpuBackend through the strict storage tracker,
 * which throws where a WebGPU pool would (double free, freed storage passed to a kernel).
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from './cpu/backend';
import { trackStorages } from './memory';
import * as ops from './ops';
import { clipGradNorm } from './optim';
import { Rng } from './random';
import { Tensor, backward, beginScope, endScope, fromArray, keep, liveTensorCount, noGrad, randn, record, tidy } from './tensor';

function tracked(dtype: 'f32' | 'f64' = 'f64') {
  return trackStorages(new CpuBackend({ dtype }), { strict: true });
}

function vals(t: Tensor): number[] {
  return Array.from(readSync(t.storage));
}

describe('Tensor.free and use after free', () => {
  it('free is idempotent (also after a direct backend free) and frees views with their storage', () => {
    const tr = tracked();
    const be = tr.backend;
    const x = randn(be, [2, 3], new Rng(1));
    const v = ops.reshape(x, [3, 2]);
    x.free();
    x.free();
    v.free();
    expect(x.freed).toBe(true);
    expect(v.freed).toBe(true);
    const y = randn(be, [4], new Rng(2));
    be.free(y.storage); // someone freed it behind the tensor's back
    expect(y.freed).toBe(true);
    y.free(); // no second backend free (the strict tracker would throw)
    expect(tr.live()).toBe(0);
    expect(tr.stats.freed).toBe(2);
  });

  it('ops, read and backward on a freed tensor throw a clear error', async () => {
    const be = tracked().backend;
    const rng = new Rng(3);
    const a = randn(be, [2, 3], rng);
    const b = randn(be, [2, 3], rng);
    a.name = 'a';
    a.free();
    expect(() => ops.add(a, b)).toThrow(/add: tensor a \[2, 3\] was freed/);
    expect(() => ops.scale(a, 2)).toThrow(/scale: .*was freed/);
    expect(() => ops.reshape(a, [6])).toThrow(/reshape: .*was freed/);
    expect(() => ops.linear(b, a)).toThrow(/linear: .*was freed/);
    expect(() => ops.crossEntropy(a, new Int32Array([0, 1]))).toThrow(/crossEntropy: .*was freed/);
    await expect(a.read()).rejects.toThrow(/read: .*was freed/);
    // A CPU storage freed directly on the backend is recognised as well.
    const c = randn(new CpuBackend(), [5], rng);
    c.backend.free(c.storage);
    expect(() => ops.sum(c)).toThrow(/sum: .*was freed/);

    const w = randn(be, [3, 3], rng, 1, 0, { requiresGrad: true });
    const h = ops.linear(b, w);
    const l = ops.sum(ops.mul(h, h));
    h.free();
    expect(() => backward(l)).toThrow(/backward: mul needs tensor \[2, 3\], which was freed before backward/);
  });
});

describe('saved-for-backward storages', () => {
  function normsAndAttention(be: CpuBackend | ReturnType<typeof tracked>['backend'], rng: Rng, rg: boolean) {
    const B = 1;
    const T = 3;
    const H = 2;
    const D = 2;
    const x = randn(be, [B * T, H * D], rng, 1, 0, { requiresGrad: rg });
    const w = randn(be, [H * D], rng, 1, 0, { requiresGrad: rg });
    const bias = randn(be, [H * D], rng);
    const ln = ops.layerNorm(x, w, bias);
    const rn = ops.rmsNorm(ln, w);
    const at = ops.attention(rn, rn, rn, { B, T, H, D, causal: true });
    return { x, w, bias, out: ops.sum(at) };
  }

  it('are freed at once when no node is recorded (noGrad or nothing requires grad)', () => {
    for (const mode of ['noGrad', 'frozen'] as const) {
      const tr = tracked();
      const rng = new Rng(4);
      const r = mode === 'noGrad' ? noGrad(() => normsAndAttention(tr.backend, rng, true)) : normsAndAttention(tr.backend, rng, false);
      // x, w, bias + ln, rn, attention out, sum: no mean/rstd/lse left behind.
      expect(tr.live()).toBe(7);
      expect(r.out.requiresGrad).toBe(false);
    }
  });

  it('are freed after their node runs in backward (and kept with retainGraph until the graph is dropped)', () => {
    const tr = tracked();
    const r = normsAndAttention(tr.backend, new Rng(5), true);
    // + layerNorm mean, rstd; rmsNorm rstd; attention lse.
    expect(tr.live()).toBe(7 + 4);
    backward(r.out, { retainGraph: true });
    expect(tr.live()).toBe(7 + 4 + 2); // + x.grad, w.grad
    backward(r.out);
    expect(tr.live()).toBe(7 + 2);
  });

  it('are freed with their tensor when the graph is dropped without backward', () => {
    const tr = tracked();
    const r = tidy(() => {
      normsAndAttention(tr.backend, new Rng(6), true);
      return null;
    });
    expect(r).toBeNull();
    expect(tr.live()).toBe(2); // only the parameter-like leaves x and w survive
  });
});

describe('tidy and scopes', () => {
  it('frees intermediates, keeps the result, outside tensors, parameter-like leaves and keep()', () => {
    const tr = tracked();
    const be = tr.backend;
    const rng = new Rng(7);
    const outside = randn(be, [2, 2], rng);
    let param: Tensor | null = null;
    let kept: Tensor | null = null;
    let dropped: Tensor | null = null;
    const y = tidy(() => {
      param = randn(be, [2], rng, 1, 0, { requiresGrad: true });
      kept = keep(randn(be, [3], rng));
      dropped = ops.scale(outside, 3);
      ops.reshape(outside, [4]); // a view of an outside storage: never freed by the scope
      return ops.add(ops.scale(outside, 2), outside);
    });
    expect(outside.freed).toBe(false);
    expect(param!.freed).toBe(false);
    expect(kept!.freed).toBe(false);
    expect(dropped!.freed).toBe(true);
    expect(vals(y)).toEqual(vals(outside).map((v) => 3 * v));
    expect(tr.live()).toBe(4); // outside, param, kept, y
  });

  it('walks arrays, plain objects, Maps and Sets in the result', () => {
    const tr = tracked();
    const be = tr.backend;
    const x = randn(be, [3], new Rng(8));
    const r = tidy(() => ({
      a: [ops.scale(x, 1)],
      m: new Map([['k', ops.scale(x, 2)]]),
      s: new Set([ops.scale(x, 3)]),
      nested: { t: ops.scale(x, 4) },
    }));
    ops.scale(x, 5); // outside any scope: untracked
    expect(r.a[0]!.freed || r.m.get('k')!.freed || [...r.s][0]!.freed || r.nested.t.freed).toBe(false);
    expect(tr.live()).toBe(1 + 4 + 1);
  });

  it('frees on throw and refuses async functions', () => {
    const tr = tracked();
    const x = randn(tr.backend, [3], new Rng(9));
    expect(() =>
      tidy(() => {
        ops.scale(x, 2);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(tr.live()).toBe(1);
    expect(() =>
      tidy(() => {
        beginScope(); // never ended: the throw skips past it
        ops.scale(x, 3);
        throw new Error('inner');
      }),
    ).toThrow('inner');
    expect(tr.live()).toBe(1);
    expect(() => tidy(async () => ops.scale(x, 2))).toThrow(/tidy: fn returned a Promise/);
    expect(tr.live()).toBe(1);
  });

  it('nested scopes hand kept tensors (and storage ownership, even through a returned view) to the parent', () => {
    const tr = tracked();
    const be = tr.backend;
    const x = randn(be, [2, 3], new Rng(10));
    let inner: Tensor | null = null;
    tidy(() => {
      inner = tidy(() => ops.reshape(ops.scale(x, 2), [6])); // the owner (scale output) is dropped
      expect(inner.freed).toBe(false);
      expect(tr.live()).toBe(2);
      return null;
    });
    expect(inner!.freed).toBe(true);
    expect(tr.live()).toBe(1);
  });

  it('beginScope/endScope span awaits and must end innermost first', async () => {
    const tr = tracked();
    const x = randn(tr.backend, [4], new Rng(11));
    const outer = beginScope();
    const inner = beginScope();
    expect(() => endScope(outer)).toThrow(/inner scope is still open/);
    endScope(inner);
    const y = ops.scale(ops.scale(x, 2), 2);
    await Promise.resolve();
    const s = await ops.sum(y).item();
    expect(s).toBeCloseTo(
      vals(x).reduce((a, b) => a + 4 * b, 0),
      12,
    );
    endScope(outer, y);
    expect(() => endScope(outer)).toThrow(/already ended/);
    expect(tr.live()).toBe(2); // x and y
  });

  it('a returned loss keeps its graph, so backward after tidy gives the same gradients', () => {
    const run = (useTidy: boolean, release: boolean) => {
      const tr = tracked();
      const be = tr.backend;
      const rng = new Rng(12);
      const x = randn(be, [4, 3], rng);
      const w = randn(be, [5, 3], rng, 1, 0, { requiresGrad: true });
      const f = () => ops.sum(ops.activation(ops.rmsNorm(ops.linear(x, w), fromArray(be, [1, 2, 3, 4, 5])), 'silu'));
      const l = useTidy ? tidy(f) : f();
      backward(l, { release });
      const g = vals(w.grad!);
      return { g, live: tr.live() };
    };
    const ref = run(false, false);
    expect(run(true, false).g).toEqual(ref.g);
    const rel = run(true, true);
    expect(rel.g).toEqual(ref.g);
    // x, w, w.grad, the loss and the rmsNorm weight made inside tidy (a graph leaf: kept with the graph).
    expect(rel.live).toBe(5);
  });

  it('a keep()-marked graph output also keeps its graph', () => {
    const tr = tracked();
    const be = tr.backend;
    const rng = new Rng(20);
    const w = randn(be, [3, 3], rng, 1, 0, { requiresGrad: true });
    const x = randn(be, [2, 3], rng);
    let l: Tensor | null = null;
    tidy(() => {
      l = keep(ops.sum(ops.activation(ops.linear(x, w), 'gelu_erf')));
      return null;
    });
    backward(l!, { release: true });
    l!.free();
    expect(w.grad!.freed).toBe(false);
    expect(tr.live()).toBe(3); // w, x, w.grad
  });

  it('gradients made by a backward inside tidy survive it', () => {
    const tr = tracked();
    const be = tr.backend;
    const rng = new Rng(13);
    const w = randn(be, [3, 3], rng, 1, 0, { requiresGrad: true });
    const x = randn(be, [2, 3], rng);
    const lv = tidy(() => {
      const l = ops.sum(ops.linear(x, w));
      backward(l);
      return l;
    });
    expect(w.grad!.freed).toBe(false);
    expect(lv.freed).toBe(false);
    expect(tr.live()).toBe(4); // w, x, w.grad, loss
  });
});

describe('backward release', () => {
  /** A graph touching every kind of node: shared inputs, pass-through gradients, views, saved stats. */
  function graph(be: ReturnType<typeof tracked>['backend'], rng: Rng) {
    const B = 2;
    const T = 3;
    const H = 2;
    const D = 2;
    const C = H * D;
    const x = randn(be, [B * T, C], rng);
    const W = randn(be, [3 * C, C], rng, 0.5, 0, { requiresGrad: true });
    const ln = randn(be, [C], rng, 0.3, 1, { requiresGrad: true });
    const lnb = randn(be, [C], rng, 0.1, 0, { requiresGrad: true });
    const head = randn(be, [7, C], rng, 0.5, 0, { requiresGrad: true });
    const targets = Int32Array.from({ length: B * T }, () => rng.int(7));
    const forward = () => {
      const h = ops.layerNorm(x, ln, lnb);
      const qkv = ops.linear(h, W);
      const q = ops.rope(ops.sliceCols(qkv, 0, C), { B, T, H, D, theta: 100 });
      const k = ops.sliceCols(qkv, C, C);
      const v = ops.reshape(ops.sliceCols(qkv, 2 * C, C), [B, T, H, D]);
      const a = ops.reshape(ops.attention(q, k, v, { B, T, H, D, causal: true }), [B * T, C]);
      const m = ops.mul(ops.activation(a, 'gelu_tanh'), ops.add(h, a));
      // the norm weight through a view: a graph node sharing a parameter's storage
      const r = ops.add(ops.rmsNorm(m, ops.reshape(ln, [C])), m);
      const logits = ops.linear(r, head);
      return { logits, loss: ops.crossEntropy(logits, targets) };
    };
    return { params: [W, ln, lnb, head], forward, x };
  }

  it('frees every intermediate and saved storage; gradients bitwise equal to a backward without release', () => {
    const grads: number[][][] = [];
    const losses: number[] = [];
    for (const release of [false, true]) {
      const tr = tracked('f32');
      const g = graph(tr.backend, new Rng(14));
      const before = tr.live();
      const { loss } = g.forward();
      backward(loss, { release });
      losses.push(readSync(loss.storage)[0]!);
      grads.push(g.params.map((p) => vals(p.grad!)));
      if (release)
        expect(tr.live()).toBe(before + g.params.length + 1); // grads + the loss
      else expect(tr.live()).toBeGreaterThan(before + g.params.length + 10);
    }
    expect(losses[1]).toBe(losses[0]);
    expect(grads[1]).toEqual(grads[0]);
  });

  it('keeps what the caller lists (and views of it), parameters reached through a view, and retainGrad tensors', async () => {
    const tr = tracked();
    const g = graph(tr.backend, new Rng(15));
    const { logits, loss } = g.forward();
    const before = await logits.read();
    const lv = ops.reshape(logits, [2, 3, 7]); // a view the caller also holds
    const mid = ops.scale(logits, 1).retainGrad();
    const l2 = ops.add(loss, ops.scale(ops.sum(ops.mul(ops.reshape(mid, [42]), ops.reshape(mid, [42]))), 0));
    backward(l2, { release: true, keep: [logits] });
    expect(Array.from(await logits.read())).toEqual(Array.from(before));
    expect(lv.freed).toBe(false);
    expect(mid.freed).toBe(false);
    expect(mid.grad!.freed).toBe(false);
    for (const p of g.params) expect(p.freed).toBe(false);
    expect(g.x.freed).toBe(false);
  });

  it('frees op outputs made without grad that feed the graph, but never inputs or views of them', () => {
    const tr = tracked();
    const be = tr.backend;
    const rng = new Rng(21);
    const input = randn(be, [2, 6], rng);
    const w = randn(be, [4, 3], rng, 1, 0, { requiresGrad: true });
    const frozen = randn(be, [3, 3], rng);
    const view = ops.reshape(input, [4, 3]); // a view of the caller's input: protected with it
    const feats = ops.linear(view, frozen); // frozen-layer activation: no node, made by an op
    const mine = noGrad(() => ops.scale(view, 2)); // computed by the caller, still needed: listed in keep
    const l = ops.sum(ops.add(ops.linear(feats, w, null), ops.linear(mine, w)));
    backward(l, { release: true, keep: [mine] });
    expect(feats.freed).toBe(true);
    expect(input.freed || view.freed || mine.freed || frozen.freed).toBe(false);
    expect(tr.live()).toBe(7 - 1 + 1 - 1); // input, w, frozen, mine, l, w.grad (feats and the linear outputs gone)
  });

  it('using a released intermediate throws; release with retainGraph is refused', () => {
    const tr = tracked();
    const g = graph(tr.backend, new Rng(16));
    const { logits, loss } = g.forward();
    expect(() => backward(loss, { release: true, retainGraph: true })).toThrow(/exclude each other/);
    backward(loss, { release: true });
    expect(() => ops.sum(logits)).toThrow(/sum: .*was freed/);
    logits.free(); // still idempotent
  });

  it('hooks (gradTap-style views of the gradient) see valid data; their own tidy cleans up inside backward', () => {
    const tr = tracked();
    const be = tr.backend;
    const rng = new Rng(17);
    const w = randn(be, [3, 3], rng, 1, 0, { requiresGrad: true });
    const x = randn(be, [4, 3], rng);
    const seen: number[] = [];
    tidy(() => {
      const y = ops.linear(x, w);
      // what src/model's gradTap does: an identity node whose backward hands the gradient to a callback
      const tapped = record(
        new Tensor(be, y.shape, y.storage, false),
        [y],
        (g) => {
          const dy = new Tensor(be, y.shape, g, false);
          tidy(() => seen.push(readSync(ops.sum(ops.mul(dy, dy)).storage)[0]!));
          return [g];
        },
        'gradTap',
      );
      backward(ops.sum(ops.mul(tapped, tapped)), { release: true });
      return null;
    });
    // d(sum y²)/dy = 2y
    const y = readSync(noGrad(() => ops.linear(x, w)).storage);
    expect(seen[0]).toBeCloseTo(
      Array.from(y).reduce((a, v) => a + 4 * v * v, 0),
      10,
    );
    expect(tr.live()).toBe(3 + 1); // w, x, w.grad + the check's own linear above
  });
});

describe('live counters', () => {
  it('liveTensorCount counts storages once (views excluded) and only drops on free', () => {
    const be = new CpuBackend();
    const c0 = liveTensorCount();
    const x = randn(be, [3], new Rng(18));
    const v = ops.reshape(x, [1, 3]);
    const d = x.detach();
    expect(liveTensorCount()).toBe(c0 + 1);
    v.free();
    d.free();
    x.free();
    expect(liveTensorCount()).toBe(c0);
  });

  it('a storage swapped in after a direct backend free (clipGradNorm, checkpoint loads) keeps the count exact', async () => {
    const tr = tracked();
    const be = tr.backend;
    const rng = new Rng(19);
    const w = randn(be, [4, 4], rng, 1, 0, { requiresGrad: true });
    const x = randn(be, [3, 4], rng);
    const c0 = liveTensorCount();
    for (let i = 0; i < 3; i++) {
      const l = ops.sum(ops.linear(x, w));
      backward(l, { release: true });
      await clipGradNorm([w], 1e-3); // scales: frees the old grad storage directly and assigns a new one
      l.free();
      w.zeroGrad();
      expect(liveTensorCount()).toBe(c0);
      expect(tr.live()).toBe(2);
    }
  });
});
