/**
 * No per-step storage growth: training and evaluation loops of a small Decoder on CpuBackend, counted
 * through the engine's strict storage tracker (which also throws where a WebGPU pool would: double free,
 * freed storage passed to a kernel) and liveTensorCount. Plus: gradients, losses and updated weights are
 * bitwise identical with backward's release on and off.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend, readSync } from '../engine/cpu/backend';
import { trackStorages } from '../engine/memory';
import * as ops from '../engine/ops';
import { AdamW, clipGradNorm } from '../engine/optim';
import { Rng } from '../engine/random';
import { backward, liveTensorCount, noGrad, tidy } from '../engine/tensor';
import { decoderFromWeights, type Decoder } from './decoder';
import { generate } from './generate';
import { randomModel, smallSpec, type SmallFamily } from './random-model';

const B = 2;
const T = 8;

/** `trainable` limits which parameters require grad (adapter-style tuning: frozen layers below). */
function setup(family: SmallFamily, seed: number, trainable?: (name: string) => boolean) {
  const spec = smallSpec(family);
  const tr = trackStorages(new CpuBackend({ dtype: 'f32' }), { strict: true });
  const dec = decoderFromWeights(tr.backend, spec, randomModel(spec, seed), { requiresGrad: trainable ?? true });
  const rng = new Rng(seed);
  const batch = () => {
    const ids = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
    const targets = Int32Array.from({ length: B * T }, (_, i) => (i % T === 0 ? -100 : rng.int(spec.vocabSize)));
    return { ids, targets };
  };
  return { tr, dec, batch, opt: new AdamW(dec.namedParams(), { lr: 1e-2 }) };
}

type Step = (dec: Decoder, b: { ids: Int32Array; targets: Int32Array }) => Promise<number>;

/** Runs `steps` steps and returns [tracked live storages, liveTensorCount] before each one. */
async function counts(
  family: SmallFamily,
  step: Step,
  train: boolean,
  steps = 4,
  trainable?: (name: string) => boolean,
): Promise<number[][]> {
  const { tr, dec, batch, opt } = setup(family, 3, trainable);
  const out: number[][] = [];
  for (let i = 0; i < steps; i++) {
    out.push([tr.live(), liveTensorCount()]);
    const v = await step(dec, batch());
    expect(Number.isFinite(v)).toBe(true);
    if (train) {
      await clipGradNorm(dec.namedParams(), 1.0);
      opt.step();
      opt.zeroGrad();
    }
  }
  out.push([tr.live(), liveTensorCount()]);
  return out;
}

function expectFlat(c: number[][]): void {
  for (const row of c) expect(row).toEqual(c[0]);
}

const families: SmallFamily[] = ['llama', 'gpt2'];

describe('training steps do not grow live storage', () => {
  for (const family of families) {
    it(`${family}: backward(loss, { release: true }) then loss.free()`, async () => {
      expectFlat(
        await counts(
          family,
          async (dec, b) => {
            const loss = dec.loss(b.ids, b.targets, B, T);
            backward(loss, { release: true });
            const v = await loss.item();
            loss.free();
            return v;
          },
          true,
        ),
      );
    });

    it(`${family}: forward + plain backward inside tidy`, async () => {
      expectFlat(
        await counts(
          family,
          async (dec, b) => {
            const loss = tidy(() => {
              const l = dec.loss(b.ids, b.targets, B, T);
              backward(l);
              return l;
            });
            const v = await loss.item();
            loss.free();
            return v;
          },
          true,
        ),
      );
    });

    it(`${family}: loss built in tidy, backward with release outside it`, async () => {
      expectFlat(
        await counts(
          family,
          async (dec, b) => {
            const loss = tidy(() => dec.loss(b.ids, b.targets, B, T));
            backward(loss, { release: true });
            const v = await loss.item();
            loss.free();
            return v;
          },
          true,
        ),
      );
    });
  }

  it('adapter-style (only layers.1 trains): tidy + release is flat; release alone cannot see frozen-layer internals', async () => {
    const onlyL1 = (n: string) => n.startsWith('layers.1.');
    expectFlat(
      await counts(
        'llama',
        async (dec, b) => {
          const loss = tidy(() => {
            const l = dec.loss(b.ids, b.targets, B, T);
            backward(l, { release: true });
            return l;
          });
          const v = await loss.item();
          loss.free();
          return v;
        },
        true,
        4,
        onlyL1,
      ),
    );
    // Release frees what the graph touches (layer 0's output included); layer 0's inner activations are
    // never part of the graph, so only a scope frees them.
    const c = await counts(
      'llama',
      async (dec, b) => {
        const loss = dec.loss(b.ids, b.targets, B, T);
        backward(loss, { release: true });
        const v = await loss.item();
        loss.free();
        return v;
      },
      true,
      3,
      onlyL1,
    );
    expect(c[2]![0]! - c[1]![0]!).toBeGreaterThan(0);
  });

  it('support-pass style: KFAC hooks (onInput, onOutputGrad) with release', async () => {
    expectFlat(
      await counts(
        'llama',
        async (dec, b) => {
          let acc = 0;
          const loss = dec.loss(b.ids, b.targets, B, T, {
            hooks: {
              onInput: (_n, x) =>
                tidy(() => {
                  acc += readSync(ops.sum(x).storage)[0]!;
                }),
              onOutputGrad: (_n, dy) =>
                tidy(() => {
                  acc += readSync(ops.sum(dy).storage)[0]!;
                }),
            },
          });
          backward(loss, { release: true });
          const v = await loss.item();
          loss.free();
          expect(Number.isFinite(acc)).toBe(true);
          return v;
        },
        true,
      ),
    );
  });

  it('without release or tidy the counters do grow (so the checks above can see a leak)', async () => {
    const c = await counts(
      'llama',
      async (dec, b) => {
        const loss = dec.loss(b.ids, b.targets, B, T);
        backward(loss);
        const v = await loss.item();
        loss.free();
        return v;
      },
      true,
      3,
    );
    expect(c[1]![0]).toBeGreaterThan(c[0]![0]!);
    expect(c[2]![1]).toBeGreaterThan(c[1]![1]!);
  });
});

