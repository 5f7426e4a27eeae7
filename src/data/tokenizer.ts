import type { TextTokenizer } from './types';

/** A tokenizer whose encode takes src/model's option bag (matched structurally, no import). */
export interface TokenizerWithSpecialTokens {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  readonly eosId: number | null;
  readonly bosId: number | null;
  readonly vocabSize: number;
}

/** Adapts a tokenizer to the data layer's contract: encode without special tokens, decode keeping them. */
export function withoutSpecialTokens(tok: TokenizerWithSpecialTokens): TextTokenizer {
  return {
    encode: (text) => tok.encode(text, { addSpecialTokens: false }),
    decode: (ids) => tok.decode(ids, { skipSpecialTokens: false }),
    eosId: tok.eosId,
    bosId: tok.bosId,
    vocabSize: tok.vocabSize,
  };
}

/**
 * Fails fast if `encode` adds special tokens (it encodes '' to something), which would silently put BOS
 * tokens inside answers and choices. Cheap: one call per dataset.
 */
export function assertPlainTokenizer(tok: TextTokenizer): void {
  const empty = tok.encode('');
  if (empty.length > 0) {
    throw new Error(`TextTokenizer.encode('') returned [${empty.join(', ')}]: it adds special tokens; wrap it with withoutSpecialTokens()`);
  }
}
