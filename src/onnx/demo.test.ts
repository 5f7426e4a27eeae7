// The real demo model (public/models/demo, once its model.safetensors is there): exported to the
// transformers.js layout, loaded by transformers.js from local files only, greedy 20 tokens equal to our
// engine's greedy decoding; the generated text is printed for the record. Skipped while the checkpoint is
// absent (it is produced by the pretraining run).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../engine/cpu/backend';
import { decoderFromWeights } from '../model/decoder';
import { generate } from '../model/generate';
import { loadHFModel } from '../model/hf';
import { nodeDirSource } from '../model/source';
import { exportTransformersJsFolder } from './export';
import { tokenizerFilesOf } from '../cli/commands/export-onnx';
import { engineLogits, maxRelErr, randomIds } from './testing';
import { loadOrt, OrtDecoder, ortInfoFromSpec } from './runtime';

const DEMO = process.env.GRADOT_DEMO_DIR ?? join(__dirname, '../../public/models/demo');
const have = existsSync(join(DEMO, 'model.safetensors'));
const PROMPTS = ['Once upon a time', 'The meaning of the word'];
const N = 20;

describe.skipIf(!have)('demo model through ONNX and transformers.js', () => {
  it('exports, matches engine logits, and transformers.js greedy tokens equal our engine', async () => {
    const src = nodeDirSource(DEMO);
    const m = await loadHFModel(src);
    const files = exportTransformersJsFolder(m.spec, m.weights, { baseConfig: m.config, extraFiles: await tokenizerFilesOf(src) });

    const ids = randomIds(2 * 32, m.spec.vocabSize, 3);
    const ort = await OrtDecoder.create(await loadOrt('node'), files.get('onnx/model.onnx')!, ortInfoFromSpec(m.spec));
    const err = maxRelErr(await ort.logits(ids, 2, 32), await engineLogits(m.spec, m.weights, ids, 2, 32));
    await ort.release();
    console.log(`[demo] onnxruntime-node vs engine logits (2x32 random tokens): max rel err ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);

    const root = mkdtempSync(join(tmpdir(), 'gradot-demo-onnx-'));
    try {
      for (const [name, bytes] of files) {
        mkdirSync(dirname(join(root, 'demo', name)), { recursive: true });
        writeFileSync(join(root, 'demo', name), bytes);
      }
      const tf = await import('@huggingface/transformers');
      tf.env.allowRemoteModels = false;
      tf.env.allowLocalModels = true;
      tf.env.localModelPath = root;
      tf.env.useFSCache = false;
      const tokenizer = await tf.AutoTokenizer.from_pretrained('demo', { local_files_only: true });
      const model = await tf.AutoModelForCausalLM.from_pretrained('demo', { local_files_only: true, dtype: 'fp32', device: 'cpu' });
      const dec = decoderFromWeights(new CpuBackend(), m.spec, m.weights);
      for (const prompt of PROMPTS) {
        const enc = tokenizer(prompt) as { input_ids: InstanceType<typeof tf.Tensor>; attention_mask: InstanceType<typeof tf.Tensor> };
        const p = Array.from(enc.input_ids.data as BigInt64Array, Number);
        const out = (await model.generate({ ...enc, max_new_tokens: N, do_sample: false } as never)) as InstanceType<typeof tf.Tensor>;
        const got = Array.from(out.data as BigInt64Array, Number).slice(p.length);
        const want = Array.from((await generate(dec, p, { maxNewTokens: N, eosTokenId: 4095 })).tokens);
        console.log(`[demo] "${prompt}" -> transformers.js: ${JSON.stringify(tokenizer.decode(got))}`);
        expect(got).toEqual(want);
      }
      dec.free();
      await model.dispose();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
