import { describe, expect, it } from 'vitest';
import { encodeChoices, encodeDataset, encodePair, encodePromptAnswer, encodeText, makeBatch, makeBatches, batchOrder } from './batch';
import { DatasetError } from './errors';
import { BOS, EOS, charTokenizer, ids, mergingTokenizer } from './test-tokenizer';
import { IGNORE_INDEX as X, type ChoiceDataset, type PromptDataset, type TextDataset } from './types';

const sft = (recs: [string, string][]): PromptDataset => ({
  file: 'train.jsonl',
  format: 'jsonl',
  kind: 'sft',
  records: recs.map(([prompt, answer], i) => ({ prompt, answer, line: i + 1 })),
});
const text = (docs: string[]): TextDataset => ({
  file: 'corpus.txt',
  format: 'txt',
  kind: 'lm',
  records: docs.map((t, i) => ({ text: t, line: 2 * i + 1 })),
});
const mc = (recs: [string, string[], number][]): ChoiceDataset => ({
  file: 'task.jsonl',
  format: 'jsonl',
  kind: 'mc',
  records: recs.map(([context, choices, label], i) => ({ context, choices, label, line: i + 1 })),
});

const tok = charTokenizer();
const [a, b, c, e, f, x, y] = ids('abcefxy') as [number, number, number, number, number, number, number];

describe('prompt/answer: loss on answer tokens only, targets shifted', () => {
  it('masks prompt positions, keeps answer + EOS, and shifts by one', () => {
    const { examples, stats } = encodePromptAnswer(sft([['ab', 'c']]), tok, { contextLength: 16 });
    // full sequence a b c EOS → input a b c; target at t is the token after position t.
    expect(examples[0]).toEqual({ ids: [a, b, c], targets: [X, c, EOS], line: 1 });
    expect(stats).toEqual({ examples: 1, truncated: 0, droppedTokens: 0, targetTokens: 2 });
    // targets[t] == full[t+1] wherever it is not ignored
    const full = [a, b, c, EOS];
    examples[0]?.targets.forEach((t, i) => t !== X && expect(t).toBe(full[i + 1]));
  });

  it('without EOS, and with BOS', () => {
    const noEos = encodePromptAnswer(sft([['ab', 'c']]), tok, { contextLength: 16, appendEos: false });
    expect(noEos.examples[0]).toMatchObject({ ids: [a, b], targets: [X, c] });
    const withBos = encodePromptAnswer(sft([['ab', 'c']]), tok, { contextLength: 16, addBos: true });
    expect(withBos.examples[0]).toMatchObject({ ids: [BOS, a, b, c], targets: [X, X, c, EOS] });
  });

  it('moves trailing whitespace of the prompt into the answer (lm-eval pairing)', () => {
    const { examples } = encodePromptAnswer(sft([['Q: ', 'x']]), tok, { contextLength: 16 });
    const [Q, colon, sp] = ids('Q: ') as [number, number, number];
    expect(examples[0]).toMatchObject({ ids: [Q, colon, sp, x], targets: [X, sp, x, EOS] });
  });

  it('an empty prompt starts from BOS so the first answer token is still a target', () => {
    const { examples } = encodePromptAnswer(sft([['', 'xy']]), tok, { contextLength: 16 });
    expect(examples[0]).toMatchObject({ ids: [BOS, x, y], targets: [x, y, EOS] });
  });

  it('truncates the prompt from the left and keeps the whole answer', () => {
    // C = 4 inputs → 5 tokens fit: answer x y EOS (3) + the last 2 prompt tokens "ef".
    const r = encodePromptAnswer(sft([['abcdef', 'xy']]), tok, { contextLength: 4 });
    expect(r.examples[0]).toMatchObject({ ids: [e, f, x, y], targets: [X, x, y, EOS] });
    expect(r.stats).toMatchObject({ truncated: 1, droppedTokens: 4 });
    // BOS stays first; one prompt token is left.
    const rb = encodePromptAnswer(sft([['abcdef', 'xy']]), tok, { contextLength: 4, addBos: true });
    expect(rb.examples[0]).toMatchObject({ ids: [BOS, f, x, y], targets: [X, x, y, EOS] });
    expect(rb.stats.droppedTokens).toBe(5);
    // Exactly fits: no truncation.
    expect(encodePromptAnswer(sft([['ab', 'xy']]), tok, { contextLength: 4 }).stats.truncated).toBe(0);
  });

  it('too-long when the answer alone cannot fit, naming file and line', () => {
    const ds = sft([
      ['p', 'x'],
      ['p', 'xyz'],
    ]);
    // C = 3: "xyz" + EOS = 4 tokens > 3.
    let err: unknown;
    try {
      encodePromptAnswer(ds, tok, { contextLength: 3 });
    } catch (e2) {
      err = e2;
    }
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).code).toBe('too-long');
    expect((err as DatasetError).line).toBe(2);
    expect((err as DatasetError).message).toMatch(/^train\.jsonl line 2: the answer \(with EOS\) is 4 tokens, more than the context of 3/);
    // C = 4 just fits: one prompt token before the answer.
    expect(encodePromptAnswer(ds, tok, { contextLength: 4 }).examples[1]).toMatchObject({ targets: [x, ids('y')[0], ids('z')[0], EOS] });
  });
});