describe('evaluation steps do not grow live storage', () => {
  for (const family of families) {
    it(`${family}: noGrad forward inside tidy, keeping logits and per-row losses`, async () => {
      expectFlat(
        await counts(
          family,
          async (dec, b) => {
            const { nll, logits } = tidy(() =>
              noGrad(() => {
                const lg = dec.forward(b.ids, B, T);
                return { nll: ops.crossEntropyRows(lg, b.targets), logits: lg };
              }),
            );
            const rows = await nll.read();
            const L = await logits.read();
            nll.free();
            logits.free();
            return rows[1]! + L[0]!;
          },
          false,
        ),
      );
    });

    it(`${family}: lastLogits and loss under grad mode but dropped (no backward)`, async () => {
      expectFlat(
        await counts(
          family,
          async (dec, b) => {
            const v = tidy(() => {
              dec.lastLogits(b.ids, B, T);
              return readSync(dec.loss(b.ids, b.targets, B, T).storage)[0]!;
            });
            return v;
          },
          false,
        ),
      );
    });
  }
});

describe('generation', () => {
  it('generate() leaves only the model behind (one tidy per token)', async () => {
    const { tr, dec } = setup('llama', 5);
    const before = tr.live();
    const r = await generate(dec, [1, 2, 3], { maxNewTokens: 5, temperature: 0.8, topK: 10, seed: 1 });
    expect(r.tokens.length).toBe(5);
    expect(tr.live()).toBe(before);
  });
});

describe('release does not change the numbers', () => {
  const cases = [
    ['llama', undefined],
    ['gpt2', undefined],
    ['qwen2', undefined],
    ['gpt2', (n: string) => n.startsWith('layers.1.')],
  ] as const;
  for (const [family, trainable] of cases) {
    const what = trainable ? `${family} (layers.1 only)` : family;
    it(`${what}: losses, every gradient and the AdamW-updated weights are bitwise equal over 3 steps`, async () => {
      const runs = [false, true].map((release) => {
        const { dec, batch, opt } = setup(family, 11, trainable);
        const losses: number[] = [];
        const grads: Float32Array[][] = [];
        for (let i = 0; i < 3; i++) {
          const b = batch();
          const loss = dec.loss(b.ids, b.targets, B, T);
          backward(loss, { release });
          losses.push(readSync(loss.storage)[0]!);
          grads.push(dec.namedParams().map((p) => Float32Array.from(readSync(p.tensor.grad!.storage))));
          opt.step();
          opt.zeroGrad();
        }
        const weights = dec.namedParams().map((p) => Float32Array.from(readSync(p.tensor.storage)));
        return { losses, grads, weights };
      });
      expect(runs[1]!.losses).toEqual(runs[0]!.losses);
      expect(runs[1]!.grads.length).toBe(3);
      for (let i = 0; i < 3; i++) {
        runs[0]!.grads[i]!.forEach((g, j) =>
          expect(Buffer.compare(Buffer.from(runs[1]!.grads[i]![j]!.buffer), Buffer.from(g.buffer))).toBe(0),
        );
      }
      runs[0]!.weights.forEach((w, j) => expect(Buffer.compare(Buffer.from(runs[1]!.weights[j]!.buffer), Buffer.from(w.buffer))).toBe(0));
    });
  }
});
