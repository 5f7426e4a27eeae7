/**
 * Study of gradot readings vs the baselines on the demo model (docs/ot-compression.md): for each keep,
 * every configuration is measured on TWO held-out sets: a selection slice (IMDB valid contexts; used to
 * pick the best configuration) and a test slice (IMDB test contexts; reported for the pick, never used to
 * choose). Support = IMDB train contexts. One support pass, fixed data order (no randomness besides the
 * svd baseline's seed, which is fixed).
 *
 *   npx tsx src/ot/experiments/gradot-study.ts [--model public/models/demo] [--keeps 0.5,0.6] [--batches 4] [--out FILE.jsonl]
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights } from '../../model/decoder';
import { loadHFModel } from '../../model/hf';
import { nodeDirSource } from '../../model/source';
import { loadTokenizer } from '../../model/tokenizer';
import { compressModel, type CompressOptions } from '../emulator/compress';
import { adapterGradientShift } from '../emulator/gradshift';
import { supportPass, type SupportBatch } from '../emulator/support';

const args = process.argv.slice(2);
const arg = (k: string, d: string) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1]! : d;
};
const modelDir = arg('model', 'public/models/demo');
const keeps = arg('keeps', '0.5,0.6').split(',').map(Number);
const nb = Number(arg('batches', '4'));
const outFile = arg('out', '/tmp/gradot-study.jsonl');
const only = arg('only', '');

const { spec, weights } = await loadHFModel(nodeDirSource(modelDir));
const tok = await loadTokenizer(nodeDirSource(modelDir));
const read = (f: string) =>
  readFileSync(f, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { context: string }).context);
const stream = (texts: string[]) => Int32Array.from(texts.flatMap((t) => [...tok.encode(t, { addSpecialTokens: false }), tok.eosId ?? 0]));
const Td = 128,
  Bd = 4;
const mk = (toks: Int32Array, n: number): SupportBatch[] =>
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
const support = mk(stream(read('public/data/imdb-sentiment-mc/train.jsonl').slice(0, 400)), Number(arg('support-batches', '8')));
const selection = mk(stream(read('public/data/imdb-sentiment-mc/valid.jsonl').slice(0, 200)), nb);
const test = mk(stream(read('public/data/imdb-sentiment-mc/test.jsonl').slice(0, 200)), nb);

const be = new CpuBackend({ dtype: 'f32' });
const split = { bottom: 2, top: 2 };
const full = decoderFromWeights(be, spec, weights);
const sp = await supportPass(full, support, [2, 3, 4, 5]);
process.stderr.write(`support pass ${sp.seconds.toFixed(1)}s loss ${sp.meanLoss.toFixed(4)}\n`);

type Cfg = { name: string } & Omit<CompressOptions, 'keep' | 'split'>;
const g0 = { method: 'gradot' as const, lambdaAttn: 0, lambdaMlp: 0 };
const configs: Cfg[] = [
  { name: 'gradot λ=1 raw (paper formula, old default)', method: 'gradot', lambdaAttn: 1, lambdaMlp: 1 },
  { name: 'gradot λ=0', ...g0 },
  { name: 'gradot λ=0 attnKeep=0.3', ...g0, attnKeep: 0.3 },
  { name: 'gradot λ=0 global ranks', ...g0, rankAllocation: 'global' },
  { name: 'gradot λ=0 mlp=drd', ...g0, mlp: 'drd' },
  { name: 'gradot λ=0 mlp=drd global ranks', ...g0, mlp: 'drd', rankAllocation: 'global' },
  { name: 'gradot λ=1 raw mlp=drd global ranks', method: 'gradot', lambdaAttn: 1, lambdaMlp: 1, mlp: 'drd', rankAllocation: 'global' },
  { name: 'gradot λ=0.1 balanced mlp=drd', method: 'gradot', lambdaAttn: 0.1, lambdaMlp: 0.1, lambdaMode: 'balanced', mlp: 'drd' },
  { name: 'svd', method: 'svd', seed: 0 },
  { name: 'prune', method: 'prune' },
  { name: 'drop', method: 'drop' },
  { name: 'none', method: 'none' },
].filter((c) => !only || only.split('|').some((o) => c.name === o)) as Cfg[];

writeFileSync(outFile, '');
for (const keep of keeps) {
  for (const c of configs) {
    const { name, ...o } = c;
    const row: Record<string, unknown> = { keep, name };
    try {
      const r = compressModel(spec, weights, { ...o, keep, split }, sp.stats);
      const emu = decoderFromWeights(be, r.spec, r.weights);
      const s = await adapterGradientShift(full, emu, selection, split);
      const t = await adapterGradientShift(full, emu, test, split);
      emu.free();
      Object.assign(row, {
        kept: +(r.plan.paramsAfter / r.plan.paramsBefore).toFixed(4),
        selShift: +s.cosineDistance.toFixed(5),
        selLoss: +s.emulatorLoss.toFixed(4),
        selFull: +s.fullLoss.toFixed(4),
        testShift: +t.cosineDistance.toFixed(5),
        testLoss: +t.emulatorLoss.toFixed(4),
        testFull: +t.fullLoss.toFixed(4),
        ranks: r.spec.layers.slice(2, -2).map((l) => ({ ...l.ranks, w: l.mlpWidth })),
      });
    } catch (e) {
      row.error = (e as Error).message;
    }
    appendFileSync(outFile, JSON.stringify(row) + '\n');
    process.stderr.write(JSON.stringify({ ...row, ranks: undefined }) + '\n');
  }
}