describe('encodePair', () => {
  it('splits a joint encoding at the context length', () => {
    expect(encodePair(tok, 'ab ', 'c')).toEqual({ ctx: [a, b], cont: ids(' c') });
  });
  it('falls back to separate encodings when a merge crosses the boundary', () => {
    const m = mergingTokenizer();
    expect(m.encode('ab')).toEqual([3]);
    expect(encodePair(m, 'a', 'b')).toEqual({ ctx: [a], cont: [b] });
    expect(encodePair(m, 'xa', 'bab')).toEqual({ ctx: [x, a], cont: [b, 3] });
  });
});

describe('multiple choice', () => {
  it('one example per choice; only the choice tokens are targets; span and chars', () => {
    const { examples } = encodeChoices(mc([['Sky', ['blue', 'é'], 1]]), tok, { contextLength: 32, choiceDelimiter: ' ' });
    expect(examples).toHaveLength(2);
    const [e0, e1] = examples as [(typeof examples)[0], (typeof examples)[0]];
    // "Sky" + " blue": input S k y ␠ b l u, targets on ␠ b l u e (the choice with lm-eval's " " delimiter).
    expect(e0.ids).toEqual(ids('Sky blu'));
    expect(e0.targets).toEqual([X, X, ...ids(' blue')]);
    expect(e0.span).toEqual([2, 7]);
    expect(e0).toMatchObject({ example: 0, choice: 0, label: 1, chars: 4, line: 1 });
    expect(e1).toMatchObject({ choice: 1, chars: 1, span: [2, 4] });
    for (const ex of examples) {
      ex.targets.forEach((t, i) => expect(t !== X).toBe(i >= ex.span[0] && i < ex.span[1]));
    }
  });

  it('by default choices are appended verbatim (files carry the space); acc_norm length skips it', () => {
    const { examples } = encodeChoices(mc([['Sentiment:', [' negative', ' good'], 0]]), tok, { contextLength: 32 });
    expect(examples[1]?.targets.filter((t) => t !== X)).toEqual(ids(' good'));
    expect(examples.map((ex) => ex.chars)).toEqual([8, 4]);
  });

  it('left-truncates the context, keeps the choice; too-long names the choice', () => {
    const r = encodeChoices(mc([['abcdef', ['xy', 'x'], 0]]), tok, { contextLength: 4, choiceDelimiter: '' });
    // C = 4 → 5 tokens fit: choice x y + the last 3 context tokens d e f.
    expect(r.examples[0]?.ids).toEqual([...ids('def'), x]);
    expect(r.examples[0]?.targets).toEqual([X, X, x, y]);
    expect(() => encodeChoices(mc([['c', ['xyzzy', 'x'], 0]]), tok, { contextLength: 4 })).toThrow(
      /task\.jsonl line 1: choice 0 is 5 tokens/,
    );
  });

  it('empty context starts from EOS like lm-eval', () => {
    const r = encodeChoices(mc([['', ['x', 'y'], 0]]), tok, { contextLength: 8, choiceDelimiter: '' });
    expect(r.examples[0]).toMatchObject({ ids: [EOS], targets: [x], span: [0, 1] });
  });
});

