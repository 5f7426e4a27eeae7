import { describe, expect, it } from 'vitest';
import { ModelFormatError } from './errors';
import { MemorySource } from './source';
import { gpt2TokenizerJSON, loadTokenizer, tokenizerFromJSON } from './tokenizer';

const words = ['<unk>', '<s>', '</s>', 'the', 'cat', 'sat', 'on', 'mat', '.'];

/** A WordLevel tokenizer with a Whitespace pre-tokenizer and a BOS/EOS template. */
function wordLevel(): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 2, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 9, content: '<pad>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
    model: { type: 'WordLevel', vocab: Object.fromEntries(words.map((w, i) => [w, i])), unk_token: '<unk>' },
  };
}

/** A byte-level BPE (GPT-2 style) over the letters of "low lower lowest" with two merges. */
function byteLevelBPE(): Record<string, unknown> {
  const chars = ['l', 'o', 'w', 'e', 'r', 's', 't', 'Ġ'];
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => (vocab[c] = i));
  vocab['lo'] = 8;
  vocab['low'] = 9;
  vocab['<|endoftext|>'] = 10;
  return {
    version: '1.0',
    added_tokens: [{ id: 10, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      vocab,
      merges: ['l o', 'lo w'],
    },
  };
}

describe('tokenizer (local files only)', () => {
  it('WordLevel: encode/decode, BOS from the template, ids from the config', async () => {
    const src = new MemorySource({
      'tokenizer.json': JSON.stringify(wordLevel()),
      'tokenizer_config.json': JSON.stringify({ bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' }),
    });
    const tok = await loadTokenizer(src);
    expect(tok.encode('The cat sat on the mat.')).toEqual([1, 3, 4, 5, 6, 3, 7, 8]);
    expect(tok.encode('the dog', { addSpecialTokens: false })).toEqual([3, 0]);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.padId).toBe(9);
    expect(tok.vocabSize).toBe(10);
    expect(tok.decode([1, 4, 5, 2], { skipSpecialTokens: true })).toBe('cat sat');
    expect(tok.decode([4, 5])).toBe('cat sat');
  });

  it('byte-level BPE (GPT2Tokenizer class): merges, round trip, eos', async () => {
    const tok = await tokenizerFromJSON(byteLevelBPE(), {
      tokenizer_class: 'GPT2Tokenizer',
      eos_token: '<|endoftext|>',
      bos_token: '<|endoftext|>',
    });
    const ids = tok.encode('lowest low');
    // "low" + "e" "s" "t" + "Ġ" "low"
    expect(ids).toEqual([9, 3, 5, 6, 7, 9]);
    expect(tok.decode(ids)).toBe('lowest low');
    expect(tok.eosId).toBe(10);
    expect(tok.vocabSize).toBe(11);
    expect(tok.inner.constructor.name).toBe('GPT2Tokenizer');
  });

  it('GPT-2 classic files (vocab.json + merges.txt, encoder.json + vocab.bpe) give the same ids as tokenizer.json', async () => {
    const bpe = byteLevelBPE() as { model: { vocab: Record<string, number>; merges: string[] } };
    const vocab = JSON.stringify(bpe.model.vocab);
    const merges = '#version: 0.2\n' + bpe.model.merges.join('\n') + '\n';
    const ref = await tokenizerFromJSON(byteLevelBPE(), { tokenizer_class: 'GPT2Tokenizer' });
    const pairs: Record<string, string>[] = [
      { 'vocab.json': vocab, 'merges.txt': merges },
      { 'encoder.json': vocab, 'vocab.bpe': merges },
    ];
    for (const files of pairs) {
      const tok = await loadTokenizer(new MemorySource(files));
      for (const text of ['lowest low', 'lower', 'low low low']) expect(tok.encode(text)).toEqual(ref.encode(text));
      expect(tok.eosId).toBe(10);
      expect(tok.decode(tok.encode('lowest low'))).toBe('lowest low');
    }
    expect((gpt2TokenizerJSON(bpe.model.vocab, merges).model as { merges: string[] }).merges).toEqual(['l o', 'lo w']);
  });

  it('missing or invalid tokenizer.json is a clear error', async () => {
    await expect(loadTokenizer(new MemorySource({}))).rejects.toThrow(ModelFormatError);
    await expect(loadTokenizer(new MemorySource({}))).rejects.toThrow(/no tokenizer\.json/);
    await expect(loadTokenizer(new MemorySource({ 'tokenizer.json': '{oops' }))).rejects.toThrow(/tokenizer\.json.*invalid JSON/);
  });
});
