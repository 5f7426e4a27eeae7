/**
 * A two-pass evaluation (Emulator ZS then FT, Full ZS then Plug-in) reports one fraction for the whole job:
 * the second pass continues from one half instead of starting again at 0, which made its ETA (elapsed ×
 * (1 − f) / f from the job's start) jump to an hour at the start of the second pass.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evalOn } from '../../workers/studio/eval';
import { REPO_ROOT } from '../cli/commands/ot-shared';
import { CpuBackend } from '../engine/cpu/backend';
import { decoderFromWeights } from '../model/decoder';
import { randomTestModel, smallSpec } from '../model/random-model';
import { nodeDirSource } from '../model/source';
import { loadTokenizer } from '../model/tokenizer';

describe('studio evaluation progress', () => {
  it('places each pass in the job: pass 2 of 2 reports fractions in (0.5, 1]', async () => {
    const spec = smallSpec('llama', { numLayers: 2, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 256 });
    const dec = decoderFromWeights(new CpuBackend(), spec, randomTestModel(spec, 2));
    const tok = await loadTokenizer(nodeDirSource(join(REPO_ROOT, 'public/models/demo')));
    const path = join(REPO_ROOT, 'public/data/genre-short-mc/test.jsonl');
    const file = { path: 'test.jsonl', data: new Blob([await readFile(path)]) };
    const seen: { pass: number; f: number }[] = [];
    for (const index of [0, 1]) {
      await evalOn(
        dec,
        tok,
        file,
        spec,
        `pass ${index}`,
        (p) => seen.push({ pass: index, f: p.fraction ?? -1 }),
        new AbortController().signal,
        6,
        {
          index,
          of: 2,
        },
      );
    }
    const first = seen.filter((s) => s.pass === 0).map((s) => s.f);
    const second = seen.filter((s) => s.pass === 1).map((s) => s.f);
    expect(first.length).toBeGreaterThan(1);
    expect(second.length).toBeGreaterThan(1);
    expect(Math.min(...first)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...first)).toBeLessThanOrEqual(0.5);
    expect(Math.min(...second)).toBeGreaterThanOrEqual(0.5);
    expect(Math.max(...second)).toBeCloseTo(1, 9);
  });
});
