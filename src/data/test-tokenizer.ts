import type { TextTokenizer } from './types';

/**
 * Toy tokenizers for tests. `charTokenizer`: one token per UTF-16 unit, id = code + 3, so ids 0..2 are
 * free for PAD/EOS/BOS and test expectations can be read off character codes.
 */
export const PAD = 0;
export const EOS = 1;
export const BOS = 2;

export function charTokenizer(opts: { eos?: boolean; bos?: boolean } = {}): TextTokenizer {
  return {
    encode: (text) => Array.from(text, (c) => c.charCodeAt(0) + 3),
    decode: (ids) =>
      ids
        .filter((i) => i > 2)
        .map((i) => String.fromCharCode(i - 3))
        .join(''),
    eosId: opts.eos === false ? null : EOS,
    bosId: opts.bos === false ? null : BOS,
    vocabSize: 65536 + 3,
  };
}

/** Char tokenizer that also merges "ab" into one token (id 3), so joint encoding of "a"+"b" differs
 * from encoding the parts, like BPE merges across a prompt/answer boundary. */
export function mergingTokenizer(): TextTokenizer {
  const base = charTokenizer();
  return {
    ...base,
    encode: (text) => {
      const out: number[] = [];
      for (let i = 0; i < text.length; i++) {
        if (text[i] === 'a' && text[i + 1] === 'b') {
          out.push(3);
          i++;
        } else out.push(text.charCodeAt(i) + 3);
      }
      return out;
    },
  };
}

export const ids = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0) + 3);
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
