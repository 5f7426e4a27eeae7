// Exported graphs (full, emulator, plug-in; every family) run in onnxruntime-node and must give our
// engine's logits within 1e-4 relative (max |Δ| / max |ref|) on random token batches, with and without
// the KV cache.
import { describe, expect, it } from 'vitest';
import { randomTestModel, smallSpec, type SmallFamily } from '../model/random-model';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import { decodeOnnxModel, exportOnnx, exportTransformersJsFolder } from './export';
import type { OnnxNamespace } from './proto';
import { loadOrt, OrtDecoder, ortInfoFromSpec, type OrtModule } from './runtime';
import { buildTestEmulator, buildTestPlugin, engineLogits, maxRelErr, randomIds } from './testing';

const TOL = 1e-4;
let ortP: Promise<OrtModule> | null = null;
const ort = (): Promise<OrtModule> => (ortP ??= loadOrt('node'));

export const maxErrors: Record<string, number> = {};

async function checkBatch(label: string, spec: ModelSpec, weights: WeightMap, B: number, T: number, seed: number): Promise<number> {
  const dec = await OrtDecoder.create(await ort(), exportOnnx(spec, weights), ortInfoFromSpec(spec));
  const ids = randomIds(B * T, spec.vocabSize, seed);
  const got = await dec.logits(ids, B, T);
  const want = await engineLogits(spec, weights, ids, B, T);
  await dec.release();
  const err = maxRelErr(got, want);
  maxErrors[label] = err;
  console.log(`[onnx] ${label}: max rel err ${err.toExponential(2)} (B=${B}, T=${T})`);
  expect(err).toBeLessThan(TOL);
  return err;
}

/** Prefill `T0` tokens, then feed the rest in steps of `step` through the cache; every step's logits must
 *  equal the rows of one full forward. */
async function checkCache(
  label: string,
  spec: ModelSpec,
  weights: WeightMap,
  B: number,
  T0: number,
  steps: number[],
  seed: number,
): Promise<void> {
  const dec = await OrtDecoder.create(await ort(), exportOnnx(spec, weights), ortInfoFromSpec(spec));
  const T = T0 + steps.reduce((a, b) => a + b, 0);
  const ids = randomIds(B * T, spec.vocabSize, seed);
  const want = await engineLogits(spec, weights, ids, B, T);
  const V = spec.vocabSize;
  const cols = (from: number, n: number): number[] => {
    const out: number[] = [];
    for (let b = 0; b < B; b++) for (let t = from; t < from + n; t++) out.push(ids[b * T + t]!);
    return out;
  };
  const wantRows = (from: number, n: number): Float32Array => {
    const out = new Float32Array(B * n * V);
    for (let b = 0; b < B; b++) out.set(want.subarray((b * T + from) * V, (b * T + from + n) * V), b * n * V);
    return out;
  };
  let r = await dec.forward(cols(0, T0), B, T0);
  let err = maxRelErr(r.logits, wantRows(0, T0));
  let at = T0;
  for (const n of steps) {
    r = await dec.forward(cols(at, n), B, n, r.cache);
    err = Math.max(err, maxRelErr(r.logits, wantRows(at, n)));
    at += n;
  }
  expect(r.cache.length).toBe(T);
  await dec.release();
  maxErrors[label] = err;
  console.log(`[onnx] ${label}: max rel err ${err.toExponential(2)} (prefill ${T0}, steps ${steps.join('+')})`);
  expect(err).toBeLessThan(TOL);
}

