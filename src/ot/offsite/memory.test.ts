/**
 * The OT loops do not grow live storage step over step (a WebGPU backend reclaims buffers only on an explicit
 * free): tuning (adapter and LoRA, validation included), evaluation, the support pass and the gradient-shift
 * passes, counted through the engine's strict storage tracker (which also throws on a double free or a freed
 * storage passed to a kernel, as a GPU pool would) and liveTensorCount. Plus: the lifetime calls change no
 * number — tune and the batch scorer are bitwise equal to plain loops that free nothing.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../engine/cpu/backend';
import { trackStorages } from '../../engine/memory';
import * as ops from '../../engine/ops';
import { AdamW, clipScale, globalGradNorm, lrAt, type NamedParam } from '../../engine/optim';
import { backward, liveTensorCount, noGrad, type Tensor } from '../../engine/tensor';
import { makeBatches, type Example } from '../../data/batch';
import { IGNORE_INDEX } from '../../data/types';
import { decoderFromWeights, type Decoder } from '../../model/decoder';
import { batchScorer, evaluate } from './evaluate';
import { adapterGradientShift } from '../emulator/gradshift';
import { LoraAdapter, type LoraConfig } from './lora';
import { buildEmulator } from '../emulator/package';
import { adapterBlocks, inBlocks } from '../emulator/split';
import { supportPass, type SupportBatch } from '../emulator/support';
import { targetLogits } from './target-logits';
import { meanLoss, tune, type TuneMethod } from './tune';
import { synthExamples, tinyModel } from './test-helpers';

const split = { bottom: 1, top: 1 };
const loraCfg: LoraConfig = { r: 2, alpha: 4, targets: ['q', 'v', 'down'] };
const train = synthExamples(16, 3);
const valid = synthExamples(6, 4);

function tracked(family: 'llama' | 'gpt2' = 'llama', seed = 1) {
  const { spec, weights } = tinyModel(family, 4, seed);
  const tr = trackStorages(new CpuBackend({ dtype: 'f32' }), { strict: true });
  return { tr, spec, weights, dec: decoderFromWeights(tr.backend, spec, weights) };
}

const counts = (tr: { live(): number }): [number, number] => [tr.live(), liveTensorCount()];

function supportBatches(vocab: number, n: number, seed: number): SupportBatch[] {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s;
  };
  return Array.from({ length: n }, () => {
    const ids = Int32Array.from({ length: 16 }, () => next() % vocab);
    const targets = Int32Array.from(ids, (_, i) => (i % 8 === 7 ? IGNORE_INDEX : ids[i + 1]!));
    return { ids, targets, B: 2, T: 8 };
  });
}

describe('OT loops keep live storage flat', () => {
  for (const method of ['adapter', 'lora'] as const) {
    it(`tune (${method}, validation every step): flat after the first step, nothing left afterwards`, async () => {
      const { tr, dec } = tracked();
      const before = counts(tr);
      const perStep: [number, number][] = [];
      const r = await tune(
        dec,
        { train, valid },
        {
          split,
          method,
          lora: loraCfg,
          lr: 5e-3,
          batchSize: 4,
          gradAccum: 2,
          maxSteps: 5,
          evalEvery: 1,
          seed: 2,
          onProgress: (p) => {
            if (p.phase === 'train') perStep.push(counts(tr));
          },
        },
      );
      expect(r.steps).toBe(5);
      expect(perStep.length).toBe(5);
      for (const c of perStep) expect(c).toEqual(perStep[0]);
      // tune frees AdamW's m and v and the LoRA tensors when it ends.
      expect(r.adapter.weights.size).toBeGreaterThan(0);
      expect(tr.live() - before[0]).toBe(0);
    });
  }

  it('evaluate, meanLoss and mergedWeights (plain and with LoRA) leave nothing behind', async () => {
    const { tr, spec, dec } = tracked();
    const lora = LoraAdapter.create(dec.backend, spec, adapterBlocks(spec, split), loraCfg, 3);
    // B non-zero so the LoRA path is not the identity.
    for (const [n, t] of lora.tensors)
      if (n.endsWith('lora_B')) t.storage = dec.backend.fromArray(Float32Array.from({ length: t.size }, (_, i) => Math.sin(i + 1) * 0.1));
    const task = { kind: 'sft' as const, file: 'valid', examples: valid };
    const lm = {
      kind: 'lm' as const,
      file: 'lm',
      examples: synthExamples(5, 9).map((e) => ({ ...e, targets: e.ids.slice(1).concat([IGNORE_INDEX]) })),
    };
    const before = counts(tr);
    for (let i = 0; i < 3; i++) {
      for (const l of [null, lora]) {
        const m = await evaluate(dec, task, { batchSize: 4, lora: l });
        expect(Number.isFinite(m.loss) && m.exactMatch !== undefined).toBe(true);
        expect(Number.isFinite((await evaluate(dec, lm, { batchSize: 2, lora: l })).loss)).toBe(true);
        expect(Number.isFinite((await meanLoss(dec, valid, { batchSize: 4, lora: l })).loss)).toBe(true);
        expect(counts(tr)).toEqual(before);
      }
      expect((await lora.mergedWeights(dec.params)).size).toBe(lora.tensors.size / 2);
      expect(counts(tr)).toEqual(before);
    }
  });

  it('supportPass: flat batch over batch, and leaves nothing behind', async () => {
    const { tr, spec, dec } = tracked('gpt2');
    const before = counts(tr);
    const perBatch: [number, number][] = [];
    const res = await supportPass(dec, supportBatches(spec.vocabSize, 4, 5), [1, 2], { onBatch: () => perBatch.push(counts(tr)) });
    expect(res.batches).toBe(4);
    for (const c of perBatch) expect(c).toEqual(perBatch[0]);
    expect(counts(tr)).toEqual(before);
  });

  it('adapterGradientShift and buildEmulator (support pass + meanLoss) leave nothing behind', async () => {
    const { tr, spec, weights, dec } = tracked('gpt2');
    const emu = decoderFromWeights(tr.backend, spec, tinyModel('gpt2', 4, 2).weights);
    const batches = supportBatches(spec.vocabSize, 3, 7);
    const before = counts(tr);
    for (let n = 1; n <= 3; n++) {
      const g = await adapterGradientShift(dec, emu, batches.slice(0, n), split);
      expect(g.perBatch.length).toBe(n);
      expect(counts(tr)).toEqual(before);
    }
    const out = await buildEmulator(spec, weights, {
      modelId: 'test/gpt2-tiny',
      backend: tr.backend,
      support: batches,
      method: 'gradot',
      keep: 0.6,
      split,
    });
    expect(Number.isFinite(out.report.supportLoss.emulator)).toBe(true);
    expect(counts(tr)).toEqual(before);
  });
});

/** tune's step as a plain loop that frees nothing (no scope, no release): the numbers to match. */
async function plainTune(
  dec: Decoder,
  examples: readonly Example[],
  method: TuneMethod,
  steps: number,
): Promise<{ losses: number[]; weights: Float32Array[] }> {
  const be = dec.backend;
  const blocks = adapterBlocks(dec.spec, split);
  let lora: LoraAdapter | null = null;
  let params: NamedParam[];
  if (method === 'lora') {
    dec.setTrainable(() => false);
    lora = LoraAdapter.create(be, dec.spec, blocks, loraCfg, 2);
    params = lora.namedParams();
  } else {
    dec.setTrainable((n) => inBlocks(n, blocks));
    params = dec.namedParams(true);
  }
  const opt = new AdamW(params, { lr: 5e-3, beta1: undefined, beta2: undefined, eps: undefined, weightDecay: 0 });
  const batchSize = 4,
    accum = 2;
  const stepsPerEpoch = Math.ceil(Math.ceil(examples.length / batchSize) / accum);
  const schedule = { kind: 'linear', lr: 5e-3, warmupSteps: 0, totalSteps: steps } as const;
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const epoch = Math.floor(step / stepsPerEpoch);
    const all = makeBatches(examples, { batchSize, padId: 0, shuffle: true, seed: 2, epoch });
    const g = step % stepsPerEpoch;
    const group = all.slice(g * accum, Math.min((g + 1) * accum, all.length));
    const groupTokens = group.reduce((s, b) => s + b.targetTokens, 0);
    let lossSum = 0;
    for (const b of group) {
      if (b.targetTokens === 0) continue;
      const restore = lora ? lora.attach(dec) : null;
      const tl = targetLogits(dec, b.ids, b.targets, b.batchSize, b.seqLen);
      const l = ops.scale(ops.crossEntropySum(tl.logits, tl.targets), 1 / groupTokens);
      backward(l);
      restore?.();
      lossSum += await l.item();
    }
    const norm = await globalGradNorm(params);
    opt.step({ lr: lrAt(step, schedule), gradScale: clipScale(norm, 1.0) });
    opt.zeroGrad();
    losses.push(lossSum);
  }
  const weights: Float32Array[] = [];
  for (const p of params) weights.push(Float32Array.from(await p.tensor.read()));
  return { losses, weights };
}

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('the lifetime calls change no number', () => {
  for (const method of ['adapter', 'lora'] as const) {
    it(`tune (${method}): losses and tuned weights bitwise equal to a loop that frees nothing`, async () => {
      const { spec, weights } = tinyModel('llama', 4);
      const ref = await plainTune(decoderFromWeights(new CpuBackend({ dtype: 'f32' }), spec, weights), train, method, 5);
      const { dec } = tracked();
      const r = await tune(dec, { train }, { split, method, lora: loraCfg, lr: 5e-3, batchSize: 4, gradAccum: 2, maxSteps: 5, seed: 2 });
      expect(r.history.map((h) => h.loss)).toEqual(ref.losses);
      const got = [...r.adapter.weights.values()];
      expect(got.length).toBe(ref.weights.length);
      got.forEach((t, i) => expect(sameBits(t.data as Float32Array, ref.weights[i]!)).toBe(true));
    });
  }

  it('batch scorer (plain and LoRA, greedy): bitwise equal to a scorer that frees nothing', async () => {
    const { spec, dec } = tracked();
    const plainDec = decoderFromWeights(new CpuBackend({ dtype: 'f32' }), spec, tinyModel('llama', 4).weights);
    const mk = (d: Decoder) => {
      const l = LoraAdapter.create(d.backend, spec, adapterBlocks(spec, split), loraCfg, 3);
      for (const [n, t] of l.tensors)
        if (n.endsWith('lora_B')) t.storage = d.backend.fromArray(Float32Array.from({ length: t.size }, (_, i) => Math.cos(i) * 0.1));
      return l;
    };
    const loras = [mk(dec), mk(plainDec)] as const;
    for (const useLora of [false, true]) {
      const score = batchScorer(dec, { lora: useLora ? loras[0] : null, greedy: true });
      for (const b of makeBatches(valid, { batchSize: 4 })) {
        const got = await score(b);
        // The pre-lifetime scorer: per-row NLL and logits, nothing freed but what it read.
        const run = (): { nll: Tensor; logits: Tensor; positions: Int32Array; targets: Int32Array } => {
          const tl = targetLogits(plainDec, b.ids, b.targets, b.batchSize, b.seqLen);
          return { nll: ops.crossEntropyRows(tl.logits, tl.targets, IGNORE_INDEX), ...tl };
        };
        const ref = noGrad(() => (useLora ? loras[1].with(plainDec, run) : run()));
        const rows = await ref.nll.read();
        const sum = new Float64Array(b.batchSize);
        ref.targets.forEach((t, k) => {
          if (t !== IGNORE_INDEX) sum[Math.floor(ref.positions[k]! / b.seqLen)]! -= rows[k]!;
        });
        expect(Array.from(got.sumLogProb)).toEqual(Array.from(sum));
        expect(got.greedyMatch?.length).toBe(b.batchSize);
      }
    }
  });
});
