import { describe, expect, it } from 'vitest';
import { memoryCheckpointStore } from '../../storage';
import { LoraAdapter } from './lora';
import { adapterBlocks } from '../emulator/split';
import { PauseController, meanLoss, tune, type TuneOptions } from './tune';
import { cpuDecoder, synthExamples, tinyModel } from './test-helpers';

const split = { bottom: 1, top: 1 };

async function logits(dec: ReturnType<typeof cpuDecoder>, ids: Int32Array, B: number, T: number): Promise<Float32Array> {
  const y = dec.forward(ids, B, T);
  const d = (await y.read()) as Float32Array;
  y.free();
  return d;
}

describe('LoRA', () => {
  it('with zero-initialised B reproduces the base model exactly (llama, gpt2, opt)', async () => {
    for (const fam of ['llama', 'gpt2', 'opt'] as const) {
      const { spec, weights } = tinyModel(fam, 3);
      const dec = cpuDecoder(spec, weights);
      const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 7 + 3) % 32);
      const base = await logits(dec, ids, 2, 6);
      const targets = fam === 'gpt2' ? (['q', 'k', 'v', 'o', 'up', 'down'] as const) : (['q', 'v', 'o', 'up', 'down'] as const);
      const lora = LoraAdapter.create(dec.backend, spec, adapterBlocks(spec, split), { r: 4, alpha: 8, targets: [...targets] }, 7);
      // A is random (not zero), B is zero.
      const a = await lora.tensors.values().next().value!.read();
      expect(a.some((x) => x !== 0)).toBe(true);
      const withLora = await lora.with(dec, () => logits(dec, ids, 2, 6));
      expect(Buffer.from(withLora.buffer).equals(Buffer.from(base.buffer))).toBe(true);
    }
  });

  it('init follows PEFT: A ~ U(±1/sqrt(in)), B = 0, scaling alpha/r', () => {
    const { spec, weights } = tinyModel('llama', 2);
    const be = cpuDecoder(spec, weights).backend;
    const lora = LoraAdapter.create(be, spec, [0], { r: 2, alpha: 6, targets: ['q'] }, 1);
    expect(lora.scaling).toBe(3);
    const shapes = [...lora.expectedShapes()];
    const A = lora.tensors.get('layers.0.attn.q.lora_A')!;
    const bound = 1 / Math.sqrt(16);
    return A.read().then(async (a) => {
      expect(a.every((x) => Math.abs(x) <= bound)).toBe(true);
      expect((await lora.tensors.get('layers.0.attn.q.lora_B')!.read()).every((x) => x === 0)).toBe(true);
      expect(shapes).toEqual([
        ['layers.0.attn.q.lora_A', [2, 16]],
        ['layers.0.attn.q.lora_B', [16, 2]],
      ]);
    });
  });

  it('rejects partial q/k/v on GPT-2 and unknown targets', () => {
    const { spec } = tinyModel('gpt2', 2);
    const be = cpuDecoder(spec, tinyModel('gpt2', 2).weights).backend;
    expect(() => LoraAdapter.create(be, spec, [0], { r: 2, alpha: 4, targets: ['q', 'v'] }, 1)).toThrow(/c_attn/);
    expect(() => LoraAdapter.create(be, spec, [0], { r: 2, alpha: 4, targets: ['gate'] }, 1)).toThrow(/does not exist/);
  });
});

