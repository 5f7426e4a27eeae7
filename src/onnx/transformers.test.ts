// transformers.js (onnxruntime-node) loads exported folders from local files only and decodes greedily
// the same 20 tokens as our engine's greedy decoding (src/model/generate.ts), for a full model, an
// emulator and a plug-in, with the demo tokenizer (vocab 4096).
import { mkdtempSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../engine/cpu/backend';
import { decoderFromWeights } from '../model/decoder';
import { generate } from '../model/generate';
import { tokenizerFromJSON } from '../model/tokenizer';
import { randomModel, smallSpec, type SmallFamily } from '../model/random-model';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import { exportTransformersJsFolder } from './export';
import { generateWithTransformersJs } from './transformers';
import { buildTestEmulator, buildTestPlugin } from './testing';

const DEMO = join(__dirname, '../../public/models/demo');
const tokenizerFiles = new Map<string, Uint8Array>([
  ['tokenizer.json', readFileSync(join(DEMO, 'tokenizer.json'))],
  ['tokenizer_config.json', readFileSync(join(DEMO, 'tokenizer_config.json'))],
]);
const EOS = 4095;
const PROMPT = 'Once upon a time, the model';
const N = 20;

function spec(): ModelSpec {
  return {
    family: 'llama',
    modelType: 'llama',
    vocabSize: 4096,
    hiddenSize: 64,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    intermediateSize: 128,
    maxPositions: 64,
    norm: 'rmsnorm',
    normEps: 1e-5,
    activation: 'silu',
    gatedMlp: true,
    positions: 'rope',
    positionOffset: 0,
    ropeTheta: 10000,
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    tieWordEmbeddings: false,
    layers: Array.from({ length: 4 }, (_, i) => ({ source: i, ranks: {}, mlpWidth: 128 })),
  };
}

// Large init so logits have clear margins (greedy argmax is not decided by float rounding) and the
// continuation is not one repeated token.
const full = randomModel(spec(), 2024, { std: 0.25, normJitter: 0.2 });

async function engineGreedy(s: ModelSpec, w: WeightMap, prompt: number[]): Promise<number[]> {
  const dec = decoderFromWeights(new CpuBackend(), s, w);
  const r = await generate(dec, prompt, { maxNewTokens: N, eosTokenId: EOS });
  dec.free();
  return Array.from(r.tokens);
}

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function writeFolder(files: Map<string, Uint8Array>): string {
  const root = mkdtempSync(join(tmpdir(), 'gradot-tjs-'));
  dirs.push(root);
  const dir = join(root, 'exported');
  for (const [name, bytes] of files) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), bytes);
  }
  return root;
}

describe('transformers.js generation from exported folders', () => {
  it('full model from a folder on disk (env.localModelPath, remote off): same 20 greedy tokens as our engine', async () => {
    const s = spec();
    const files = exportTransformersJsFolder(s, full, { baseConfig: { bos_token_id: EOS, eos_token_id: EOS }, extraFiles: tokenizerFiles });
    const root = writeFolder(files);
    const tf = await import('@huggingface/transformers');
    tf.env.allowRemoteModels = false;
    tf.env.allowLocalModels = true;
    tf.env.localModelPath = root;
    tf.env.useFSCache = false;
    const tokenizer = await tf.AutoTokenizer.from_pretrained('exported', { local_files_only: true });
    const model = await tf.AutoModelForCausalLM.from_pretrained('exported', { local_files_only: true, dtype: 'fp32', device: 'cpu' });
    const enc = tokenizer(PROMPT) as { input_ids: InstanceType<typeof tf.Tensor>; attention_mask: InstanceType<typeof tf.Tensor> };
    const prompt = Array.from(enc.input_ids.data as BigInt64Array, Number);
    const out = (await model.generate({ ...enc, max_new_tokens: N, do_sample: false } as never)) as InstanceType<typeof tf.Tensor>;
    const got = Array.from(out.data as BigInt64Array, Number).slice(prompt.length);
    const ours = await tokenizerFromJSON(
      JSON.parse(new TextDecoder().decode(tokenizerFiles.get('tokenizer.json'))),
      JSON.parse(new TextDecoder().decode(tokenizerFiles.get('tokenizer_config.json'))),
    );
    expect(ours.encode(PROMPT)).toEqual(prompt);
    const want = await engineGreedy(s, full, prompt);
    console.log(`[tjs] full: prompt ${JSON.stringify(prompt)} -> ${JSON.stringify(got)} "${tokenizer.decode(got)}"`);
    expect(got).toEqual(want);
    expect(got.length).toBe(N);
    expect(new Set(got).size).toBeGreaterThan(3);
    await model.dispose();
    // the high-level pipeline API on the same folder gives the same continuation
    const pipe = await tf.pipeline('text-generation', 'exported', { local_files_only: true, dtype: 'fp32', device: 'cpu' });
    const res = (await pipe(PROMPT, { max_new_tokens: N, do_sample: false, return_full_text: false } as never)) as {
      generated_text: string;
    }[];
    expect(res[0]!.generated_text).toBe(tokenizer.decode(got, { skip_special_tokens: true }));
    await pipe.dispose();
  });

  it('emulator and plug-in through generateWithTransformersJs (in-memory files): same tokens as our engine', async () => {
    const s = spec();
    const emu = buildTestEmulator(s, full, { rank: 6, mlpWidth: 80, dropBlocks: 1 });
    const plug = buildTestPlugin(s, full, 99, 1, 1, 0.1);
    const tf = await import('@huggingface/transformers');
    for (const [label, sp, w] of [
      ['emulator', emu.spec, emu.weights],
      ['plug-in', s, plug],
    ] as const) {
      const files = exportTransformersJsFolder(sp, w, { baseConfig: { bos_token_id: EOS, eos_token_id: EOS }, extraFiles: tokenizerFiles });
      // Even when something turned remote loading on, a local load leaves it off.
      tf.env.allowRemoteModels = true;
      const streamed: number[] = [];
      const r = await generateWithTransformersJs(files, PROMPT, { maxNewTokens: N, device: 'cpu', onToken: (id) => streamed.push(id) });
      expect(tf.env.allowRemoteModels).toBe(false);
      const want = await engineGreedy(sp, w, r.promptTokens);
      console.log(`[tjs] ${label}: ${JSON.stringify(r.tokens)} "${r.text}"`);
      expect(r.tokens).toEqual(want);
      expect(streamed).toEqual(r.tokens);
      expect(new Set(r.tokens).size).toBeGreaterThan(3);
      // token-id prompts give the same continuation
      const again = await generateWithTransformersJs(files, r.promptTokens, { maxNewTokens: 5, device: 'cpu' });
      expect(again.tokens).toEqual(want.slice(0, 5));
    }
  });

  for (const fam of ['gpt2', 'opt', 'qwen2', 'mistral'] as SmallFamily[]) {
    it(`${fam}: transformers.js picks the family's class and decodes the same tokens`, async () => {
      const sp = smallSpec(fam, { numLayers: 2, vocabSize: 4096, hiddenSize: 64, maxPositions: 64 });
      const w = randomModel(sp, 7, { std: 0.25, normJitter: 0.2 });
      const files = exportTransformersJsFolder(sp, w, { baseConfig: { bos_token_id: EOS, eos_token_id: EOS }, extraFiles: tokenizerFiles });
      const r = await generateWithTransformersJs(files, PROMPT, { maxNewTokens: N, device: 'cpu' });
      expect(r.tokens).toEqual(await engineGreedy(sp, w, r.promptTokens));
      expect(new Set(r.tokens).size).toBeGreaterThan(3);
    });
  }
});
