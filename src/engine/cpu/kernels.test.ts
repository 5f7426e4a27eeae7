/**
 * The f32 row kernels (kernels.ts) behind the CPU backend's activations, gated activation, norms,
 * cross-entropy, attention, RoPE and elementwise ops: each against the f64 reference loops of the same backend on fresh random
 * inputs (the f64 backend is itself finite-difference checked by the engine's suites), backward kernels
 * included; bitwise-identical results at 1, 2 and 3 threads (sizes above the threading threshold, so the
 * staged pool path runs, and below it); the fused gated activation bitwise equal to its composition.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activation, AttentionParams, Storage } from '../backend';
import { Rng } from '../random';
import { compareArrays } from '../testing';
import { CpuBackend, readSync } from './backend';
import { cpuThreadsInfo, initCpuThreads, setCpuThreads, setMaxStagedBytes } from './pool';

const THREADS = 3;
const f32 = new CpuBackend({ dtype: 'f32' });
const f64 = new CpuBackend({ dtype: 'f64' });

/** Fresh values in [-scale, scale), rounded to f32 so both backends see the same numbers. */
function rand(n: number, rng: Rng, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(rng.uniform(-scale, scale));
  return a;
}

function bits(s: Storage): Uint32Array {
  const a = readSync(s);
  if (!(a instanceof Float32Array)) throw new Error('expected f32 storage');
  return new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

/** Index of the first differing bit pattern (-1: identical), and the lengths (a cheap bitwise equality). */
function firstDiff(a: Storage, b: Storage): [number, number, number] {
  const x = bits(a);
  const y = bits(b);
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  return [x.length === y.length && i === x.length ? -1 : i, x.length, y.length];
}

function expectSameBits(a: Storage, b: Storage): void {
  const [at, la, lb] = firstDiff(a, b);
  expect(la).toBe(lb);
  expect(at).toBe(-1);
}

/** Runs `f` on the f32 backend at 1, 2 and THREADS threads; the outputs must agree bit for bit. Returns the
 *  1-thread outputs. */
function sameAtEveryThreadCount(f: () => Storage[]): Storage[] {
  const runs = [1, 2, THREADS].map((t) => {
    setCpuThreads(t);
    return f();
  });
  setCpuThreads(THREADS);
  for (let t = 1; t < runs.length; t++) {
    runs[0]!.forEach((s, i) => expectSameBits(runs[t]![i]!, s));
  }
  return runs[0]!;
}

function close(a: Storage, b: Storage, tol: number): void {
  const r = compareArrays(readSync(a), readSync(b));
  expect(r.maxAbsRef).toBeGreaterThan(0); // a kernel that writes nothing must not pass
  expect(r.relErr).toBeLessThan(tol);
}

let before: number;
beforeAll(async () => {
  before = cpuThreadsInfo().requested;
  await initCpuThreads({ threads: THREADS });
});
afterAll(async () => {
  await initCpuThreads({ threads: before });
});

// [rows, cols]: above 2^15 values (the pool path) and below it (the calling thread only), odd widths.
const SHAPES: [number, number][] = [
  [301, 131],
  [7, 33],
];

describe.each(['silu', 'gelu_tanh', 'relu'] as Activation[])('activation %s', (kind) => {
  for (const [rows, cols] of SHAPES) {
    it(`${rows}x${cols}: forward and backward match the f64 reference, at every thread count`, () => {
      const rng = new Rng(rows + cols + kind.length);
      const n = rows * cols;
      const x = rand(n, rng, 4);
      const g = rand(n, rng);
      const [y, dx] = sameAtEveryThreadCount(() => {
        const xs = f32.fromArray(x);
        return [f32.activation(xs, kind), f32.activationBackward(f32.fromArray(g), xs, kind)];
      });
      close(y!, f64.activation(f64.fromArray(x), kind), 1e-6);
      close(dx!, f64.activationBackward(f64.fromArray(g), f64.fromArray(x), kind), 1e-6);
    });

    it(`${rows}x${cols}: the fused gated activation is bitwise its composition, forward and backward`, () => {
      const rng = new Rng(rows * cols + kind.length);
      const n = rows * cols;
      const a = f32.fromArray(rand(n, rng, 4));
      const u = f32.fromArray(rand(n, rng, 2));
      const dy = f32.fromArray(rand(n, rng));
      const [y, dgate, dup] = sameAtEveryThreadCount(() => {
        const r = f32.gatedActivationBackward(dy, a, u, kind);
        return [f32.gatedActivation(a, u, kind), r.dgate, r.dup];
      });
      expectSameBits(y!, f32.mul(f32.activation(a, kind), u));
      expectSameBits(dgate!, f32.activationBackward(f32.mul(dy, u), a, kind));
      expectSameBits(dup!, f32.mul(dy, f32.activation(a, kind)));
      // And against the f64 composition (independent loops).
      const a64 = f64.fromArray(readSync(a));
      const u64 = f64.fromArray(readSync(u));
      const dy64 = f64.fromArray(readSync(dy));
      close(y!, f64.mul(f64.activation(a64, kind), u64), 1e-6);
      close(dgate!, f64.activationBackward(f64.mul(dy64, u64), a64, kind), 1e-6);
      close(dup!, f64.mul(dy64, f64.activation(a64, kind)), 1e-6);
    });
  }
});

describe('norms', () => {
  for (const [rows, dim] of SHAPES) {
    it(`RMSNorm ${rows}x${dim}: forward, backward (dx, dw) vs the f64 reference, at every thread count`, () => {
      const rng = new Rng(rows * 3 + dim);
      const x = rand(rows * dim, rng, 3);
      const w = rand(dim, rng, 2);
      const g = rand(rows * dim, rng);
      const [y, rstd, dx, dw] = sameAtEveryThreadCount(() => {
        const f = f32.rmsNorm(f32.fromArray(x), f32.fromArray(w), rows, dim, 1e-5);
        const b = f32.rmsNormBackward(f32.fromArray(g), f32.fromArray(x), f32.fromArray(w), f.rstd, rows, dim);
        return [f.y, f.rstd, b.dx, b.dw];
      });
      const rf = f64.rmsNorm(f64.fromArray(x), f64.fromArray(w), rows, dim, 1e-5);
      const rb = f64.rmsNormBackward(f64.fromArray(g), f64.fromArray(x), f64.fromArray(w), rf.rstd, rows, dim);
      close(y!, rf.y, 1e-6);
      close(rstd!, rf.rstd, 1e-6);
      close(dx!, rb.dx, 1e-5);
      close(dw!, rb.dw, 1e-5);
    });

    for (const withBias of [true, false]) {
      it(`LayerNorm ${rows}x${dim}${withBias ? '' : ' without bias'}: forward, backward vs the f64 reference, at every thread count`, () => {
        const rng = new Rng(rows * 5 + dim + (withBias ? 1 : 0));
        const x = rand(rows * dim, rng, 3).map((v, i) => v + (i % 7)); // a mean away from 0
        const w = rand(dim, rng, 2);
        const b = rand(dim, rng);
        const g = rand(rows * dim, rng);
        const [y, mean, rstd, dx, dw, db] = sameAtEveryThreadCount(() => {
          const f = f32.layerNorm(f32.fromArray(x), f32.fromArray(w), withBias ? f32.fromArray(b) : null, rows, dim, 1e-5);
          const r = f32.layerNormBackward(f32.fromArray(g), f32.fromArray(x), f32.fromArray(w), f.mean, f.rstd, rows, dim);
          return [f.y, f.mean, f.rstd, r.dx, r.dw, r.db];
        });
        const rf = f64.layerNorm(f64.fromArray(x), f64.fromArray(w), withBias ? f64.fromArray(b) : null, rows, dim, 1e-5);
        const rb = f64.layerNormBackward(f64.fromArray(g), f64.fromArray(x), f64.fromArray(w), rf.mean, rf.rstd, rows, dim);
        close(y!, rf.y, 1e-6);
        close(mean!, rf.mean, 1e-6);
        close(rstd!, rf.rstd, 1e-6);
        close(dx!, rb.dx, 1e-5);
        close(dw!, rb.dw, 1e-5);
        close(db!, rb.db, 1e-5);
      });
    }
  }
});

describe('cross-entropy', () => {
  for (const [rows, vocab] of [
    [130, 301],
    [5, 17],
  ] as [number, number][]) {
    it(`${rows}x${vocab} with ignored rows: loss and gradient vs the f64 reference, at every thread count`, () => {
      const rng = new Rng(rows + vocab * 11);
      const x = rand(rows * vocab, rng, 5);
      const targets = Int32Array.from({ length: rows }, (_, r) => (r % 4 === 1 ? -100 : rng.int(vocab)));
      const dl = rand(rows, rng);
      const [loss, dx] = sameAtEveryThreadCount(() => {
        const xs = f32.fromArray(x);
        return [
          f32.crossEntropy(xs, targets, rows, vocab, -100),
          f32.crossEntropyBackward(xs, targets, f32.fromArray(dl), rows, vocab, -100),
        ];
      });
      close(loss!, f64.crossEntropy(f64.fromArray(x), targets, rows, vocab, -100), 1e-6);
      close(dx!, f64.crossEntropyBackward(f64.fromArray(x), targets, f64.fromArray(dl), rows, vocab, -100), 1e-6);
      // Ignored rows: zero loss, zero gradient (the staged memory is reused, so they must be written).
      const l = readSync(loss!);
      const d = readSync(dx!);
      for (let r = 1; r < rows; r += 4) {
        expect(l[r]).toBe(0);
        for (let c = 0; c < vocab; c++) expect(d[r * vocab + c]).toBe(0);
      }
    });
  }

  it('a target outside the vocabulary is a named error, forward and backward', () => {
    const x = f32.fromArray(rand(2 * 40000, new Rng(1)));
    const t = Int32Array.from([3, 40000]);
    expect(() => f32.crossEntropy(x, t, 2, 40000, -100)).toThrow(/crossEntropy: target 40000 at row 1 outside vocabulary of 40000/);
    expect(() => f32.crossEntropyBackward(x, t, f32.fromArray([1, 1]), 2, 40000, -100)).toThrow(
      /crossEntropyBackward: target 40000 at row 1 outside vocabulary/,
    );
  });
});

describe('attention', () => {
  const cases: AttentionParams[] = [
    { B: 2, T: 70, H: 4, Hkv: 2, D: 16, scale: 0.25, causal: true },
    { B: 1, T: 45, H: 3, Hkv: 3, D: 8, scale: 0.3, causal: false },
  ];
  for (const p of cases) {
    it(`B=${p.B} T=${p.T} H=${p.H}/${p.Hkv} D=${p.D} causal=${p.causal}: forward and backward vs the f64 reference`, () => {
      const rng = new Rng(p.T * 13 + p.H);
      const nq = p.B * p.T * p.H * p.D;
      const nk = p.B * p.T * p.Hkv * p.D;
      const q = rand(nq, rng, 2);
      const k = rand(nk, rng, 2);
      const v = rand(nk, rng);
      const dout = rand(nq, rng);
      const outs = sameAtEveryThreadCount(() => {
        const f = f32.attention(f32.fromArray(q), f32.fromArray(k), f32.fromArray(v), p);
        const g = f32.attentionBackward(f32.fromArray(dout), f32.fromArray(q), f32.fromArray(k), f32.fromArray(v), f.out, f.lse, p);
        return [f.out, f.lse, g.dq, g.dk, g.dv];
      });
      const rf = f64.attention(f64.fromArray(q), f64.fromArray(k), f64.fromArray(v), p);
      const rb = f64.attentionBackward(f64.fromArray(dout), f64.fromArray(q), f64.fromArray(k), f64.fromArray(v), rf.out, rf.lse, p);
      [rf.out, rf.lse, rb.dq, rb.dk, rb.dv].forEach((r, i) => close(outs[i]!, r, 2e-5));
    });
  }
});

describe('AdamW on f32 (the product path’s torch-form update)', () => {
  it('matches the f64 reference update over several steps, with decay and a gradient scale', () => {
    const rng = new Rng(404);
    const n = 50003; // above the threading threshold: the pool path runs at 2 and 3 threads
    const p0 = rand(n, rng);
    const m0 = rand(n, rng, 0.01);
    const v0 = rand(n, rng, 0.001).map(Math.abs);
    const s32 = [p0, m0, v0].map((a) => f32.fromArray(a));
    const s64 = [p0, m0, v0].map((a) => f64.fromArray(a));
    for (let step = 1; step <= 4; step++) {
      const g = rand(n, rng);
      const prm = { lr: 1e-2 * step, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step, gradScale: 0.5 };
      // In place: every thread count updates its own copy of the same state, bit for bit alike.
      const before = s32.map((x) => readSync(x).slice());
      const [p1, m1, v1] = sameAtEveryThreadCount(() => {
        const st = before.map((x) => f32.fromArray(x));
        f32.adamw(st[0]!, f32.fromArray(g), st[1]!, st[2]!, prm);
        return st;
      });
      s32.splice(0, 3, p1!, m1!, v1!);
      f64.adamw(s64[0]!, f64.fromArray(g), s64[1]!, s64[2]!, prm);
      // Same inputs rounded the same way each step: compare this step's update, not drift.
      for (let i = 0; i < 3; i++) {
        close(s32[i]!, s64[i]!, 1e-6);
        s64[i] = f64.fromArray(readSync(s32[i]!));
      }
    }
  });
});

describe('elementwise ops and RoPE', () => {
  /** The f32 values the reference loop stores: each element's double result rounded to f32. */
  const expectValues = (s: Storage, want: (i: number) => number) => {
    const a = readSync(s);
    let bad = -1;
    for (let i = 0; i < a.length && bad < 0; i++) if (!Object.is(a[i], Math.fround(want(i)))) bad = i;
    expect(bad).toBe(-1);
  };
  for (const [rows, cols] of SHAPES) {
    it(`${rows}x${cols}: add, sub, mul, scale, addBias are the reference's f32 values, at every thread count`, () => {
      const rng = new Rng(rows * 17 + cols);
      const n = rows * cols;
      const x = rand(n, rng, 3);
      const y = rand(n, rng, 2);
      const b = rand(cols, rng);
      const [sum, diff, prod, scaled, biased, twice] = sameAtEveryThreadCount(() => {
        const xs = f32.fromArray(x);
        const ys = f32.fromArray(y);
        return [
          f32.add(xs, ys),
          f32.sub(xs, ys),
          f32.mul(xs, ys),
          f32.scale(xs, -1.7),
          f32.addBias(xs, f32.fromArray(b), rows, cols),
          f32.add(xs, xs),
        ];
      });
      expectValues(sum!, (i) => x[i]! + y[i]!);
      expectValues(diff!, (i) => x[i]! - y[i]!);
      expectValues(prod!, (i) => x[i]! * y[i]!);
      expectValues(scaled!, (i) => x[i]! * -1.7);
      expectValues(biased!, (i) => x[i]! + b[i % cols]!);
      expectValues(twice!, (i) => x[i]! + x[i]!);
      // And the f64 backend's loops.
      const [x64, y64] = [f64.fromArray(x), f64.fromArray(y)];
      close(sum!, f64.add(x64, y64), 1e-7);
      close(diff!, f64.sub(x64, y64), 1e-7);
      close(prod!, f64.mul(x64, y64), 1e-7);
      close(scaled!, f64.scale(x64, -1.7), 1e-7);
      close(biased!, f64.addBias(x64, f64.fromArray(b), rows, cols), 1e-7);
    });

    it(`${rows}x${cols}: axpy accumulates in place like the reference, at every thread count`, () => {
      const rng = new Rng(rows * 19 + cols);
      const n = rows * cols;
      const t0 = rand(n, rng, 3);
      const src = rand(n, rng, 2);
      const [acc, self] = sameAtEveryThreadCount(() => {
        const t = f32.fromArray(t0);
        f32.axpy(t, f32.fromArray(src), 0.37);
        const u = f32.fromArray(t0);
        f32.axpy(u, u, -2.5); // the same storage as source and target
        return [t, u];
      });
      expectValues(acc!, (i) => t0[i]! + 0.37 * src[i]!);
      expectValues(self!, (i) => t0[i]! + -2.5 * t0[i]!);
      const t64 = f64.fromArray(t0);
      f64.axpy(t64, f64.fromArray(src), 0.37);
      close(acc!, t64, 1e-7);
    });
  }

  for (const p of [
    { B: 2, T: 45, H: 6, D: 64, theta: 10000 },
    { B: 1, T: 5, H: 3, D: 6, theta: 500, positionOffset: 7 },
  ]) {
    it(`RoPE B=${p.B} T=${p.T} H=${p.H} D=${p.D}: forward and inverse are the reference loop's bits, at every thread count`, () => {
      const rng = new Rng(p.T * 7 + p.D);
      const n = p.B * p.T * p.H * p.D;
      const x = rand(n, rng, 2);
      const [fwd, inv, back] = sameAtEveryThreadCount(() => {
        const y = f32.rope(f32.fromArray(x), p, false);
        return [y, f32.rope(f32.fromArray(x), p, true), f32.rope(y, p, true)];
      });
      // The reference loop written out again, on the f32 input, stored to f32.
      const ref = (inverse: boolean) => {
        const half = p.D / 2;
        const out = new Float32Array(n);
        for (let r = 0; r < p.B * p.T * p.H; r++) {
          const t = Math.floor(r / p.H) % p.T;
          const pos = t + (p.positionOffset ?? 0);
          for (let i = 0; i < half; i++) {
            const ang = pos * Math.pow(p.theta, (-2 * i) / p.D);
            const c = Math.cos(ang);
            const sn = (inverse ? -1 : 1) * Math.sin(ang);
            const x1 = x[r * p.D + i]!;
            const x2 = x[r * p.D + i + half]!;
            out[r * p.D + i] = x1 * c - x2 * sn;
            out[r * p.D + i + half] = x2 * c + x1 * sn;
          }
        }
        return f32.fromArray(out);
      };
      expectSameBits(fwd!, ref(false));
      expectSameBits(inv!, ref(true));
      close(fwd!, f64.rope(f64.fromArray(x), p, false), 1e-6);
      close(inv!, f64.rope(f64.fromArray(x), p, true), 1e-6);
      close(back!, f64.fromArray(x), 1e-5); // the inverse undoes the rotation
    });
  }
});

describe('jobs too big to stage', () => {
  it('run on the calling thread (row kernels) or product by product (attention), with the same bits', () => {
    const rng = new Rng(505);
    const [rows, dim] = [200, 190];
    const x = f32.fromArray(rand(rows * dim, rng, 3));
    const w = f32.fromArray(rand(dim, rng));
    const p: AttentionParams = { B: 2, T: 40, H: 4, Hkv: 2, D: 8, scale: 0.3, causal: true };
    const q = f32.fromArray(rand(p.B * p.T * p.H * p.D, rng));
    const k = f32.fromArray(rand(p.B * p.T * p.Hkv * p.D, rng));
    const dout = f32.fromArray(rand(p.B * p.T * p.H * p.D, rng));
    // One query head per kv head: dK and dV are written as f32 without the doubles' sum (attention.ts).
    const p1: AttentionParams = { ...p, Hkv: p.H };
    const k1 = f32.fromArray(rand(p.B * p.T * p.H * p.D, rng));
    const v1 = f32.fromArray(rand(p.B * p.T * p.H * p.D, rng));
    const all = () => {
      const n = f32.rmsNorm(x, w, rows, dim, 1e-5);
      const nb = f32.rmsNormBackward(x, x, w, n.rstd, rows, dim);
      const a = f32.attention(q, k, k, p);
      const ab = f32.attentionBackward(dout, q, k, k, a.out, a.lse, p);
      const a1 = f32.attention(q, k1, v1, p1);
      const ab1 = f32.attentionBackward(dout, q, k1, v1, a1.out, a1.lse, p1);
      return [n.y, nb.dx, nb.dw, f32.gatedActivation(x, x, 'silu'), a.out, a.lse, ab.dq, ab.dk, ab.dv, a1.out, ab1.dq, ab1.dk, ab1.dv];
    };
    setCpuThreads(THREADS);
    const staged = all();
    const prev = setMaxStagedBytes(1024);
    try {
      const direct = all();
      staged.forEach((s, i) => expectSameBits(direct[i]!, s));
    } finally {
      setMaxStagedBytes(prev);
    }
  });
});
