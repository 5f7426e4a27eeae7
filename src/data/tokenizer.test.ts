import { describe, expect, it } from 'vitest';
import { encodePromptAnswer } from './batch';
import { BOS, EOS, charTokenizer, ids } from './test-tokenizer';
import { assertPlainTokenizer, withoutSpecialTokens, type TokenizerWithSpecialTokens } from './tokenizer';
import { IGNORE_INDEX as X, type PromptDataset } from './types';

/** LLaMA-like: encode adds BOS unless told not to (src/model's Tokenizer default). */
function bosAddingTokenizer(): TokenizerWithSpecialTokens {
  const base = charTokenizer();
  return {
    encode: (text, opts) => [...(opts?.addSpecialTokens === false ? [] : [BOS]), ...base.encode(text)],
    decode: (i) => base.decode([...i]),
    eosId: EOS,
    bosId: BOS,
    vocabSize: base.vocabSize,
  };
}

const ds: PromptDataset = { file: 'p.jsonl', format: 'jsonl', kind: 'sft', records: [{ prompt: 'ab', answer: 'c', line: 1 }] };

describe('tokenizer contract', () => {
  it('rejects an encode that adds special tokens, with the fix in the message', () => {
    const raw = bosAddingTokenizer();
    expect(() => assertPlainTokenizer(raw)).toThrow(/adds special tokens; wrap it with withoutSpecialTokens/);
    expect(() => encodePromptAnswer(ds, raw, { contextLength: 8 })).toThrow(/withoutSpecialTokens/);
  });
  it('withoutSpecialTokens makes it usable; BOS then comes only from addBos', () => {
    const tok = withoutSpecialTokens(bosAddingTokenizer());
    expect(() => assertPlainTokenizer(tok)).not.toThrow();
    const [a, b, c] = ids('abc') as [number, number, number];
    expect(encodePromptAnswer(ds, tok, { contextLength: 8, addBos: true }).examples[0]).toMatchObject({
      ids: [BOS, a, b, c],
      targets: [X, X, c, EOS],
    });
  });
});
