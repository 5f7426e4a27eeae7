/** Tiny models and synthetic data for the tuning/evaluation/plug-in tests (kept small: 2-core machine). */
import { CpuBackend } from '../../engine/cpu/backend';
import type { Example } from '../../data/batch';
import { IGNORE_INDEX } from '../../data/types';
import { decoderFromWeights, type Decoder } from '../../model/decoder';
import { randomTestModel, smallSpec, type SmallFamily } from '../../model/random-model';
import type { ModelSpec } from '../../model/spec';
import type { WeightMap } from '../../model/weights';
import { mulberry32 } from '../../model/random-model';

export function tinyModel(family: SmallFamily = 'llama', numLayers = 4, seed = 1): { spec: ModelSpec; weights: WeightMap } {
  const spec = smallSpec(family, { numLayers, hiddenSize: 16, numHeads: 2, vocabSize: 32, maxPositions: 16 });
  return { spec, weights: randomTestModel(spec, seed) };
}

export function cpuDecoder(spec: ModelSpec, weights: WeightMap): Decoder {
  return decoderFromWeights(new CpuBackend(), spec, weights);
}

/** Prompt/answer-like examples: a random prompt (no loss) then a short answer that is a function of it. */
export function synthExamples(n: number, seed: number, vocab = 32): Example[] {
  const r = mulberry32(seed);
  const out: Example[] = [];
  for (let i = 0; i < n; i++) {
    const pl = 2 + Math.floor(r() * 5);
    const prompt = Array.from({ length: pl }, () => 1 + Math.floor(r() * (vocab - 1)));
    const ans = [(prompt[0]! * 3) % vocab, (prompt[pl - 1]! + 5) % vocab];
    const full = [...prompt, ...ans];
    const ids = full.slice(0, -1);
    const targets = full.slice(1).map((t, k) => (k + 1 >= pl ? t : IGNORE_INDEX));
    out.push({ ids, targets, line: i + 1 });
  }
  return out;
}
