/**
 * Decoder structure and hooks: low-rank equivalence (an exact factorisation changes nothing), causality and
 * batch independence, the KFAC hooks (x and dy reconstruct every weight gradient), parameter plumbing
 * (trainable subsets, read-back, named errors).
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from '../engine/cpu/backend';
import { exactSvd } from '../engine/linalg/svd';
import { Rng } from '../engine/random';
import { backward, noGrad } from '../engine/tensor';
import { Decoder, decoderFromWeights, linearName, linearNames, paramsFromWeights, weightsFromParams } from './decoder';
import { ModelFormatError, ShapeMismatchError } from './errors';
import { randomModel, smallSpec, type SmallFamily } from './random-model';
import type { AttnProj, MlpProj, ModelSpec } from './spec';
import type { WeightMap } from './weights';

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(vocab));
}

function logitsOf(dec: Decoder, ids: Int32Array, B: number, T: number): Float64Array {
  return Float64Array.from(noGrad(() => readSync(dec.forward(ids, B, T).storage)));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function identity(n: number): Float32Array {
  const a = new Float32Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = 1;
  return a;
}

/**
 * Re-expresses dense linears as two factors without changing the product: A = W, B = I (rank = in);
 * A = I, B = W (rank = out); or A = U·diag(S), B = Vᵀ from an exact SVD (rank = min(out, in)).
 */
function factorExactly(
  spec: ModelSpec,
  weights: WeightMap,
  layer: number,
  plan: Partial<Record<AttnProj | MlpProj, 'AI' | 'IB' | 'svd'>>,
): { spec: ModelSpec; weights: WeightMap } {
  const s2: ModelSpec = structuredClone(spec);
  const w2: WeightMap = new Map(weights);
  for (const [proj, how] of Object.entries(plan) as [AttnProj | MlpProj, 'AI' | 'IB' | 'svd'][]) {
    const base = linearName(layer, proj);
    const W = weights.get(`${base}.weight`)!;
    const [out, inn] = W.shape as [number, number];
    w2.delete(`${base}.weight`);
    if (how === 'AI') {
      s2.layers[layer]!.ranks[proj] = inn;
      w2.set(`${base}.weight_a`, { dtype: 'F32', shape: [out, inn], data: W.data.slice() });
      w2.set(`${base}.weight_b`, { dtype: 'F32', shape: [inn, inn], data: identity(inn) });
    } else if (how === 'IB') {
      s2.layers[layer]!.ranks[proj] = out;
      w2.set(`${base}.weight_a`, { dtype: 'F32', shape: [out, out], data: identity(out) });
      w2.set(`${base}.weight_b`, { dtype: 'F32', shape: [out, inn], data: W.data.slice() });
    } else {
      const r = exactSvd(W.data, out, inn);
      const k = r.rank;
      const A = new Float32Array(out * k);
      for (let i = 0; i < out; i++) for (let j = 0; j < k; j++) A[i * k + j] = r.U[i * k + j]! * r.S[j]!;
      s2.layers[layer]!.ranks[proj] = k;
      w2.set(`${base}.weight_a`, { dtype: 'F32', shape: [out, k], data: A });
      w2.set(`${base}.weight_b`, { dtype: 'F32', shape: [k, inn], data: Float32Array.from(r.Vt) });
    }
  }
  return { spec: s2, weights: w2 };
}

describe('low-rank equivalence', () => {
  for (const family of ['llama', 'gpt2'] as SmallFamily[]) {
    it(`${family}: exact two-factor forms of dense linears give the same logits`, () => {
      const spec = smallSpec(family);
      const weights = randomModel(spec, 7, { std: 0.2, normJitter: 0.1, biasStd: 0.05 });
      const be = new CpuBackend({ dtype: 'f64' });
      const ids = randomIds(2 * 6, spec.vocabSize, 3);
      const dense = logitsOf(decoderFromWeights(be, spec, weights), ids, 2, 6);
      // Identity factorings are exact in any precision; SVD factors are f32-rounded, so allow ~1e-5.
      const id = factorExactly(spec, weights, 0, { q: 'AI', k: 'IB', o: 'AI', up: 'IB', down: 'AI' });
      const idLogits = logitsOf(decoderFromWeights(be, id.spec, id.weights), ids, 2, 6);
      expect(maxAbsDiff(idLogits, dense)).toBeLessThan(1e-12);
      const sv = factorExactly(spec, weights, 1, { q: 'svd', v: 'svd', o: 'svd', up: 'svd', down: 'svd' });
      const svLogits = logitsOf(decoderFromWeights(be, sv.spec, sv.weights), ids, 2, 6);
      const d = maxAbsDiff(svLogits, dense);
      expect(d).toBeLessThan(1e-5);
      expect(id.spec.layers[0]!.ranks.q).toBe(spec.hiddenSize);
      console.log(
        `[low-rank ${family}] identity factors |Δ| ${maxAbsDiff(idLogits, dense).toExponential(1)}, SVD factors |Δ| ${d.toExponential(1)}`,
      );
    });
  }
});

