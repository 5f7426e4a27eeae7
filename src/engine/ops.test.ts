import { describe, expect, it } from 'vitest';
import { CpuBackend } from './cpu/backend';
import * as ops from './ops';
import { Tensor } from './tensor';
import { compareBackends, gradCheck, type InputSpec, type OpFn } from './testing';

const f64 = new CpuBackend({ dtype: 'f64' });
const f32 = new CpuBackend({ dtype: 'f32' });

interface Case {
  name: string;
  specs: InputSpec[];
  fn: OpFn;
}

const ids = new Int32Array([3, 0, 5, 3, 1, 6, 3]); // repeats exercise scatter-add accumulation
const targets = new Int32Array([2, -100, 0, 6, -100, 4, 1]);

// Attention shapes: B=2, T=5, D=4 with GQA (H=4, Hkv=2), MQA (Hkv=1) and plain MHA.
function attnCase(name: string, H: number, Hkv: number, causal: boolean, flat: boolean): Case {
  const B = 2;
  const T = 5;
  const D = 4;
  return {
    name,
    specs: [
      { shape: flat ? [B * T, H * D] : [B, T, H, D], lo: 0.1, hi: 1.5 },
      { shape: flat ? [B * T, Hkv * D] : [B, T, Hkv, D], lo: 0.1, hi: 1.5 },
      { shape: flat ? [B * T, Hkv * D] : [B, T, Hkv, D], lo: 0.1, hi: 1.5 },
    ],
    fn: ([q, k, v]) => ops.attention(q!, k!, v!, { B, T, H, Hkv, D, causal }),
  };
}

