/**
 * Forward results against independent, direct formulas (written here from the definitions, sharing no code
 * with the backend), plus autograd-engine behaviour.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from './cpu/backend';
import { setSimdEnabled, simdActive } from './cpu/matmul';
import { erf } from './cpu/special';
import * as ops from './ops';
import { Rng } from './random';
import { Tensor, backward, fromArray, noGrad, randn } from './tensor';
import { compareArrays, gradCheck, randomInput } from './testing';

const be = new CpuBackend({ dtype: 'f64' });
const be32 = new CpuBackend({ dtype: 'f32' });

function arr(t: Tensor): Float64Array {
  return Float64Array.from(readSync(t.storage));
}

describe('attention vs a naive formula', () => {
  // HF convention: repeat_kv repeats each kv head n_rep times consecutively, so query head h reads kv head
  // floor(h / n_rep); scores = q k^T * scale, causal mask j > i -> -inf, softmax over j, out = P v.
  function naive(
    q: Float64Array,
    k: Float64Array,
    v: Float64Array,
    B: number,
    T: number,
    H: number,
    Hkv: number,
    D: number,
    causal: boolean,
    scale: number,
  ) {
    const out = new Float64Array(B * T * H * D);
    const rep = H / Hkv;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / rep);
        for (let i = 0; i < T; i++) {
          const scores: number[] = [];
          for (let j = 0; j < T; j++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += q[((b * T + i) * H + h) * D + d]! * k[((b * T + j) * Hkv + kvh) * D + d]!;
            scores.push(causal && j > i ? -Infinity : s * scale);
          }
          const mx = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - mx));
          const z = e.reduce((a, c) => a + c, 0);
          for (let d = 0; d < D; d++) {
            let acc = 0;
            for (let j = 0; j < T; j++) acc += (e[j]! / z) * v[((b * T + j) * Hkv + kvh) * D + d]!;
            out[((b * T + i) * H + h) * D + d] = acc;
          }
        }
      }
    }
    return out;
  }

  for (const [H, Hkv, causal] of [
    [6, 2, true],
    [6, 3, false],
    [4, 1, true],
    [3, 3, false],
  ] as const) {
    it(`H=${H} Hkv=${Hkv} causal=${causal}`, () => {
      const rng = new Rng(H * 10 + Hkv + (causal ? 100 : 0));
      const B = 2;
      const T = 7;
      const D = 5;
      const q = randn(be, [B, T, H, D], rng);
      const k = randn(be, [B, T, Hkv, D], rng);
      const v = randn(be, [B, T, Hkv, D], rng);
      const scale = 0.37;
      const y = ops.attention(q, k, v, { B, T, H, Hkv, D, scale, causal });
      const ref = naive(arr(q), arr(k), arr(v), B, T, H, Hkv, D, causal, scale);
      expect(compareArrays(arr(y), ref).relErr).toBeLessThan(1e-12);
      // Causality: the first token attends only to itself, so its output is exactly its own v row.
      if (causal) {
        const rep = H / Hkv;
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < D; d++) {
            expect(arr(y)[h * D + d]).toBeCloseTo(arr(v)[Math.floor(h / rep) * D + d]!, 12);
          }
        }
      }
    });
  }

  it('saves the log-sum-exp of the scaled scores', () => {
    const rng = new Rng(5);
    const [B, T, H, D] = [1, 4, 2, 3];
    const q = randn(be, [B, T, H, D], rng);
    const k = randn(be, [B, T, H, D], rng);
    const v = randn(be, [B, T, H, D], rng);
    const { lse } = be.attention(q.storage, k.storage, v.storage, { B, T, H, Hkv: H, D, scale: 0.5, causal: true });
    const Q = arr(q);
    const K = arr(k);
    const L = readSync(lse);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        let z = 0;
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += Q[(i * H + h) * D + d]! * K[(j * H + h) * D + d]!;
          z += Math.exp(0.5 * s);
        }
        expect(L[h * T + i]).toBeCloseTo(Math.log(z), 12);
      }
    }
  });
});

describe('rope', () => {
  const p = { B: 2, T: 5, H: 3, D: 8, theta: 10000, positionOffset: 3 };
  it('matches q*cos + rotate_half(q)*sin with inv_freq = theta^(-2i/D)', () => {
    const rng = new Rng(11);
    const x = randn(be, [p.B, p.T, p.H, p.D], rng);
    const y = arr(ops.rope(x, p));
    const X = arr(x);
    const half = p.D / 2;
    for (let b = 0; b < p.B; b++) {
      for (let t = 0; t < p.T; t++) {
        for (let h = 0; h < p.H; h++) {
          const o = ((b * p.T + t) * p.H + h) * p.D;
          const row = Array.from(X.subarray(o, o + p.D));
          const rot = [...row.slice(half).map((z) => -z), ...row.slice(0, half)];
          for (let d = 0; d < p.D; d++) {
            const invFreq = 1 / Math.pow(p.theta, (2 * (d % half)) / p.D);
            const ang = (t + p.positionOffset) * invFreq;
            expect(y[o + d]).toBeCloseTo(row[d]! * Math.cos(ang) + rot[d]! * Math.sin(ang), 12);
          }
        }
      }
    }
  });
  it('inverse undoes rope (f64 exact to 1e-14, f32 to 1e-6)', () => {
    for (const b of [be, be32]) {
      const rng = new Rng(12);
      const x = randn(b, [p.B, p.T, p.H, p.D], rng);
      const back = ops.rope(ops.rope(x, p), p, true);
      expect(compareArrays(readSync(back.storage), readSync(x.storage)).relErr).toBeLessThan(b === be ? 1e-14 : 1e-6);
      // and it is not the identity
      expect(compareArrays(readSync(ops.rope(x, p).storage), readSync(x.storage)).relErr).toBeGreaterThan(1e-2);
    }
  });
  it('leaves position 0 unchanged', () => {
    const x = randn(be, [1, 1, 2, 6], new Rng(3));
    const y = ops.rope(x, { B: 1, T: 1, H: 2, D: 6, theta: 10000 });
    expect(compareArrays(arr(y), arr(x)).relErr).toBeLessThan(1e-15);
  });
});

describe('cross-entropy', () => {
  it('mean over non-ignored rows equals the direct formula, ignored rows do not matter', () => {
    const rng = new Rng(21);
    const rows = 6;
    const V = 5;
    const tg = new Int32Array([1, -100, 4, 0, -100, 2]);
    const logits = randn(be, [rows, V], rng, 2, 0, { requiresGrad: true });
    const loss = ops.crossEntropy(logits, tg);
    const L = arr(logits);
    let want = 0;
    for (const r of [0, 2, 3, 5]) {
      const row = Array.from(L.subarray(r * V, r * V + V));
      want += Math.log(row.reduce((a, z) => a + Math.exp(z), 0)) - row[tg[r]!]!;
    }
    want /= 4;
    expect(arr(loss)[0]).toBeCloseTo(want, 12);
    backward(loss);
    const g = arr(logits.grad!);
    for (const r of [1, 4]) for (let c = 0; c < V; c++) expect(g[r * V + c]).toBe(0);
    // kept rows: softmax - onehot, divided by the count
    const row0 = Array.from(L.subarray(0, V));
    const z0 = row0.reduce((a, z) => a + Math.exp(z), 0);
    for (let c = 0; c < V; c++) expect(g[c]).toBeCloseTo((Math.exp(row0[c]!) / z0 - (c === 1 ? 1 : 0)) / 4, 12);

    // Changing ignored rows' logits changes nothing.
    const L2 = L.slice();
    for (let c = 0; c < V; c++) L2[V + c]! += 100 * (c + 1);
    expect(arr(ops.crossEntropy(fromArray(be, L2, [rows, V]), tg))[0]).toBeCloseTo(want, 12);
  });
  it('all rows ignored gives 0, not NaN', () => {
    const logits = randn(be, [2, 3], new Rng(1), 1, 0, { requiresGrad: true });
    const loss = ops.crossEntropy(logits, new Int32Array([-100, -100]));
    expect(arr(loss)[0]).toBe(0);
  });
  it('rejects a target outside the vocabulary', () => {
    const logits = randn(be, [2, 3], new Rng(1));
    expect(() => ops.crossEntropy(logits, new Int32Array([0, 3]))).toThrow(/target 3/);
  });
});

describe('activations vs definitions', () => {
  it('gelu_erf uses an accurate erf; gelu_tanh the tanh formula', () => {
    // erf reference values (from Python's math.erf)
    const refs: [number, number][] = [
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [2.5, 0.999593047982555],
      [3, 0.9999779095030014],
      [-1.3, -0.9340079449406524],
    ];
    for (const [x, e] of refs) expect(Math.abs(erf(x) - e)).toBeLessThan(2e-16 * 4);
    const xs = [-3.1, -0.7, 0.3, 1.9];
    const x = fromArray(be, xs);
    const ye = arr(ops.activation(x, 'gelu_erf'));
    const yt = arr(ops.activation(x, 'gelu_tanh'));
    xs.forEach((v, i) => {
      expect(ye[i]).toBeCloseTo(0.5 * v * (1 + erf(v / Math.SQRT2)), 14);
      expect(yt[i]).toBeCloseTo(0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))), 14);
    });
  });
});

describe('norms vs definitions', () => {
  it('layerNorm and rmsNorm', () => {
    const rng = new Rng(8);
    const x = randn(be, [3, 6], rng, 2, 1);
    const w = randn(be, [6], rng);
    const b = randn(be, [6], rng);
    const ln = arr(ops.layerNorm(x, w, b, 1e-5));
    const rms = arr(ops.rmsNorm(x, w, 1e-6));
    const X = arr(x);
    const W = arr(w);
    const Bv = arr(b);
    for (let r = 0; r < 3; r++) {
      const row = Array.from(X.subarray(r * 6, r * 6 + 6));
      const mu = row.reduce((a, c) => a + c, 0) / 6;
      const vr = row.reduce((a, c) => a + (c - mu) ** 2, 0) / 6;
      const ms = row.reduce((a, c) => a + c * c, 0) / 6;
      for (let c = 0; c < 6; c++) {
        expect(ln[r * 6 + c]).toBeCloseTo(((row[c]! - mu) / Math.sqrt(vr + 1e-5)) * W[c]! + Bv[c]!, 12);
        expect(rms[r * 6 + c]).toBeCloseTo((row[c]! / Math.sqrt(ms + 1e-6)) * W[c]!, 12);
      }
    }
  });
});

describe.each([
  ['WebAssembly SIMD', true],
  ['JS', false],
])('matmul vs naive triple loop (f32 %s kernel, blocking edges)', (_label, simd) => {
  beforeAll(() => {
    setSimdEnabled(simd);
  });
  afterAll(() => {
    setSimdEnabled(true);
  });
  if (simd) {
    it('the SIMD kernel is available under Node', () => {
      expect(simdActive()).toBe(true);
    });
  }
  // Sizes cross the kernels' KC=256, MC=64 and NC=256 block edges and leave row/column remainders
  // (m % 4 != 0, n % 8 != 0).
  const shapes: [number, number, number][] = [
    [67, 130, 129],
    [5, 1030, 3],
    [1, 1, 1],
    [9, 257, 300],
    [70, 260, 520],
  ];
  for (const [m, n, k] of shapes) {
    for (const [tA, tB] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      it(`${m}x${n}x${k} transA=${tA} transB=${tB}`, () => {
        expect(simdActive()).toBe(simd);
        const rng = new Rng(m + n + k);
        const A = randomInput({ shape: [m * k] }, rng);
        const Bm = randomInput({ shape: [k * n] }, rng);
        const C = readSync(be32.matmul(be32.fromArray(A), be32.fromArray(Bm), { batch: 1, m, n, k, transA: tA, transB: tB }));
        const ref = new Float64Array(m * n);
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let p = 0; p < k; p++) s += A[tA ? p * m + i : i * k + p]! * Bm[tB ? j * k + p : p * n + j]!;
            ref[i * n + j] = s;
          }
        }
        expect(compareArrays(C, ref).relErr).toBeLessThan(1e-6);
      });
    }
  }
});

describe('autograd engine', () => {
  it('accumulates leaf gradients across backward calls (micro-batches)', () => {
    const rng = new Rng(1);
    const x = randn(be, [4], rng, 1, 0, { requiresGrad: true });
    const w = randn(be, [4], rng);
    backward(ops.sum(ops.mul(x, w)));
    backward(ops.sum(ops.mul(x, w)));
    expect(
      compareArrays(
        arr(x.grad!),
        arr(w).map((v) => 2 * v),
      ).relErr,
    ).toBeLessThan(1e-15);
    x.zeroGrad();
    expect(x.grad).toBeNull();
  });
  it('a tensor used by several ops gets the sum of gradients', () => {
    const x = fromArray(be, [1.5, -2], [2], { requiresGrad: true });
    // y = sum(x*x + 3x + x) -> dy/dx = 2x + 4
    const y = ops.sum(ops.add(ops.add(ops.mul(x, x), ops.scale(x, 3)), x));
    backward(y);
    expect(Array.from(arr(x.grad!))).toEqual([7, 0]);
  });
  it('noGrad records nothing; frozen inputs get no gradient', () => {
    const rng = new Rng(2);
    const x = randn(be, [3], rng, 1, 0, { requiresGrad: true });
    const frozen = randn(be, [3], rng);
    const y = noGrad(() => ops.mul(x, frozen));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
    const z = ops.sum(ops.mul(x, frozen));
    backward(z);
    expect(frozen.grad).toBeNull();
    expect(() => backward(ops.sum(frozen))).toThrow(/does not require grad/);
  });
  it('retainGrad keeps an intermediate gradient (dL/dy of a linear output)', () => {
    const rng = new Rng(3);
    const x = randn(be, [2, 3], rng);
    const w = randn(be, [4, 3], rng, 1, 0, { requiresGrad: true });
    const y = ops.linear(x, w).retainGrad();
    const r = randn(be, [2, 4], rng);
    backward(ops.sum(ops.mul(y, r)));
    expect(compareArrays(arr(y.grad!), arr(r)).relErr).toBeLessThan(1e-15);
  });
  it('deep chains do not overflow the stack', () => {
    let x = fromArray(be, [1], [1], { requiresGrad: true });
    const x0 = x;
    for (let i = 0; i < 20000; i++) x = ops.scale(x, 1.0001);
    backward(x);
    expect(arr(x0.grad!)[0]).toBeCloseTo(Math.pow(1.0001, 20000), 6);
  });
  it('backward on a leaf sets its gradient to the seed', () => {
    const x = fromArray(be, [2, 3], [2], { requiresGrad: true });
    backward(x, { grad: be.fromArray([0.5, -1]) });
    expect(Array.from(arr(x.grad!))).toEqual([0.5, -1]);
  });
  it('a pass-through gradient shared by two inputs is not aliased', () => {
    // add returns the same storage for both inputs; later accumulation into one must not leak into the other.
    const a = fromArray(be, [1, 2], [2], { requiresGrad: true });
    const b = fromArray(be, [3, 4], [2], { requiresGrad: true });
    const y = ops.sum(ops.add(ops.add(a, b), ops.scale(a, 2)));
    backward(y);
    expect(Array.from(arr(a.grad!))).toEqual([3, 3]);
    expect(Array.from(arr(b.grad!))).toEqual([1, 1]);
    expect(a.grad!.storage).not.toBe(b.grad!.storage);
  });
  it('random DAGs with shared subexpressions match finite differences', () => {
    // Stress for gradient ownership: pass-through ops (add, reshape, addBias) and reuse of nodes in many
    // places, on leaves that are also used directly.
    const f64be = new CpuBackend({ dtype: 'f64' });
    for (let trial = 0; trial < 12; trial++) {
      const plan = new Rng(500 + trial);
      const steps = Array.from({ length: 14 }, () => ({ op: plan.int(6), a: plan.next(), b: plan.next() }));
      const fn = (xs: Tensor[]): Tensor => {
        const pool: Tensor[] = [...xs];
        const pick = (u: number) => pool[Math.floor(u * pool.length)];
        for (const st of steps) {
          const a = pick(st.a);
          const b = pick(st.b);
          switch (st.op) {
            case 0:
              pool.push(ops.add(a!, b!));
              break;
            case 1:
              pool.push(ops.mul(a!, b!));
              break;
            case 2:
              pool.push(ops.sub(a!, b!));
              break;
            case 3:
              pool.push(ops.scale(a!, 0.7));
              break;
            case 4:
              pool.push(ops.reshape(ops.reshape(a!, [12]), [3, 4]));
              break;
            default:
              pool.push(ops.activation(a!, 'silu'));
              break;
          }
        }
        // Output several nodes (including a leaf) so gradients arrive from many directions.
        return ops.add(ops.add(pool[pool.length - 1]!, pool[pool.length - 3]!), ops.mul(pool[1]!, pool[pool.length - 2]!));
      };
      const r = gradCheck(f64be, fn, [{ shape: [3, 4] }, { shape: [3, 4] }, { shape: [3, 4] }], 900 + trial);
      if (r.maxRelErr > 1e-6) throw new Error(`trial ${trial}: ${r.maxRelErr} at ${JSON.stringify(r.worst)}`);
    }
  });
  it('reshape is a view sharing storage', () => {
    const x = randn(be, [2, 6], new Rng(4));
    expect(ops.reshape(x, [3, 4]).storage).toBe(x.storage);
  });
});

describe('Rng', () => {
  it('is deterministic per seed and different across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const sa = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(sa);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(sa);
  });
  it('normal() has mean ~0 and variance ~1', () => {
    const r = new Rng(7);
    const n = 200000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.01);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.02);
  });
  it('next() is in [0,1) and roughly uniform', () => {
    const r = new Rng(9);
    const bins = new Array(10).fill(0);
    let outside = 0;
    for (let i = 0; i < 100000; i++) {
      const u = r.next();
      if (!(u >= 0 && u < 1)) outside++;
      else bins[Math.floor(u * 10)]++;
    }
    expect(outside).toBe(0);
    for (const b of bins) expect(Math.abs(b - 10000)).toBeLessThan(500);
  });
});

it('Tensor rejects a storage of the wrong size', () => {
  expect(() => new Tensor(be, [2, 3], be.zeros(5))).toThrow(/storage has 5 elements/);
});