describe('causality and batch independence', () => {
  for (const family of ['gpt2', 'opt', 'llama'] as SmallFamily[]) {
    it(`${family}: changing token t changes only rows >= t of its own sequence`, () => {
      const spec = smallSpec(family);
      const be = new CpuBackend({ dtype: 'f64' });
      const dec = decoderFromWeights(be, spec, randomModel(spec, 11, { std: 0.2 }));
      const B = 2;
      const T = 6;
      const ids = randomIds(B * T, spec.vocabSize, 5);
      const base = logitsOf(dec, ids, B, T);
      const ids2 = ids.slice();
      const t0 = 3;
      ids2[t0] = (ids2[t0]! + 1) % spec.vocabSize;
      const changed = logitsOf(dec, ids2, B, T);
      const V = spec.vocabSize;
      for (let row = 0; row < B * T; row++) {
        const d = maxAbsDiff(changed.subarray(row * V, (row + 1) * V), base.subarray(row * V, (row + 1) * V));
        const affected = row < T && row >= t0;
        if (affected) expect(d, `row ${row}`).toBeGreaterThan(1e-6);
        else expect(d, `row ${row}`).toBe(0);
      }
    });
  }
});

describe('linear hooks (KFAC support pass)', () => {
  it('x and dy of every dense linear reconstruct its weight and bias gradients', () => {
    for (const family of ['qwen2', 'gpt2'] as SmallFamily[]) {
      const spec = smallSpec(family);
      const be = new CpuBackend({ dtype: 'f64' });
      const dec = decoderFromWeights(be, spec, randomModel(spec, 13, { std: 0.2, biasStd: 0.05 }), { requiresGrad: true });
      const B = 2;
      const T = 5;
      const ids = randomIds(B * T, spec.vocabSize, 1);
      const targets = randomIds(B * T, spec.vocabSize, 2);
      targets[2] = -100;
      const xs = new Map<string, Float64Array>();
      const dys = new Map<string, Float64Array>();
      const loss = dec.loss(ids, targets, B, T, {
        hooks: {
          onInput: (name, x) => {
            expect(xs.has(name)).toBe(false);
            xs.set(name, Float64Array.from(readSync(x.storage)));
          },
          onOutputGrad: (name, dy) => {
            expect(dys.has(name)).toBe(false);
            dys.set(name, Float64Array.from(readSync(dy.storage)));
          },
        },
      });
      backward(loss);
      const names = linearNames(spec);
      expect([...xs.keys()].sort()).toEqual([...names].sort());
      expect([...dys.keys()].sort()).toEqual([...names].sort());
      for (const name of names) {
        const W = dec.params.get(`${name}.weight`)!;
        const [out, inn] = W.shape as [number, number];
        const x = xs.get(name)!;
        const dy = dys.get(name)!;
        const rows = B * T;
        expect(x.length).toBe(rows * inn);
        expect(dy.length).toBe(rows * out);
        const gW = readSync(W.grad!.storage);
        let err = 0;
        let ref = 0;
        for (let o = 0; o < out; o++) {
          for (let i = 0; i < inn; i++) {
            let s = 0;
            for (let r = 0; r < rows; r++) s += dy[r * out + o]! * x[r * inn + i]!;
            err = Math.max(err, Math.abs(s - gW[o * inn + i]!));
            ref = Math.max(ref, Math.abs(s));
          }
        }
        expect(ref).toBeGreaterThan(0);
        expect(err / ref, `${family} ${name}`).toBeLessThan(1e-12);
        const bias = dec.params.get(`${name}.bias`);
        if (bias) {
          const gb = readSync(bias.grad!.storage);
          for (let o = 0; o < out; o++) {
            let s = 0;
            for (let r = 0; r < rows; r++) s += dy[r * out + o]!;
            expect(Math.abs(s - gb[o]!)).toBeLessThan(1e-12 * Math.max(1, ref));
          }
        }
      }
    }
  });

  it('low-rank linears report the input and output of the whole product; filter limits the hooks', () => {
    const spec = smallSpec('llama');
    spec.layers[1]!.ranks = { q: 3, down: 4 };
    const be = new CpuBackend({ dtype: 'f64' });
    // Frozen except block 0: the middle (block 1) still reports dy because its inputs depend on block 0.
    const dec = decoderFromWeights(be, spec, randomModel(spec, 21, { std: 0.2 }), { requiresGrad: (n) => n.startsWith('layers.0.') });
    const B = 1;
    const T = 6;
    const seen: string[] = [];
    let x: Float64Array | null = null;
    let dy: Float64Array | null = null;
    const target = linearName(1, 'down');
    backward(
      dec.loss(randomIds(T, spec.vocabSize, 3), randomIds(T, spec.vocabSize, 4), B, T, {
        hooks: {
          filter: (n) => n.startsWith('layers.1.'),
          onInput: (n, t) => {
            seen.push(n);
            if (n === target) x = Float64Array.from(readSync(t.storage));
          },
          onOutputGrad: (n, t) => {
            if (n === target) dy = Float64Array.from(readSync(t.storage));
          },
        },
      }),
    );
    expect(seen).toEqual(linearNames(spec).filter((n) => n.startsWith('layers.1.')));
    for (const [name, p] of dec.params) expect(p.grad !== null, name).toBe(name.startsWith('layers.0.'));
    // dL/dA = dyᵀ (x Bᵀ) for W = A·B: check against a float64 reference built from the hooked tensors, using
    // autograd on a fresh trainable copy of A.
    const A = dec.params.get(`${target}.weight_a`)!;
    const Bf = readSync(dec.params.get(`${target}.weight_b`)!.storage);
    const [out, rank] = A.shape as [number, number];
    const inn = Bf.length / rank;
    const xb = new Float64Array(T * rank);
    for (let r = 0; r < T; r++)
      for (let k = 0; k < rank; k++) {
        let s = 0;
        for (let i = 0; i < inn; i++) s += x![r * inn + i]! * Bf[k * inn + i]!;
        xb[r * rank + k] = s;
      }
    // Recompute with A trainable to get its gradient from autograd.
    A.requiresGrad = true;
    backward(dec.loss(randomIds(T, spec.vocabSize, 3), randomIds(T, spec.vocabSize, 4), B, T));
    const gA = readSync(A.grad!.storage);
    for (let o = 0; o < out; o++)
      for (let k = 0; k < rank; k++) {
        let s = 0;
        for (let r = 0; r < T; r++) s += dy![r * out + o]! * xb[r * rank + k]!;
        expect(Math.abs(s - gA[o * rank + k]!)).toBeLessThan(1e-12);
      }
  });
});

