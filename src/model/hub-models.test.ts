import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadHFModel, planHFLoad } from './hf';
import { HUB_FAMILIES, HUB_MODELS, hubFamily, hubTensors, syntheticBpeTokenizer, type HubFamily } from './hub-models';
import { makeHubModel, safetensorsHeader } from './make-model';
import { paramCounts } from './params';
import { MemorySource, nodeDirSource } from './source';
import { loadTokenizer, tokenizerFromJSON } from './tokenizer';

/** config.json + a safetensors file that is only its header (the size says where the data would end). */
class HeaderOnlySource extends MemorySource {
  constructor(
    files: Record<string, Uint8Array | string>,
    private readonly stSize: number,
  ) {
    super(files);
  }
  override async size(name: string): Promise<number> {
    return name === 'model.safetensors' ? this.stSize : super.size(name);
  }
}

/** Parameter counts of the real hub checkpoints (model.num_parameters()). */
const HUB_PARAMS: Record<HubFamily, number> = {
  gpt2: 124_439_808,
  'opt-125m': 125_239_296,
  'qwen2.5-0.5b': 494_032_768,
  'smollm2-360m': 361_821_120,
  'tinyllama-1.1b': 1_100_048_384,
};

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('hub-shaped checkpoints', () => {
  it.each(HUB_FAMILIES)('%s: the tensor list loads against its config with the hub parameter count', async (family) => {
    const { tensors, config } = hubTensors(family);
    const { header, dataBytes } = safetensorsHeader(tensors, { format: 'pt' });
    const src = new HeaderOnlySource({ 'config.json': JSON.stringify(config), 'model.safetensors': header }, header.length + dataBytes);
    const plan = await planHFLoad(src);
    expect(plan.warnings).toEqual([]);
    expect(plan.dtypes).toEqual([HUB_MODELS[family].dtype]);
    expect(paramCounts(plan.spec).total).toBe(HUB_PARAMS[family]);
    const names = tensors.map((t) => t.name);
    if (family === 'gpt2') {
      expect(names).toContain('h.0.attn.c_attn.weight');
      expect(names).toContain('h.11.attn.bias');
      expect(tensors.find((t) => t.name === 'h.0.attn.c_attn.weight')!.shape).toEqual([768, 2304]);
      expect(tensors.find((t) => t.name === 'h.0.attn.bias')!.shape).toEqual([1, 1, 1024, 1024]);
      expect(names).not.toContain('lm_head.weight');
    }
    if (family === 'opt-125m') expect(tensors.find((t) => t.name === 'decoder.embed_positions.weight')!.shape).toEqual([2050, 768]);
    if (family === 'qwen2.5-0.5b') {
      expect(names).toContain('model.layers.0.self_attn.q_proj.bias');
      expect(names).not.toContain('lm_head.weight');
    }
    if (family === 'tinyllama-1.1b') expect(tensors.find((t) => t.name === 'lm_head.weight')!.shape).toEqual([32000, 2048]);
    expect(hubFamily(HUB_MODELS[family].repo)).toBe(family);
  });

  it('synthetic BPE: id space equals the vocab size, specials at their ids, loads and round-trips in transformers.js', async () => {
    for (const family of ['gpt2', 'opt-125m'] as const) {
      const def = HUB_MODELS[family];
      const V = def.config.vocab_size as number;
      const json = syntheticBpeTokenizer(V, def.specials);
      const ids = Object.values((json.model as { vocab: Record<string, number> }).vocab).sort((a, b) => a - b);
      expect(ids).toEqual(Array.from({ length: V }, (_, i) => i));
      const tok = await tokenizerFromJSON(json, def.tokenizerConfig);
      expect(tok.vocabSize).toBe(V);
      const text = 'The movie was great, and the speech ended at 9:30.';
      const enc = tok.encode(text, { addSpecialTokens: false });
      expect(enc.length).toBeGreaterThan(5);
      expect(enc.length).toBeLessThan(text.length);
      expect(tok.decode(enc)).toBe(text);
      for (const s of def.specials) expect(tok.encode(s.content, { addSpecialTokens: false })).toEqual([s.id]);
    }
    const big = syntheticBpeTokenizer(151936, HUB_MODELS['qwen2.5-0.5b'].specials);
    expect(Object.keys((big.model as { vocab: Record<string, number> }).vocab).length).toBe(151936);
  });

  it('makeHubModel streams a loadable folder with HF init statistics (shrunk gpt2 F32, opt F16)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradot-hub-'));
    dirs.push(dir);
    const g = join(dir, 'gpt2');
    await makeHubModel('gpt2', g, { seed: 3, overrides: { n_layer: 2, n_embd: 64, n_head: 4, n_positions: 64, n_ctx: 64 } });
    const m = await loadHFModel(nodeDirSource(g));
    expect(m.warnings).toEqual([]);
    expect(m.dtypes).toEqual(['F32']);
    const std = (a: Float32Array): number => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
    expect(std(m.weights.get('embed.weight')!.data)).toBeCloseTo(0.02, 3);
    expect(std(m.weights.get('layers.0.attn.o.weight')!.data)).toBeCloseTo(0.02 / 2, 3);
    expect(Array.from(m.weights.get('layers.1.ln2.weight')!.data).every((v) => v === 1)).toBe(true);
    expect(Array.from(m.weights.get('layers.1.mlp.up.bias')!.data).every((v) => v === 0)).toBe(true);
    // The causal-mask buffer is written like HF's (lower triangle of ones) and is not a parameter.
    const st = await (await import('./safetensors')).SafetensorsReader.open(nodeDirSource(g), 'model.safetensors');
    const mask = await st.read('h.1.attn.bias');
    expect(mask.shape).toEqual([1, 1, 64, 64]);
    expect(mask.data[0 * 64 + 0]).toBe(1);
    expect(mask.data[0 * 64 + 1]).toBe(0);
    expect(mask.data[63 * 64 + 62]).toBe(1);
    const tok = await loadTokenizer(nodeDirSource(g));
    expect(tok.vocabSize).toBe(m.spec.vocabSize);
    // Deterministic in the seed.
    const g2 = join(dir, 'gpt2b');
    await makeHubModel('gpt2', g2, { seed: 3, overrides: { n_layer: 2, n_embd: 64, n_head: 4, n_positions: 64, n_ctx: 64 } });
    const m2 = await loadHFModel(nodeDirSource(g2));
    expect(Array.from(m2.weights.get('layers.1.mlp.down.weight')!.data)).toEqual(
      Array.from(m.weights.get('layers.1.mlp.down.weight')!.data),
    );

    const o = join(dir, 'opt');
    await makeHubModel('opt-125m', o, {
      overrides: {
        num_hidden_layers: 1,
        hidden_size: 32,
        num_attention_heads: 4,
        ffn_dim: 64,
        max_position_embeddings: 16,
        word_embed_proj_dim: 32,
      },
    });
    const mo = await loadHFModel(nodeDirSource(o));
    expect(mo.dtypes).toEqual(['F16']);
    // OPT's padding row (pad_token_id 1) is zero, like nn.Embedding(padding_idx=1).
    expect(Array.from(mo.weights.get('embed.weight')!.data.subarray(32, 64)).every((v) => v === 0)).toBe(true);
    expect(std(mo.weights.get('layers.0.mlp.up.weight')!.data)).toBeGreaterThan(0.015);
  }, 60_000);
});
