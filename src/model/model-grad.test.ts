/**
 * Whole-model gradients: for a 2-layer model of each family (and compressed variants with low-rank linears
 * and pruned MLP widths) on CpuBackend f64, the gradient of the mean LM loss w.r.t. sampled entries of EVERY
 * parameter tensor matches central finite differences.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from '../engine/cpu/backend';
import { Rng } from '../engine/random';
import { backward, noGrad } from '../engine/tensor';
import { Decoder, decoderFromWeights } from './decoder';
import { randomModel, smallSpec, type SmallFamily } from './random-model';
import type { ModelSpec } from './spec';

const B = 2;
const T = 5;

function lossValue(dec: Decoder, ids: Int32Array, targets: Int32Array): number {
  return noGrad(() => readSync(dec.loss(ids, targets, B, T).storage)[0]!);
}

interface Worst {
  name: string;
  index: number;
  analytic: number;
  numeric: number;
  err: number;
}

/** Checks `perTensor` random entries plus the largest-gradient entry of every parameter. */
function checkModel(spec: ModelSpec, seed: number, perTensor = 3): { checked: number; tensors: number; worst: Worst } {
  const be = new CpuBackend({ dtype: 'f64' });
  // Larger-than-init weights so every nonlinearity (softmax, norms, gates) is away from its linear regime.
  const weights = randomModel(spec, seed, { std: 0.3, normJitter: 0.2, biasStd: 0.1 });
  const dec = decoderFromWeights(be, spec, weights, { requiresGrad: true });
  const rng = new Rng(seed + 17);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
  targets[3] = -100;
  targets[B * T - 1] = -100;
  backward(dec.loss(ids, targets, B, T));

  const h = 1e-5;
  let checked = 0;
  let worst: Worst = { name: '', index: -1, analytic: 0, numeric: 0, err: 0 };
  for (const [name, p] of dec.params) {
    expect(p.grad, `${name} has no gradient`).not.toBeNull();
    const g = readSync(p.grad!.storage);
    const w = readSync(p.storage);
    let big = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[big]!)) big = i;
    const idx = new Set([big]);
    while (idx.size < Math.min(perTensor + 1, g.length)) idx.add(rng.int(g.length));
    for (const i of idx) {
      const w0 = w[i]!;
      w[i] = w0 + h;
      const fp = lossValue(dec, ids, targets);
      w[i] = w0 - h;
      const fm = lossValue(dec, ids, targets);
      w[i] = w0;
      const numeric = (fp - fm) / (2 * h);
      const analytic = g[i]!;
      // relative error with a floor (1e-4) so entries whose gradient is ~0 (e.g. k biases, to which softmax
      // is invariant) are judged in absolute terms, to ~1e-9
      const err = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 1e-4);
      checked++;
      if (err > worst.err) worst = { name, index: i, analytic, numeric, err };
    }
  }
  return { checked, tensors: dec.params.size, worst };
}

function compressedSpec(family: SmallFamily): ModelSpec {
  const spec = smallSpec(family);
  const I = spec.intermediateSize;
  spec.layers = [
    { source: 0, ranks: { q: 3, k: 2, v: 3, o: 4, up: 5, gate: 4, down: 6 }, mlpWidth: I - 23 },
    { source: 1, ranks: { o: 5 }, mlpWidth: Math.floor(I / 2) - 1 },
  ];
  if (!spec.gatedMlp) delete spec.layers[0]!.ranks.gate;
  return spec;
}

describe('whole-model gradients vs central differences (CpuBackend f64)', () => {
  const cases: [string, () => ModelSpec][] = [
    ['gpt2', () => smallSpec('gpt2')],
    ['opt', () => smallSpec('opt')],
    ['llama (GQA 4/2, untied)', () => smallSpec('llama')],
    ['qwen2 (qkv bias, tied)', () => smallSpec('qwen2')],
    ['llama, low-rank + pruned widths', () => compressedSpec('llama')],
    ['gpt2, low-rank + pruned widths', () => compressedSpec('gpt2')],
  ];
  cases.forEach(([label, make], k) => {
    it(label, () => {
      const r = checkModel(make(), 100 + k);
      console.log(
        `[grad ${label}] ${r.checked} entries of ${r.tensors} tensors; worst rel err ${r.worst.err.toExponential(2)} at ${r.worst.name}[${r.worst.index}] (analytic ${r.worst.analytic.toExponential(4)}, numeric ${r.worst.numeric.toExponential(4)})`,
      );
      expect(r.worst.err).toBeLessThan(1e-5);
    });
  });
});
