// Exported graphs against an independent reference: the torch fixtures of src/model/__fixtures__ (small
// random GPT-2, OPT, LLaMA, Qwen2 checkpoints with logits from a plain-torch model with Hugging Face
// semantics). Loaded through the real HF loader, exported, run in onnxruntime-node.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadHFModel } from '../model/hf';
import { nodeDirSource } from '../model/source';
import { exportOnnx } from './export';
import { loadOrt, OrtDecoder, ortInfoFromSpec } from './runtime';
import { maxRelErr } from './testing';

const DIR = join(__dirname, '../model/__fixtures__');

describe('ONNX export vs torch fixtures (HF semantics)', () => {
  for (const fam of ['gpt2', 'opt', 'llama', 'qwen2']) {
    it(`${fam}: onnxruntime logits equal the torch reference within 1e-4 relative`, async () => {
      const fx = JSON.parse(readFileSync(join(DIR, fam, 'fixture.json'), 'utf8')) as {
        B: number;
        T: number;
        ids: number[][];
        logits: number[][];
      };
      const { spec, weights } = await loadHFModel(nodeDirSource(join(DIR, fam)));
      const dec = await OrtDecoder.create(await loadOrt('node'), exportOnnx(spec, weights), ortInfoFromSpec(spec));
      const got = await dec.logits(fx.ids.flat(), fx.B, fx.T);
      await dec.release();
      const err = maxRelErr(got, fx.logits.flat());
      console.log(`[onnx] ${fam} vs torch fixture: max rel err ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
    });
  }
});