describe('ONNX export vs engine (onnxruntime-node)', () => {
  const families: SmallFamily[] = ['llama', 'qwen2', 'gpt2', 'opt'];
  for (const fam of families) {
    it(`${fam}: full model, batch of random tokens`, async () => {
      const spec = smallSpec(fam, { numLayers: 3, maxPositions: 48 });
      await checkBatch(`${fam} full`, spec, randomTestModel(spec, 11), 2, 9, 5);
    });
  }

  it('llama with grouped-query attention (4 heads, 1 kv head) and gelu_erf MLP variant', async () => {
    const spec = smallSpec('llama', { numLayers: 2, numHeads: 4, numKvHeads: 1, maxPositions: 48 });
    await checkBatch('llama gqa 4:1', spec, randomTestModel(spec, 3), 3, 7, 9);
    const gpt = { ...smallSpec('gpt2', { numLayers: 2 }), activation: 'gelu_erf' as const };
    await checkBatch('gpt2 gelu_erf', gpt, randomTestModel(gpt, 4), 2, 6, 10);
  });

  for (const fam of ['llama', 'gpt2', 'opt'] as SmallFamily[]) {
    it(`${fam}: emulator (SVD-factored q/v, pruned MLP, a dropped block) and plug-in`, async () => {
      const spec = smallSpec(fam, { numLayers: 5, maxPositions: 48 });
      const full = randomTestModel(spec, 21);
      const emu = buildTestEmulator(spec, full, { rank: 5, mlpWidth: Math.floor(spec.intermediateSize / 3), dropBlocks: 1 });
      expect(emu.spec.layers.length).toBe(4);
      expect(emu.spec.layers[1]!.ranks).toEqual({ q: 5, v: 5 });
      expect(emu.weights.has('layers.1.attn.q.weight_a')).toBe(true);
      await checkBatch(`${fam} emulator`, emu.spec, emu.weights, 2, 8, 31);
      await checkBatch(`${fam} plug-in`, spec, buildTestPlugin(spec, full, 7), 2, 8, 32);
    });
  }

  it('KV cache: prefill then single steps and a 2-token step equal one full forward (llama, gpt2, opt, emulator)', async () => {
    const llama = smallSpec('llama', { numLayers: 2, maxPositions: 48 });
    await checkCache('llama cache', llama, randomTestModel(llama, 41), 2, 6, [1, 1, 2, 1], 42);
    const gpt = smallSpec('gpt2', { numLayers: 2, maxPositions: 48 });
    await checkCache('gpt2 cache', gpt, randomTestModel(gpt, 43), 2, 5, [1, 2], 44);
    const opt = smallSpec('opt', { numLayers: 2, maxPositions: 48 });
    await checkCache('opt cache', opt, randomTestModel(opt, 45), 1, 4, [1, 1], 46);
    const full = randomTestModel(smallSpec('llama', { numLayers: 4, maxPositions: 48 }), 47);
    const emu = buildTestEmulator(smallSpec('llama', { numLayers: 4, maxPositions: 48 }), full, { rank: 4, mlpWidth: 40 });
    await checkCache('llama emulator cache', emu.spec, emu.weights, 2, 5, [1, 1], 48);
  });

  it('left padding: a padded row gives the unpadded row its logits (mask + position ids)', async () => {
    const spec = smallSpec('llama', { numLayers: 2, maxPositions: 48 });
    const w = randomTestModel(spec, 51);
    const dec = await OrtDecoder.create(await ort(), exportOnnx(spec, w), ortInfoFromSpec(spec));
    const ids = Array.from(randomIds(6, spec.vocabSize, 52));
    const alone = await dec.forward(ids, 1, 6);
    const padded = await dec.forward([0, 0, ...ids, ...randomIds(8, spec.vocabSize, 53)], 2, 8, undefined, [
      0,
      0,
      1,
      1,
      1,
      1,
      1,
      1,
      ...new Array(8).fill(1),
    ]);
    const V = spec.vocabSize;
    expect(maxRelErr(padded.logits.subarray(2 * V, 8 * V), alone.logits)).toBeLessThan(TOL);
    await dec.release();
  });

  it('graph uses only standard ops at opset 17; names and shapes as transformers.js expects', () => {
    const spec = smallSpec('llama', { numLayers: 2 });
    const m = decodeOnnxModel(exportOnnx(spec, randomTestModel(spec, 1)));
    expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    const graph = m.graph as OnnxNamespace.GraphProto;
    const ops = new Set(graph.node.map((n) => n.opType ?? ''));
    const allowed = new Set([
      'MatMul',
      'Add',
      'Sub',
      'Mul',
      'Div',
      'Sqrt',
      'ReduceMean',
      'Softmax',
      'Gather',
      'Concat',
      'Reshape',
      'Transpose',
      'Slice',
      'Unsqueeze',
      'Where',
      'Range',
      'Greater',
      'Equal',
      'Or',
      'Shape',
      'Sigmoid',
      'Tanh',
      'Erf',
      'Relu',
      'Neg',
      'LayerNormalization',
    ]);
    for (const op of ops) expect(allowed.has(op)).toBe(true);
    expect(graph.input.map((i) => i.name)).toEqual([
      'input_ids',
      'attention_mask',
      'position_ids',
      'past_key_values.0.key',
      'past_key_values.0.value',
      'past_key_values.1.key',
      'past_key_values.1.value',
    ]);
    expect(graph.output.map((i) => i.name)).toEqual(['logits', 'present.0.key', 'present.0.value', 'present.1.key', 'present.1.value']);
    const past = graph.input[3]!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
    expect(past).toEqual(['batch_size', spec.numKvHeads, 'past_sequence_length', spec.headDim]);
  });

  it('transformers.js folder: config, generation config, tokenizer files and onnx/model.onnx', () => {
    const spec = smallSpec('llama', { numLayers: 2 });
    const files = exportTransformersJsFolder(spec, randomTestModel(spec, 1), {
      baseConfig: { eos_token_id: 3, bos_token_id: 2 },
      extraFiles: { 'tokenizer.json': '{}' },
    });
    expect([...files.keys()].sort()).toEqual(['config.json', 'generation_config.json', 'onnx/model.onnx', 'tokenizer.json']);
    const cfg = JSON.parse(new TextDecoder().decode(files.get('config.json')));
    expect(cfg.model_type).toBe('llama');
    expect(cfg.num_hidden_layers).toBe(2);
    expect(cfg['transformers.js_config'].dtype).toBe('fp32');
    expect(JSON.parse(new TextDecoder().decode(files.get('generation_config.json')))).toEqual({ bos_token_id: 2, eos_token_id: 3 });
  });
});

