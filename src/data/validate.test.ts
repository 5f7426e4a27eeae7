import { describe, expect, it } from 'vitest';
import { readDataset } from './read';
import { bytes, charTokenizer } from './test-tokenizer';
import { lengthStats, validateDataset } from './validate';

const jsonl = (rows: object[]) => bytes(rows.map((r) => JSON.stringify(r)).join('\n'));

describe('validateDataset', () => {
  it('multiple choice: label balance, choices, lengths, unbalanced warning', () => {
    const rows = Array.from({ length: 12 }, (_, i) => ({ context: `q${i}`, choices: ['aa', 'b', 'cccc'], label: i < 10 ? 0 : 2 }));
    const s = validateDataset(readDataset(jsonl(rows), 'mc.jsonl'));
    expect(s.kind).toBe('mc');
    expect(s.count).toBe(12);
    expect(s.labels).toEqual({ counts: [10, 0, 2], majorityFraction: 10 / 12 });
    expect(s.choices).toEqual({ min: 3, max: 3 });
    // "q0".."q9" are 2 chars, "q10","q11" 3; + longest choice 4.
    expect(s.chars).toMatchObject({ min: 6, max: 7, total: 10 * 6 + 2 * 7 });
    expect(s.warnings.join('\n')).toMatch(/labels are unbalanced: 83% of records have label 0/);
    expect(s.tokens).toBeNull();
  });

  it('prompt/answer with a tokenizer: over-context and too-long counts', () => {
    const rows = [
      { prompt: 'ab', answer: 'c' }, // 2 + 1 + EOS = 4 tokens
      { prompt: 'abcdefgh', answer: 'c' }, // 10 tokens > C+1 = 6 → truncated
      { prompt: 'a', answer: 'cdefgh' }, // answer + EOS = 7 > C = 5 → too-long
      { prompt: 'ab', answer: 'c' }, // duplicate
    ];
    const s = validateDataset(readDataset(jsonl(rows), 's.jsonl'), { tokenizer: charTokenizer(), contextLength: 5 });
    expect(s.tokens).toMatchObject({ sampled: 4, overContext: 1, tooLong: 1, max: 10, min: 4, contextLength: 5 });
    expect(s.duplicates).toBe(1);
    const w = s.warnings.join('\n');
    expect(w).toMatch(/1 records are longer than the context of 5 tokens; their prompts will be cut from the left/);
    expect(w).toMatch(/1 records have an answer longer than the context of 5 tokens, first at line 3/);
    expect(w).toMatch(/only 4 records/);
  });

  it('text: chunk estimate and short-corpus warning; sampling limit', () => {
    const ds = readDataset(bytes('abc\n\ndefg\n'), 'c.txt');
    const s = validateDataset(ds, { tokenizer: charTokenizer(), contextLength: 3 });
    // 3+1 and 4+1 tokens = 9 → (9-1)/3 → 3 chunks
    expect(s.tokens).toMatchObject({ total: 9, chunks: 3, overContext: 1 }); // only 5 > C+1 = 4
    const s2 = validateDataset(ds, { tokenizer: charTokenizer(), contextLength: 100, maxTokenized: 1 });
    expect(s2.tokens?.sampled).toBe(1);
    expect(s2.warnings.join('\n')).toMatch(/less than one context window/);
  });

  it('lengthStats uses nearest-rank percentiles', () => {
    expect(lengthStats([5, 1, 3, 2, 4])).toEqual({ min: 1, max: 5, mean: 3, median: 3, p95: 5, total: 15 });
    expect(lengthStats([])).toMatchObject({ total: 0 });
  });
});