describe('language modelling', () => {
  it('concat: documents joined by EOS, chunks of C+1 overlapping by one, every token a target once', () => {
    const { examples, stats } = encodeText(text(['abc', 'de']), tok, { contextLength: 3 });
    const [d] = ids('d') as [number];
    expect(examples).toEqual([
      { ids: [a, b, c], targets: [b, c, EOS], line: 1 },
      // starts on the EOS that ends document 1, so it reports document 1's line
      { ids: [EOS, d, e], targets: [d, e, EOS], line: 1 },
    ]);
    expect(stats.targetTokens).toBe(6);
    const drop = encodeText(text(['abc', 'd']), tok, { contextLength: 3, dropRemainder: true });
    expect(drop.examples).toHaveLength(1);
  });

  it('document: each document alone after a BOS prefix, windows of C', () => {
    const { examples } = encodeText(text(['abc', 'e']), tok, { contextLength: 2, packing: 'document' });
    expect(examples).toEqual([
      { ids: [BOS, a], targets: [a, b], line: 1 },
      { ids: [b], targets: [c], line: 1 },
      { ids: [BOS], targets: [e], line: 3 },
    ]);
  });

  it('text with no tokens to predict is an empty-dataset error', () => {
    expect(() => encodeText(text(['a']), tok, { contextLength: 4, packing: 'document' })).not.toThrow();
    expect(() => encodeText(text(['']), tok, { contextLength: 4 })).toThrow(/corpus\.txt: the text encodes to no tokens/);
  });

  it('encodeDataset dispatches on kind', () => {
    expect(encodeDataset(text(['ab']), tok, { contextLength: 4 }).examples[0]?.targets).toEqual([b, EOS]);
  });
});

describe('batching', () => {
  const exs = encodePromptAnswer(
    sft([
      ['a', 'x'],
      ['abc', 'xy'],
      ['ab', 'y'],
    ]),
    tok,
    { contextLength: 16 },
  ).examples;

  it('pads to the longest in the batch; pad targets are -100', () => {
    const bt = makeBatch(exs, [0, 1]);
    expect(bt.batchSize).toBe(2);
    expect(bt.seqLen).toBe(5);
    expect(Array.from(bt.ids)).toEqual([a, x, 0, 0, 0, a, b, c, x, y]);
    expect(Array.from(bt.targets)).toEqual([x, EOS, X, X, X, X, X, x, y, EOS]);
    expect(bt.targetTokens).toBe(5);
    expect(bt.ids).toBeInstanceOf(Int32Array);
    expect(makeBatch(exs, [0], { padId: 7, padToMultipleOf: 4 }).ids).toEqual(new Int32Array([a, x, 7, 7]));
    expect(makeBatch(exs, [0], { fixedLength: 3 }).seqLen).toBe(3);
    expect(() => makeBatch(exs, [1], { fixedLength: 3 })).toThrow(RangeError);
  });

  it('batches cover every example once, dropLast drops the short tail', () => {
    const bs = makeBatches(exs, { batchSize: 2 });
    expect(bs.map((bt) => bt.indices)).toEqual([[0, 1], [2]]);
    expect(makeBatches(exs, { batchSize: 2, dropLast: true })).toHaveLength(1);
  });

  it('seeded shuffle is deterministic per (seed, epoch) and differs across epochs', () => {
    const o1 = batchOrder(50, { shuffle: true, seed: 7, epoch: 0 });
    expect(batchOrder(50, { shuffle: true, seed: 7, epoch: 0 })).toEqual(o1);
    expect(batchOrder(50, { shuffle: true, seed: 7, epoch: 1 })).not.toEqual(o1);
    expect(batchOrder(50, { shuffle: true, seed: 8, epoch: 0 })).not.toEqual(o1);
    expect([...o1].sort((p, q) => p - q)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(o1).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    const bs1 = makeBatches(exs, { batchSize: 2, shuffle: true, seed: 3, epoch: 2 });
    const bs2 = makeBatches(exs, { batchSize: 2, shuffle: true, seed: 3, epoch: 2 });
    expect(bs1).toEqual(bs2);
  });
});

describe('evaluation order', () => {
  it('sortByLength puts the longest first, stably, and keeps indices', () => {
    const ex = encodePromptAnswer(
      sft([
        ['a', 'x'],
        ['abc', 'x'],
        ['ab', 'x'],
        ['cba', 'x'],
      ]),
      tok,
      { contextLength: 16 },
    ).examples;
    const bs = makeBatches(ex, { batchSize: 2, sortByLength: true });
    expect(bs.map((bt) => bt.indices)).toEqual([
      [1, 3],
      [2, 0],
    ]);
    expect(bs.map((bt) => bt.seqLen)).toEqual([4, 3]);
  });
});