describe('ONNX external data', () => {
  it('weights in chunked external data files: same logits, and transformers.js loads the folder', async () => {
    const { exportOnnxFiles } = await import('./export');
    const spec = smallSpec('llama', { numLayers: 2, vocabSize: 4096, hiddenSize: 64, maxPositions: 48 });
    const w = randomTestModel(spec, 61);
    const f = exportOnnxFiles(spec, w, { externalData: true, externalChunkBytes: 600_000 });
    expect(f.data.map((d) => d.name)).toEqual(['model.onnx_data', 'model.onnx_data_1', 'model.onnx_data_2']);
    expect(f.model.byteLength).toBeLessThan(200_000);
    const m = decodeOnnxModel(f.model);
    const ext = (m.graph as OnnxNamespace.GraphProto).initializer.filter((t) => t.dataLocation === 1);
    expect(ext.length).toBeGreaterThan(10);
    const dec = await OrtDecoder.create(await ort(), f.model, ortInfoFromSpec(spec), {
      externalData: f.data.map((d) => ({ path: d.name, data: d.bytes })),
    });
    const ids = randomIds(2 * 7, spec.vocabSize, 62);
    const err = maxRelErr(await dec.logits(ids, 2, 7), await engineLogits(spec, w, ids, 2, 7));
    await dec.release();
    maxErrors['llama external data'] = err;
    expect(err).toBeLessThan(TOL);

    const files = exportTransformersJsFolder(spec, w, {
      externalData: true,
      externalChunkBytes: 600_000,
      extraFiles: {
        'tokenizer.json': (await import('node:fs')).readFileSync(new URL('../../public/models/demo/tokenizer.json', import.meta.url)),
      },
    });
    expect(JSON.parse(new TextDecoder().decode(files.get('config.json')))['transformers.js_config'].use_external_data_format).toBe(3);
    const { generateWithTransformersJs } = await import('./transformers');
    const r = await generateWithTransformersJs(files, [1, 2, 3, 4], { maxNewTokens: 4, device: 'cpu' });
    const d2 = await OrtDecoder.create(await ort(), f.model, ortInfoFromSpec(spec), {
      externalData: f.data.map((d) => ({ path: d.name, data: d.bytes })),
    });
    const want = await d2.generateGreedy([1, 2, 3, 4], 4);
    await d2.release();
    expect(r.tokens).toEqual(want);
  });
});