const mmCases: Case[] = [];
for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    const m = 3;
    const k = 5;
    const n = 7;
    const tag = `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
    const aShape = (lead: number[]) => [...lead, ...(transA ? [k, m] : [m, k])];
    const bShape = (lead: number[]) => [...lead, ...(transB ? [n, k] : [k, n])];
    const o = { transA, transB };
    mmCases.push(
      { name: `matmul 2-D ${tag}`, specs: [{ shape: aShape([]) }, { shape: bShape([]) }], fn: ([a, b]) => ops.matmul(a!, b!, o) },
      {
        name: `matmul batched ${tag}`,
        specs: [{ shape: aShape([2, 3]) }, { shape: bShape([2, 3]) }],
        fn: ([a, b]) => ops.matmul(a!, b!, o),
      },
      { name: `matmul shared B ${tag}`, specs: [{ shape: aShape([3]) }, { shape: bShape([]) }], fn: ([a, b]) => ops.matmul(a!, b!, o) },
      { name: `matmul shared A ${tag}`, specs: [{ shape: aShape([]) }, { shape: bShape([3]) }], fn: ([a, b]) => ops.matmul(a!, b!, o) },
    );
  }
}

const cases: Case[] = [
  { name: 'add', specs: [{ shape: [3, 5, 7] }, { shape: [3, 5, 7] }], fn: ([a, b]) => ops.add(a!, b!) },
  { name: 'add same tensor twice', specs: [{ shape: [3, 5] }], fn: ([a]) => ops.add(a!, a!) },
  { name: 'sub', specs: [{ shape: [3, 5, 7] }, { shape: [3, 5, 7] }], fn: ([a, b]) => ops.sub(a!, b!) },
  { name: 'mul', specs: [{ shape: [3, 5, 7] }, { shape: [3, 5, 7] }], fn: ([a, b]) => ops.mul(a!, b!) },
  { name: 'mul self', specs: [{ shape: [4, 3] }], fn: ([a]) => ops.mul(a!, a!) },
  { name: 'scale', specs: [{ shape: [3, 5, 7] }], fn: ([a]) => ops.scale(a!, -1.7) },
  { name: 'addBias', specs: [{ shape: [3, 5, 7] }, { shape: [7] }], fn: ([x, b]) => ops.addBias(x!, b!) },
  ...(['gelu_tanh', 'gelu_erf', 'relu', 'silu'] as const).map(
    (kind): Case => ({
      name: `activation ${kind}`,
      specs: [{ shape: [3, 5, 7], lo: 0.05, hi: 3 }],
      fn: ([x]) => ops.activation(x!, kind),
    }),
  ),
  { name: 'reshape', specs: [{ shape: [3, 5, 7] }], fn: ([x]) => ops.mul(ops.reshape(x!, [15, -1]), ops.reshape(x!, [15, 7])) },
  { name: 'sliceCols', specs: [{ shape: [3, 5, 11] }], fn: ([x]) => ops.sliceCols(x!, 3, 5) },
  { name: 'sum', specs: [{ shape: [3, 5, 7] }], fn: ([x]) => ops.sum(x!) },
  { name: 'mean', specs: [{ shape: [3, 5, 7] }], fn: ([x]) => ops.mean(x!) },
  ...mmCases,
  { name: 'linear', specs: [{ shape: [3, 5, 7] }, { shape: [6, 7] }], fn: ([x, w]) => ops.linear(x!, w!) },
  { name: 'linear+bias', specs: [{ shape: [3, 5, 7] }, { shape: [6, 7] }, { shape: [6] }], fn: ([x, w, b]) => ops.linear(x!, w!, b) },
  {
    name: 'lowRankLinear+bias',
    specs: [{ shape: [3, 5, 7] }, { shape: [6, 3] }, { shape: [3, 7] }, { shape: [6] }],
    fn: ([x, a, b, c]) => ops.lowRankLinear(x!, a!, b!, c),
  },
  { name: 'embedding', specs: [{ shape: [7, 5] }], fn: ([t]) => ops.embedding(t!, ids, [1, 7]) },
  {
    name: 'layerNorm+bias',
    specs: [{ shape: [3, 5, 7] }, { shape: [7] }, { shape: [7] }],
    fn: ([x, w, b]) => ops.layerNorm(x!, w!, b!, 1e-5),
  },
  { name: 'layerNorm no bias', specs: [{ shape: [5, 7] }, { shape: [7] }], fn: ([x, w]) => ops.layerNorm(x!, w!, null, 1e-5) },
  { name: 'rmsNorm', specs: [{ shape: [3, 5, 7] }, { shape: [7] }], fn: ([x, w]) => ops.rmsNorm(x!, w!, 1e-6) },
  attnCase('attention causal GQA', 4, 2, true, false),
  attnCase('attention non-causal GQA', 4, 2, false, false),
  attnCase('attention causal MQA flat', 3, 1, true, true),
  attnCase('attention causal MHA', 2, 2, true, false),
  {
    name: 'rope',
    specs: [{ shape: [2, 3, 2, 6] }],
    fn: ([x]) => ops.rope(x!, { B: 2, T: 3, H: 2, D: 6, theta: 10000, positionOffset: 4 }),
  },
  {
    name: 'rope inverse',
    specs: [{ shape: [2, 3, 2, 6] }],
    fn: ([x]) => ops.rope(x!, { B: 2, T: 3, H: 2, D: 6, theta: 500 }, true),
  },
  { name: 'crossEntropyRows', specs: [{ shape: [7, 9], lo: 0.1, hi: 3 }], fn: ([x]) => ops.crossEntropyRows(x!, targets) },
  { name: 'crossEntropy mean', specs: [{ shape: [7, 9], lo: 0.1, hi: 3 }], fn: ([x]) => ops.crossEntropy(x!, targets) },
  { name: 'crossEntropySum', specs: [{ shape: [7, 9], lo: 0.1, hi: 3 }], fn: ([x]) => ops.crossEntropySum(x!, targets) },
  {
    // A small composite (norm -> linear -> activation -> loss) checks gradient flow across ops.
    name: 'composite',
    specs: [{ shape: [7, 5] }, { shape: [5] }, { shape: [9, 5] }, { shape: [9] }],
    fn: ([x, g, w, b]) => ops.crossEntropy(ops.activation(ops.linear(ops.rmsNorm(x!, g!), w!, b), 'silu'), targets),
  },
];

describe('gradients vs central finite differences (f64)', () => {
  cases.forEach((c, i) => {
    it(c.name, () => {
      const r = gradCheck(f64, c.fn, c.specs, 1000 + i);
      expect(r.checked).toBeGreaterThan(0);
      if (r.maxRelErr > 1e-6) {
        throw new Error(`${c.name}: max rel err ${r.maxRelErr.toExponential(2)} at ${JSON.stringify(r.worst)}`);
      }
    });
  });
});

describe('f32 backend vs f64 backend (same inputs)', () => {
  cases.forEach((c, i) => {
    it(c.name, async () => {
      const r = await compareBackends(f32, f64, c.fn, c.specs, 2000 + i);
      expect(r.out.maxAbsRef).toBeGreaterThan(0);
      expect(r.out.relErr).toBeLessThan(1e-5);
      for (const g of r.grads) {
        expect(g.maxAbsRef).toBeGreaterThan(0);
        expect(g.relErr).toBeLessThan(2e-5);
      }
    });
  });
});

describe('gradCheck catches a wrong gradient', () => {
  it('flags a backward that is off by a factor', async () => {
    const { record } = await import('./tensor');
    const wrongSquare: OpFn = ([x]) => {
      const be = x!.backend;
      const y = new Tensor(be, x!.shape, be.mul(x!.storage, x!.storage));
      return record(y, [x!], (g) => [be.scale(be.mul(g, x!.storage), 2.02)], 'wrongSquare');
    };
    const r = gradCheck(f64, wrongSquare, [{ shape: [3, 4] }], 7);
    expect(r.maxRelErr).toBeGreaterThan(1e-3);
  });
});

describe('shape errors name the op and the shapes', () => {
  const be = f64;
  const t = (shape: number[]) => new Tensor(be, shape, be.zeros(shape.reduce((a, b) => a * b, 1)));
  it('matmul', () => {
    expect(() => ops.matmul(t([3, 4]), t([5, 2]))).toThrow(/matmul.*\[3, 4\].*\[5, 2\]/);
  });
  it('linear', () => {
    expect(() => ops.linear(t([2, 4]), t([3, 5]))).toThrow(/linear.*\[2, 4\].*\[3, 5\]/);
  });
  it('add', () => {
    expect(() => ops.add(t([2, 4]), t([4, 2]))).toThrow(/add.*\[2, 4\].*\[4, 2\]/);
  });
  it('attention', () => {
    expect(() =>
      ops.attention(t([1, 2, 3, 4]), t([1, 2, 2, 4]), t([1, 2, 2, 4]), { B: 1, T: 2, H: 3, Hkv: 2, D: 4, causal: true }),
    ).toThrow(/attention.*H=3.*Hkv=2/);
  });
  it('crossEntropy', () => {
    expect(() => ops.crossEntropy(t([3, 4]), new Int32Array(2))).toThrow(/crossEntropy.*2 targets.*\[3, 4\]/);
  });
  it('reshape', () => {
    expect(() => ops.reshape(t([3, 4]), [5, -1])).toThrow(/reshape/);
  });
});