describe('parameters', () => {
  it('round-trips weights, lists trainable params with decay flags, rejects bad inputs by name', async () => {
    const spec = smallSpec('gpt2');
    const weights = randomModel(spec, 3);
    const be = new CpuBackend({ dtype: 'f32' });
    const dec = decoderFromWeights(be, spec, weights, { requiresGrad: (n) => n.startsWith('layers.1.') });
    const back = await weightsFromParams(dec.params);
    expect([...back.keys()]).toEqual([...weights.keys()]);
    for (const [k, v] of weights) expect(back.get(k)!.data).toEqual(v.data);
    const np = dec.namedParams();
    expect(np.every((p) => p.name.startsWith('layers.1.'))).toBe(true);
    expect(np.find((p) => p.name === 'layers.1.attn.q.weight')!.decay).toBe(true);
    expect(np.find((p) => p.name === 'layers.1.attn.q.bias')!.decay).toBe(false);
    expect(np.find((p) => p.name === 'layers.1.ln1.weight')!.decay).toBe(false);
    const all = dec.namedParams(false);
    expect(all.length).toBe(weights.size);
    expect(all.find((p) => p.name === 'embed.weight')!.decay).toBe(true);
    expect(all.find((p) => p.name === 'norm.bias')!.decay).toBe(false);
    expect(dec.numParams()).toBe([...weights.values()].reduce((a, t) => a + t.data.length, 0));

    const missing = new Map(weights);
    missing.delete('layers.0.mlp.up.bias');
    expect(() => paramsFromWeights(be, spec, missing)).toThrow(ModelFormatError);
    const wrong = new Map(weights);
    wrong.set('layers.0.attn.q.weight', { dtype: 'F32', shape: [3, 3], data: new Float32Array(9) });
    expect(() => paramsFromWeights(be, spec, wrong)).toThrow(ShapeMismatchError);
    const extra = new Map(weights);
    extra.set('layers.9.attn.q.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    expect(() => paramsFromWeights(be, spec, extra)).toThrow(ModelFormatError);
    expect(() => dec.forward(new Int32Array([0, spec.vocabSize]), 1, 2)).toThrow(RangeError);
    const T = spec.maxPositions + 1;
    expect(() => dec.forward(new Int32Array(T), 1, T)).toThrow(/learned positions/);
  });
});
