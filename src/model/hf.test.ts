import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFormatError, ShapeMismatchError } from './errors';
import {
  canonicalShapes,
  canonicalToHF,
  hfConfigFromSpec,
  hfToCanonical,
  loadHFModel,
  planHFLoad,
  saveHFModel,
  specFromHFConfig,
  toHFWeights,
  fromHFWeights,
} from './hf';
import { randomModel, randomTestModel, smallSpec, writeHFFolder, type SmallFamily } from './random-model';
import { parseSafetensors, serializeSafetensors } from './safetensors';
import { MemorySource, nodeDirSource } from './source';
import type { ModelSpec } from './spec';
import type { WeightMap } from './weights';

const FIX = join(__dirname, '__fixtures__');

function expectSameWeights(a: WeightMap, b: WeightMap): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [k, v] of a) {
    const w = b.get(k)!;
    expect(w.shape, k).toEqual(v.shape);
    expect(Array.from(w.data), k).toEqual(Array.from(v.data));
  }
}

async function expectReject<T extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => T, ...mentions: string[]): Promise<T> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(cls);
    for (const m of mentions) expect((e as Error).message).toContain(m);
    return e as T;
  }
  throw new Error('expected rejection');
}

describe('fixtures written by tools/torch_ref (HF layout)', () => {
  for (const fam of ['gpt2', 'opt', 'llama', 'qwen2']) {
    it(`${fam}: loads, maps every tensor, and saves back to the same HF tensors`, async () => {
      const src = nodeDirSource(join(FIX, fam));
      const m = await loadHFModel(src);
      expect(m.warnings).toEqual([]);
      expect(m.spec.modelType).toBe(fam);
      expect(m.spec.layers.length).toBe(2);
      expect(m.dtypes).toEqual(['F32']);
      for (const [k, s] of canonicalShapes(m.spec)) expect(m.weights.get(k)!.shape, k).toEqual(s);
      const raw = parseSafetensors(await src.readBytes('model.safetensors')).tensors;
      const saved = saveHFModel(m.spec, m.weights, { baseConfig: m.config });
      const back = parseSafetensors(saved.get('model.safetensors')!).tensors;
      expectSameWeights(raw, back);
      const cfg = JSON.parse(new TextDecoder().decode(saved.get('config.json')!));
      expect(specFromHFConfig(cfg)).toEqual(m.spec);
      expect(cfg.bos_token_id).toBe(m.config.bos_token_id);
    });
  }

  it('gpt2: c_attn is transposed and split into q|k|v', async () => {
    const src = nodeDirSource(join(FIX, 'gpt2'));
    const m = await loadHFModel(src);
    const raw = parseSafetensors(await src.readBytes('model.safetensors')).tensors;
    const cAttn = raw.get('transformer.h.1.attn.c_attn.weight')!; // [in=32, 3*32]
    const cBias = raw.get('transformer.h.1.attn.c_attn.bias')!;
    const d = 32;
    ['q', 'k', 'v'].forEach((p, part) => {
      const w = m.weights.get(`layers.1.attn.${p}.weight`)!; // [out, in]
      for (const [o, i] of [
        [0, 0],
        [3, 17],
        [31, 5],
      ] as const)
        expect(w.data[o * d + i]).toBe(cAttn.data[i * 3 * d + part * d + o]);
      expect(m.weights.get(`layers.1.attn.${p}.bias`)!.data[7]).toBe(cBias.data[part * d + 7]);
    });
    const fc = raw.get('transformer.h.0.mlp.c_fc.weight')!; // [32, 64]
    expect(m.weights.get('layers.0.mlp.up.weight')!.shape).toEqual([64, 32]);
    expect(m.weights.get('layers.0.mlp.up.weight')!.data[5 * 32 + 9]).toBe(fc.data[9 * 64 + 5]);
    expect(m.spec.activation).toBe('gelu_tanh');
    expect(m.spec.tieWordEmbeddings).toBe(true);
    expect(m.spec.intermediateSize).toBe(64);
  });

  it('opt keeps the 2 offset rows in pos.weight; llama/qwen2 specs', async () => {
    const opt = await loadHFModel(nodeDirSource(join(FIX, 'opt')));
    expect(opt.weights.get('pos.weight')!.shape).toEqual([34, 32]);
    expect(opt.spec.positionOffset).toBe(2);
    expect(opt.spec.activation).toBe('relu');
    const q = await loadHFModel(nodeDirSource(join(FIX, 'qwen2')));
    expect(q.spec).toMatchObject({
      family: 'llama',
      numKvHeads: 2,
      headDim: 8,
      qkvBias: true,
      oBias: false,
      ropeTheta: 1e6,
      tieWordEmbeddings: true,
    });
    expect(q.weights.has('lm_head.weight')).toBe(false);
    const l = await loadHFModel(nodeDirSource(join(FIX, 'llama')));
    expect(l.spec).toMatchObject({ qkvBias: false, normEps: 1e-6, tieWordEmbeddings: false, gatedMlp: true });
    expect(l.weights.get('layers.0.attn.k.weight')!.shape).toEqual([16, 32]);
  });
});

