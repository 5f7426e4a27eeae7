import { describe, expect, it } from 'vitest';
import { readDataset } from '../data/read';
import { meanScoredChars } from '../../workers/studio/models';

const enc = (rows: unknown[]) => new TextEncoder().encode(rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

describe('meanScoredChars', () => {
  it('multiple choice: the context is scored once per choice', () => {
    // (5+2) + (5+3) = 15 and (3+1) + (3+1) = 8: mean 11.5.
    const ds = readDataset(
      enc([
        { context: 'abcde', choices: ['xy', 'xyz'], label: 0 },
        { context: 'abc', choices: ['p', 'q'], label: 1 },
      ]),
      'mc.jsonl',
    );
    expect(ds.kind).toBe('mc');
    expect(meanScoredChars(ds)).toBe(11.5);
  });
  it('prompt and answer, and plain text', () => {
    const sft = readDataset(
      enc([
        { prompt: 'hello', answer: 'world!' },
        { prompt: 'a', answer: 'b' },
      ]),
      'sft.jsonl',
    );
    expect(meanScoredChars(sft)).toBe((11 + 2) / 2);
    const lm = readDataset(enc([{ text: 'one two three' }, { text: 'four' }]), 'lm.jsonl');
    expect(meanScoredChars(lm)).toBe((13 + 4) / 2);
  });
});
