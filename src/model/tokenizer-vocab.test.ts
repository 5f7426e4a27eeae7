import { describe, expect, it } from 'vitest';
import { checkTokenizerVocab, isKnownBuffer, tokenizerJsonIdCount } from './hf';
import { HUB_MODELS, syntheticBpeTokenizer } from './hub-models';
import { smallSpec } from './random-model';

describe('tokenizer vocabulary vs embedding rows', () => {
  const spec = smallSpec('gpt2', { vocabSize: 50257 });
  it('more ids than rows is a named error; far fewer is a warning saying what breaks; a few spare rows are fine', () => {
    expect(() => checkTokenizerVocab(50300, spec)).toThrow(/ModelFormatError|50300 token ids but the model's embedding has 50257 rows/);
    try {
      checkTokenizerVocab(50300, spec);
    } catch (e) {
      expect((e as Error).name).toBe('ModelFormatError');
    }
    expect(checkTokenizerVocab(4096, spec)).toMatch(/4096 token ids but the model has 50257 embedding rows.*another model's tokenizer/);
    expect(checkTokenizerVocab(50257, spec)).toBeNull();
    // Qwen2.5: 151665 tokenizer ids for 151936 rows (padded to a multiple of 128).
    expect(checkTokenizerVocab(151665, smallSpec('qwen2', { vocabSize: 151936 }))).toBeNull();
  });

  it('tokenizerJsonIdCount reads the id space without building the tokenizer', () => {
    const def = HUB_MODELS.gpt2;
    expect(tokenizerJsonIdCount(syntheticBpeTokenizer(50257, def.specials))).toBe(50257);
    expect(tokenizerJsonIdCount({ model: { vocab: { a: 0, b: 5 } }, added_tokens: [{ id: 9 }] })).toBe(10);
    expect(tokenizerJsonIdCount({})).toBeNull();
  });

  it('buffers are not parameters', () => {
    expect(isKnownBuffer('gpt2', 'h.0.attn.bias')).toBe(true);
    expect(isKnownBuffer('gpt2', 'transformer.h.11.attn.masked_bias')).toBe(true);
    expect(isKnownBuffer('gpt2', 'h.0.attn.c_attn.bias')).toBe(false);
    expect(isKnownBuffer('llama', 'model.layers.0.self_attn.rotary_emb.inv_freq')).toBe(true);
  });
});

describe('CLI model loading checks the tokenizer', () => {
  it('refuses a tokenizer with more ids than embedding rows and warns about far fewer', async () => {
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { makeHubModel } = await import('./make-model');
    const { openModel } = await import('../cli/open');
    const dir = await mkdtemp(join(tmpdir(), 'gradot-tokvocab-'));
    try {
      await makeHubModel('gpt2', dir, { overrides: { n_layer: 1, n_embd: 16, n_head: 2, n_positions: 16, n_ctx: 16, vocab_size: 400 } });
      expect((await openModel(dir)).warnings).toEqual([]);
      await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(syntheticBpeTokenizer(450, [{ id: 449, content: '<|endoftext|>' }])));
      await expect(openModel(dir)).rejects.toThrow(/450 token ids but the model's embedding has 400 rows/);
      await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(syntheticBpeTokenizer(300, [{ id: 299, content: '<|endoftext|>' }])));
      expect((await openModel(dir)).warnings.join('\n')).toMatch(/300 token ids but the model has 400 embedding rows/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