describe('tune', () => {
  const train = synthExamples(24, 3);
  const valid = synthExamples(6, 4);
  const base: TuneOptions = {
    split,
    lr: 3e-3,
    batchSize: 4,
    gradAccum: 2,
    epochs: 2,
    seed: 5,
    evalEvery: 2,
    schedule: 'cosine',
    warmupSteps: 1,
    weightDecay: 0.01,
  };

  it('trains only the adapter blocks and lowers the validation loss', async () => {
    const { spec, weights } = tinyModel('llama', 4);
    const dec = cpuDecoder(spec, weights);
    const before = (await meanLoss(dec, valid, { batchSize: 8 })).loss;
    const middleBefore = await dec.params.get('layers.1.attn.q.weight')!.read();
    const r = await tune(dec, { train, valid }, { ...base, lr: 1e-2, epochs: 4 });
    const after = (await meanLoss(dec, valid, { batchSize: 8 })).loss;
    expect(after).toBeLessThan(before);
    expect(r.bestValLoss).toBeCloseTo(after, 5);
    expect(await dec.params.get('layers.1.attn.q.weight')!.read()).toEqual(middleBefore);
    expect(r.steps).toBe(r.totalSteps);
    expect([...r.adapter.weights.keys()].every((k) => k.startsWith('layers.0.') || k.startsWith('layers.3.'))).toBe(true);
    expect(r.history.length).toBe(r.steps);
  });

  for (const method of ['adapter', 'lora'] as const) {
    it(`${method}: interrupted at any step, resumes to bit-identical final weights`, async () => {
      const { spec, weights } = tinyModel('llama', 4);
      const opts: TuneOptions = { ...base, method, lora: { r: 2, alpha: 4, targets: ['q', 'v', 'down'] }, checkpointEvery: 2, lr: 5e-3 };
      const ref = await tune(cpuDecoder(spec, weights), { train, valid }, opts);
      for (const stopAt of [1, 3]) {
        const store = memoryCheckpointStore();
        const ac = new AbortController();
        await expect(
          tune(
            cpuDecoder(spec, weights),
            { train, valid },
            {
              ...opts,
              store,
              signal: ac.signal,
              onProgress: (p) => {
                if (p.phase === 'train' && p.step === stopAt) ac.abort();
              },
            },
          ),
        ).rejects.toThrow();
        expect((await store.checkpoints()).some((e) => e.id === 'done')).toBe(false);
        const resumed = await tune(cpuDecoder(spec, weights), { train, valid }, { ...opts, store });
        expect(resumed.resumedFrom).toBe(stopAt === 1 ? 0 : 2);
        for (const [k, t] of ref.adapter.weights) {
          expect(Buffer.from(resumed.adapter.weights.get(k)!.data.buffer).equals(Buffer.from(t.data.buffer)), k).toBe(true);
        }
        expect(resumed.bestStep).toBe(ref.bestStep);
        expect(resumed.history.map((h) => h.loss)).toEqual(ref.history.map((h) => h.loss));
        // A finished store returns the result without training.
        const again = await tune(cpuDecoder(spec, weights), { train, valid }, { ...opts, store });
        expect(again.resumedFrom).toBe('done');
        expect(
          Buffer.from(again.adapter.weights.values().next().value!.data.buffer).equals(
            Buffer.from(ref.adapter.weights.values().next().value!.data.buffer),
          ),
        ).toBe(true);
      }
    });
  }

  it('refuses to resume with other settings', async () => {
    const { spec, weights } = tinyModel('llama', 4);
    const store = memoryCheckpointStore();
    const ac = new AbortController();
    await expect(
      tune(
        cpuDecoder(spec, weights),
        { train, valid },
        {
          ...base,
          store,
          checkpointEvery: 1,
          signal: ac.signal,
          onProgress: (p) => {
            if (p.step === 1) ac.abort();
          },
        },
      ),
    ).rejects.toThrow();
    await expect(tune(cpuDecoder(spec, weights), { train, valid }, { ...base, lr: 1, store })).rejects.toThrow(/different settings/);
  });

  it('gradient accumulation of 2 batches of 4 equals one batch of 8 (same examples)', async () => {
    const { spec, weights } = tinyModel('llama', 3);
    const a = await tune(
      cpuDecoder(spec, weights),
      { train },
      { split, lr: 1e-2, batchSize: 4, gradAccum: 2, maxSteps: 1, seed: 1, maxGradNorm: null },
    );
    // Same order: the first 8 shuffled examples form the first step either way only if the order is the same;
    // batch 8 of the same permutation -> same first group.
    const b = await tune(
      cpuDecoder(spec, weights),
      { train },
      { split, lr: 1e-2, batchSize: 8, gradAccum: 1, maxSteps: 1, seed: 1, maxGradNorm: null },
    );
    for (const [k, t] of a.adapter.weights) {
      const u = b.adapter.weights.get(k)!;
      for (let i = 0; i < t.data.length; i++) expect(t.data[i]).toBeCloseTo(u.data[i]!, 5);
    }
  });

  it('pauses between steps and continues on resume', async () => {
    const { spec, weights } = tinyModel('llama', 3);
    const pause = new PauseController();
    let sawPause = false;
    const run = tune(
      cpuDecoder(spec, weights),
      { train },
      {
        split,
        lr: 1e-3,
        batchSize: 8,
        maxSteps: 3,
        pause,
        onProgress: (p) => {
          if (p.step === 1 && !sawPause) {
            sawPause = true;
            pause.pause();
            setTimeout(() => pause.resume(), 20);
          }
        },
      },
    );
    const r = await run;
    expect(sawPause).toBe(true);
    expect(r.steps).toBe(3);
  });
});