describe('round trips of random models', () => {
  const fams: SmallFamily[] = ['gpt2', 'opt', 'llama', 'qwen2', 'mistral'];
  for (const fam of fams) {
    it(`${fam}: save -> load is exact (F32) and within half precision (F16)`, async () => {
      const spec = smallSpec(fam);
      const w = randomTestModel(spec, 11);
      const files = saveHFModel(spec, w);
      const m = await loadHFModel(new MemorySource(files));
      expect(m.spec).toEqual(spec);
      expectSameWeights(w, m.weights);
      const h = await loadHFModel(new MemorySource(saveHFModel(spec, w, 'F16')));
      expect(h.dtypes).toEqual(['F16']);
      for (const [k, t] of w) {
        const g = h.weights.get(k)!;
        for (let i = 0; i < t.data.length; i++)
          expect(Math.abs(g.data[i]! - t.data[i]!)).toBeLessThanOrEqual(Math.abs(t.data[i]!) * 2 ** -11 + 1e-7);
      }
    });
  }

  it('compressed GPT-2 (factored q/o, pruned MLP, dropped block): split c_attn naming and gradot config', async () => {
    const base = smallSpec('gpt2', { numLayers: 3 });
    const spec: ModelSpec = {
      ...base,
      layers: [
        { source: 0, ranks: {}, mlpWidth: 128 },
        { source: 2, ranks: { q: 4, o: 6, up: 5 }, mlpWidth: 40 },
      ],
    };
    const w = randomModel(spec, 3, { normJitter: 0.1 });
    const files = saveHFModel(spec, w);
    const cfg = JSON.parse(new TextDecoder().decode(files.get('config.json')!));
    expect(cfg.n_layer).toBe(2);
    expect(cfg.gradot.layers[1]).toEqual({ source: 2, ranks: { q: 4, o: 6, up: 5 }, mlpWidth: 40 });
    const hf = parseSafetensors(files.get('model.safetensors')!).tensors;
    expect(hf.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([32, 96]);
    expect(hf.has('transformer.h.1.attn.c_attn.weight')).toBe(false);
    expect(hf.get('transformer.h.1.attn.c_attn.q.weight_a')!.shape).toEqual([32, 4]);
    expect(hf.get('transformer.h.1.attn.c_attn.q.weight_b')!.shape).toEqual([4, 32]);
    expect(hf.get('transformer.h.1.attn.c_attn.k.weight')!.shape).toEqual([32, 32]);
    expect(hf.get('transformer.h.1.attn.c_attn.v.bias')!.shape).toEqual([32]);
    expect(hf.get('transformer.h.1.attn.c_proj.weight_a')!.shape).toEqual([32, 6]);
    expect(hf.get('transformer.h.1.mlp.c_fc.weight_a')!.shape).toEqual([40, 5]);
    expect(hf.get('transformer.h.1.mlp.c_proj.weight')!.shape).toEqual([40, 32]); // Conv1D [in, out]
    const m = await loadHFModel(new MemorySource(files));
    expect(m.spec).toEqual(spec);
    expectSameWeights(w, m.weights);
  });

  it('compressed llama: low-rank factor names map by suffix', async () => {
    const base = smallSpec('llama');
    const spec: ModelSpec = { ...base, layers: [base.layers[0]!, { source: 1, ranks: { k: 3, gate: 7, down: 2 }, mlpWidth: 48 }] };
    const w = randomModel(spec, 5);
    const files = saveHFModel(spec, w);
    const hf = parseSafetensors(files.get('model.safetensors')!).tensors;
    expect(hf.get('model.layers.1.self_attn.k_proj.weight_a')!.shape).toEqual([16, 3]);
    expect(hf.get('model.layers.1.mlp.gate_proj.weight_b')!.shape).toEqual([7, 32]);
    expect(hf.get('model.layers.1.mlp.down_proj.weight_a')!.shape).toEqual([32, 2]);
    expect(hf.get('model.layers.1.mlp.up_proj.weight')!.shape).toEqual([48, 32]);
    const m = await loadHFModel(new MemorySource(files));
    expect(m.spec).toEqual(spec);
    expectSameWeights(w, m.weights);
  });

  it('sharded checkpoints (model.safetensors.index.json) save and load', async () => {
    const spec = smallSpec('llama');
    const w = randomModel(spec, 8);
    const files = saveHFModel(spec, w, { maxShardBytes: 20_000 });
    expect(files.has('model.safetensors')).toBe(false);
    const shards = [...files.keys()].filter((k) => k.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(1);
    expect(shards[0]).toMatch(/^model-00001-of-000\d\d\.safetensors$/);
    const m = await loadHFModel(new MemorySource(files));
    expectSameWeights(w, m.weights);
    expect(m.files.length).toBe(shards.length);
  });

  it('reports progress, streams tensors, honours an abort signal', async () => {
    const spec = smallSpec('gpt2');
    const files = saveHFModel(spec, randomModel(spec, 1));
    const seen: number[] = [];
    let total = 0;
    await loadHFModel(new MemorySource(files), { onProgress: (d, t) => (seen.push(d), (total = t)) });
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.at(-1)).toBe(total);
    expect(seen.every((v, i) => i === 0 || v > seen[i - 1]!)).toBe(true);
    const streamed: WeightMap = new Map();
    const lean = await loadHFModel(new MemorySource(files), { onTensor: (n, x) => void streamed.set(n, x), keepWeights: false });
    expect(lean.weights.size).toBe(0);
    expectSameWeights(randomModel(spec, 1), streamed);
    const ac = new AbortController();
    ac.abort();
    await expect(loadHFModel(new MemorySource(files), { signal: ac.signal })).rejects.toThrow();
  });

  it('writeHFFolder + nodeDirSource', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradot-hf-'));
    try {
      const spec = smallSpec('opt');
      const w = randomModel(spec, 1);
      await writeHFFolder(dir, spec, w);
      const m = await loadHFModel(nodeDirSource(dir));
      expectSameWeights(w, m.weights);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('name mapping', () => {
  for (const fam of ['gpt2', 'opt', 'llama'] as const) {
    it(`${fam}: canonicalToHF and hfToCanonical are inverse for every tensor`, () => {
      const base = smallSpec(fam);
      const spec: ModelSpec = {
        ...base,
        tieWordEmbeddings: false,
        layers: [base.layers[0]!, { source: 1, ranks: { q: 2, down: 3 }, mlpWidth: 20 }],
      };
      for (const name of canonicalShapes(spec).keys()) {
        const m = canonicalToHF(spec, name);
        expect(m.canonical).toContain(name);
        expect(hfToCanonical(fam, m.hf)).toEqual(m);
        // legacy, unprefixed names too
        const bare = m.hf.replace(/^(transformer\.|model\.decoder\.|model\.)/, '');
        expect(hfToCanonical(fam, bare)!.canonical).toEqual(m.canonical);
      }
    });
  }

  it('known spellings', () => {
    expect(canonicalToHF('gpt2', 'layers.3.attn.k.bias')).toEqual({
      hf: 'transformer.h.3.attn.c_attn.bias',
      canonical: ['layers.3.attn.q.bias', 'layers.3.attn.k.bias', 'layers.3.attn.v.bias'],
      transpose: false,
    });
    expect(canonicalToHF('opt', 'layers.0.attn.o.weight').hf).toBe('model.decoder.layers.0.self_attn.out_proj.weight');
    expect(canonicalToHF('opt', 'pos.weight').hf).toBe('model.decoder.embed_positions.weight');
    expect(canonicalToHF('opt', 'layers.1.ln2.bias').hf).toBe('model.decoder.layers.1.final_layer_norm.bias');
    expect(canonicalToHF('opt', 'norm.weight').hf).toBe('model.decoder.final_layer_norm.weight');
    expect(canonicalToHF('llama', 'layers.2.mlp.gate.weight').hf).toBe('model.layers.2.mlp.gate_proj.weight');
    expect(canonicalToHF('llama', 'lm_head.weight').hf).toBe('lm_head.weight');
    expect(canonicalToHF('gpt2', 'layers.0.mlp.down.weight')).toMatchObject({ hf: 'transformer.h.0.mlp.c_proj.weight', transpose: true });
    expect(canonicalToHF('gpt2', 'layers.0.mlp.down.weight_a')).toMatchObject({
      hf: 'transformer.h.0.mlp.c_proj.weight_a',
      transpose: false,
    });
    expect(canonicalToHF('gpt2', 'layers.0.ln1.weight', { layerIndex: (i) => i + 5 }).hf).toBe('transformer.h.5.ln_1.weight');
    expect(hfToCanonical('gpt2', 'h.0.attn.bias')).toBeNull();
    expect(hfToCanonical('llama', 'model.layers.0.self_attn.rotary_emb.inv_freq')).toBeNull();
    expect(hfToCanonical('opt', 'decoder.layers.0.fc1.weight')!.canonical).toEqual(['layers.0.mlp.up.weight']);
  });

  it('toHFWeights writes a partial (adapter) map under source layer indices', () => {
    const spec = smallSpec('gpt2', { numLayers: 4 });
    const w = randomModel(spec, 2);
    const adapter: WeightMap = new Map([...w].filter(([k]) => k.startsWith('layers.3.')));
    const hf = toHFWeights(spec, adapter, { layerIndex: (i) => i + 10 });
    expect([...hf.keys()].every((k) => k.startsWith('transformer.h.13.'))).toBe(true);
    expect(hf.get('transformer.h.13.attn.c_attn.weight')!.shape).toEqual([32, 96]);
  });
});

describe('fromHFWeights', () => {
  it('inverts toHFWeights for partial maps with a layer index shift, and checks shapes', () => {
    const base = smallSpec('gpt2', { numLayers: 4 });
    const spec: ModelSpec = { ...base, layers: base.layers.map((l, i) => (i === 1 ? { ...l, ranks: { k: 3 } } : l)) };
    const w = randomModel(spec, 2);
    const part: WeightMap = new Map([...w].filter(([k]) => /^layers\.[01]\./.test(k)));
    const hf = toHFWeights(spec, part, { layerIndex: (i) => i + 2 });
    hf.set('something.else', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const back = fromHFWeights(spec, hf, { layerIndex: (i) => i - 2 });
    expect(back.ignored).toEqual(['something.else']);
    expectSameWeights(part, back.weights);
    const bad: WeightMap = new Map([
      ['transformer.h.0.mlp.c_fc.weight', { dtype: 'F32', shape: [128, 32], data: new Float32Array(128 * 32) }],
    ]);
    expect(() => fromHFWeights(spec, bad, { file: 'adapter.safetensors' })).toThrow(
      /adapter\.safetensors \[transformer\.h\.0\.mlp\.c_fc\.weight\].*expected \[32, 128\], got \[128, 32\]/,
    );
  });
});

describe('config parsing', () => {
  it('gpt2 defaults: n_inner null -> 4*n_embd, gelu_new -> gelu_tanh, tied', () => {
    const s = specFromHFConfig({
      model_type: 'gpt2',
      vocab_size: 50257,
      n_positions: 1024,
      n_embd: 768,
      n_layer: 12,
      n_head: 12,
      n_inner: null,
      activation_function: 'gelu_new',
      layer_norm_epsilon: 1e-5,
    });
    expect(s).toMatchObject({ intermediateSize: 3072, activation: 'gelu_tanh', headDim: 64, tieWordEmbeddings: true, maxPositions: 1024 });
    expect(s.layers.length).toBe(12);
  });
  it('llama head_dim, GQA, attention_bias, mlp_bias', () => {
    const s = specFromHFConfig({
      model_type: 'llama',
      vocab_size: 100,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      head_dim: 16,
      max_position_embeddings: 64,
      attention_bias: true,
      mlp_bias: true,
    });
    expect(s).toMatchObject({
      headDim: 16,
      numKvHeads: 2,
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      ropeTheta: 10000,
      tieWordEmbeddings: false,
    });
    const c = hfConfigFromSpec(s);
    expect(specFromHFConfig(c)).toEqual(s);
    expect(c.gradot).toBeUndefined();
  });
  it('OPT without enable_bias and unsupported OPT variants', () => {
    const opt = {
      model_type: 'opt',
      vocab_size: 100,
      hidden_size: 32,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      ffn_dim: 64,
      max_position_embeddings: 64,
    };
    expect(specFromHFConfig({ ...opt, enable_bias: false })).toMatchObject({ qkvBias: false, oBias: false, mlpBias: false });
    expect(() => specFromHFConfig({ ...opt, do_layer_norm_before: false })).toThrow(/do_layer_norm_before/);
    expect(() => specFromHFConfig({ ...opt, word_embed_proj_dim: 16 })).toThrow(/word_embed_proj_dim 16/);
  });
  it('unknown model_type and unsupported options are clear errors', () => {
    expect(() => specFromHFConfig({ model_type: 'bert' })).toThrow(ModelFormatError);
    expect(() => specFromHFConfig({ model_type: 'bert' })).toThrow(/unsupported model_type 'bert'.*gpt2, opt, llama, qwen2/);
    expect(() => specFromHFConfig({})).toThrow(/model_type/);
    expect(() => specFromHFConfig({ model_type: 'gpt2', n_embd: 32, n_layer: 2, n_head: 4 })).toThrow(/config.json.*vocab_size/);
    expect(() =>
      specFromHFConfig({
        model_type: 'llama',
        vocab_size: 10,
        hidden_size: 8,
        intermediate_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        max_position_embeddings: 8,
        rope_scaling: { rope_type: 'llama3', factor: 8 },
      }),
    ).toThrow(/rope_scaling/);
    expect(() =>
      specFromHFConfig({ model_type: 'gpt2', vocab_size: 10, n_embd: 8, n_layer: 1, n_head: 2, activation_function: 'mish' }),
    ).toThrow(/activation_function/);
  });
});

describe('load errors', () => {
  async function folder(fam: SmallFamily = 'gpt2'): Promise<{ spec: ModelSpec; files: Map<string, Uint8Array> }> {
    const spec = smallSpec(fam);
    return { spec, files: saveHFModel(spec, randomModel(spec, 1)) };
  }

  it('shape mismatch names the file, tensor, expected and got', async () => {
    const { files } = await folder();
    const cfg = JSON.parse(new TextDecoder().decode(files.get('config.json')!));
    cfg.n_inner = 100;
    files.set('config.json', new TextEncoder().encode(JSON.stringify(cfg)));
    const e = await expectReject(
      loadHFModel(new MemorySource(files)),
      ShapeMismatchError,
      'model.safetensors',
      'transformer.h.0.mlp.c_fc.weight',
      '[32, 100]',
      '[32, 128]',
    );
    expect(e.expected).toEqual([32, 100]);
    expect(e.got).toEqual([32, 128]);
  });

  it('missing tensor', async () => {
    const { files } = await folder('llama');
    const t = parseSafetensors(files.get('model.safetensors')!).tensors;
    t.delete('model.layers.1.mlp.gate_proj.weight');
    files.set('model.safetensors', serializeSafetensors(t));
    await expectReject(
      loadHFModel(new MemorySource(files)),
      ModelFormatError,
      'missing tensor',
      'model.layers.1.mlp.gate_proj.weight',
      '[64, 32]',
    );
  });

  it('unexpected extra tensor is a warning; known buffers and tied lm_head are silent', async () => {
    const { files } = await folder();
    const t = parseSafetensors(files.get('model.safetensors')!).tensors;
    t.set('transformer.h.0.attn.bias', { dtype: 'F32', shape: [1, 1, 4, 4], data: new Float32Array(16) });
    t.set('lm_head.weight', { dtype: 'F32', shape: [64, 32], data: new Float32Array(64 * 32) });
    t.set('score.weight', { dtype: 'F32', shape: [2, 32], data: new Float32Array(64) });
    files.set('model.safetensors', serializeSafetensors(t));
    const m = await loadHFModel(new MemorySource(files));
    expect(m.warnings).toEqual(["model.safetensors: unexpected tensor 'score.weight' ignored"]);
  });

  it('no config / no safetensors / pickles only / bad JSON', async () => {
    await expectReject(loadHFModel(new MemorySource({})), ModelFormatError, 'config.json');
    const { files } = await folder();
    const cfg = files.get('config.json')!;
    await expectReject(loadHFModel(new MemorySource({ 'config.json': cfg })), ModelFormatError, 'model.safetensors');
    await expectReject(
      loadHFModel(new MemorySource({ 'config.json': cfg, 'pytorch_model.bin': new Uint8Array(4) })),
      ModelFormatError,
      'only safetensors',
    );
    await expectReject(
      loadHFModel(new MemorySource({ 'config.json': '{"model_type": ' })),
      ModelFormatError,
      'config.json',
      'invalid JSON',
    );
  });

  it('legacy unprefixed GPT-2 checkpoint loads and inspect-style planning reads no data', async () => {
    const { spec, files } = await folder();
    const t = parseSafetensors(files.get('model.safetensors')!).tensors;
    const bare: WeightMap = new Map([...t].map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
    files.set('model.safetensors', serializeSafetensors(bare, { dtype: 'F16' }));
    const plan = await planHFLoad(new MemorySource(files));
    expect(plan.spec).toEqual(spec);
    expect(plan.dtypes).toEqual(['F16']);
    expect((await loadHFModel(new MemorySource(files))).weights.size).toBe(canonicalShapes(spec).size);
  });

  it('reads a folder with a nested dir and extra files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradot-hf-'));
    try {
      const spec = smallSpec('qwen2');
      await writeHFFolder(dir, spec, randomModel(spec, 4), { extraFiles: { 'README.md': '# hi' } });
      await writeFile(join(dir, 'generation_config.json'), '{}');
      const m = await loadHFModel(nodeDirSource(dir));
      expect(m.files).toEqual([{ name: 'model.safetensors', size: expect.any(Number) }]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
