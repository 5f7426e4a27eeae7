import { describe, expect, it } from 'vitest';
import { encodeChoices, encodeText, makeBatch } from '../../data/batch';
import { mulberry32 } from '../../data/random';
import { EOS, charTokenizer } from '../../data/test-tokenizer';
import { IGNORE_INDEX, type ChoiceDataset, type TextDataset } from '../../data/types';
import {
  aggregateMultipleChoice,
  aggregatePerplexity,
  argmax,
  bitsPerByte,
  choiceLength,
  evaluateMultipleChoice,
  evaluatePerplexity,
  exactMatchAccuracy,
  meanStderr,
  pairedDifference,
  perplexity,
  rowScoresFromLogits,
  scoreChoiceRows,
  scoreChoices,
} from './metrics';

describe('multiple-choice acc / acc_norm (lm-eval definitions)', () => {
  it('hand-computed: acc = 2/3, acc_norm = 1/3, stderr 1/3 each', () => {
    // ex 1: LL [-2, -5], lengths [1, 10], label 0.
    //   acc: argmax(-2, -5) = 0 → right.  norm: -2/1 = -2 vs -5/10 = -0.5 → 1 → wrong.
    // ex 2: LL [-3, -2.5], lengths [4, 2], label 1.
    //   acc: argmax → 1 → right.          norm: -0.75 vs -1.25 → 0 → wrong.
    // ex 3: LL [-4, -3], lengths [5, 1], label 0.
    //   acc: argmax → 1 → wrong.          norm: -0.8 vs -3 → 0 → right.
    // acc = [1,1,0] → 2/3; acc_norm = [0,0,1] → 1/3. Both have sample variance
    // ((1/3)² + (1/3)² + (2/3)²) / (3-1) = (6/9)/2 = 1/3, so stderr = sqrt(1/3)/sqrt(3) = 1/3.
    const r = [scoreChoices([-2, -5], [1, 10], 0), scoreChoices([-3, -2.5], [4, 2], 1), scoreChoices([-4, -3], [5, 1], 0)];
    expect(r.map((x) => [x.pred, x.predNorm, x.acc, x.accNorm])).toEqual([
      [0, 1, 1, 0],
      [1, 0, 1, 0],
      [1, 0, 0, 1],
    ]);
    const m = aggregateMultipleChoice(r);
    expect(m.n).toBe(3);
    expect(m.acc).toBeCloseTo(2 / 3, 12);
    expect(m.accNorm).toBeCloseTo(1 / 3, 12);
    expect(m.accStderr).toBeCloseTo(1 / 3, 12);
    expect(m.accNormStderr).toBeCloseTo(1 / 3, 12);
  });

  it('ties go to the first choice, like np.argmax', () => {
    expect(scoreChoices([-1, -1], [1, 1], 1)).toMatchObject({ pred: 0, predNorm: 0, acc: 0 });
    expect(argmax([NaN, 2, 2])).toBe(1);
    expect(argmax([])).toBe(-1);
  });

  it('choice length counts code points (Python len), not UTF-16 units', () => {
    expect(choiceLength('abc')).toBe(3);
    expect(choiceLength('😀é')).toBe(2);
    expect('😀é'.length).toBe(3);
  });

  it('rejects inconsistent inputs', () => {
    expect(() => scoreChoices([-1], [1, 2], 0)).toThrow(RangeError);
    expect(() => scoreChoices([-1, -2], [1, 2], 2)).toThrow(/label 2/);
    expect(() => scoreChoices([-1, -2], [0, 2], 0)).toThrow(/positive/);
    expect(() => scoreChoiceRows([{ example: 0, choice: 1, label: 0, chars: 1, logLikelihood: 0 }])).toThrow(/choice 0 missing/);
  });

  it('meanStderr: n-1 denominator; NaN below two samples', () => {
    const s = meanStderr([1, 2, 3, 4]);
    expect(s.mean).toBe(2.5);
    expect(s.stderr).toBeCloseTo(Math.sqrt(5 / 3) / 2, 12);
    expect(meanStderr([1]).stderr).toBeNaN();
  });
});

describe('pairedDifference (Δ between two evaluations of the same items)', () => {
  it('is the mean and standard error of per-item differences, by hand', () => {
    // d = b − a = [0, −1, +1, 0]: mean 0, sample sd sqrt(2/3), stderr sqrt(2/3)/2.
    const r = pairedDifference('1100', '1010');
    expect(r.mean).toBe(0);
    expect(r.stderr).toBeCloseTo(Math.sqrt(2 / 3) / 2, 12);
    // Two models that agree everywhere but one item: Δ 1/5, far tighter than two independent 5-item errors.
    const t = pairedDifference('10111', '11111');
    expect(t.mean).toBeCloseTo(0.2, 12);
    expect(t.stderr).toBeCloseTo(Math.sqrt((4 * 0.04 + 0.64) / 4) / Math.sqrt(5), 12);
    expect(pairedDifference('0000', '1111')).toEqual({ n: 4, mean: 1, stderr: 0 });
  });
  it('refuses unpaired or malformed inputs', () => {
    expect(() => pairedDifference('101', '10')).toThrow(/differ in length \(3 vs 2/);
    expect(() => pairedDifference('1x1', '101')).toThrow(/item 1/);
  });
});

describe('perplexity', () => {
  it('exp of mean NLL, pooled over tokens', () => {
    expect(perplexity(4 * Math.LN2, 4)).toBeCloseTo(2, 12);
    const p = aggregatePerplexity([
      { sumNll: 2 * Math.LN2, tokens: 2 },
      { sumNll: 3 * Math.LN2, tokens: 1 },
    ]);
    expect(p.tokens).toBe(3);
    expect(p.perplexity).toBeCloseTo(2 ** (5 / 3), 12);
    expect(bitsPerByte(8 * Math.LN2, 4)).toBeCloseTo(2, 12);
    expect(() => perplexity(1, 0)).toThrow(RangeError);
  });
});

describe('rowScoresFromLogits', () => {
  it('matches a direct float64 log-softmax on fresh random logits; ignores -100', () => {
    const rand = mulberry32(99);
    const B = 3;
    const T = 4;
    const V = 7;
    const logits = Float32Array.from({ length: B * T * V }, () => (rand() - 0.5) * 8);
    const targets = Int32Array.from({ length: B * T }, () => (rand() < 0.3 ? IGNORE_INDEX : Math.floor(rand() * V)));
    const got = rowScoresFromLogits(logits, targets, B, T, V);
    for (let b = 0; b < B; b++) {
      let s = 0;
      let n = 0;
      for (let t = 0; t < T; t++) {
        const y = targets[b * T + t] as number;
        if (y === IGNORE_INDEX) continue;
        const row = Array.from(logits.subarray((b * T + t) * V, (b * T + t + 1) * V));
        const lse = Math.log(row.reduce((acc, z) => acc + Math.exp(z), 0));
        s += (row[y] as number) - lse;
        n++;
      }
      expect(got.sumLogProb[b]).toBeCloseTo(s, 10);
      expect(got.tokens[b]).toBe(n);
    }
  });

  it('greedy exact match per row', () => {
    // V = 3, T = 2. Row 0: argmax 2 at both positions, targets [2, 2] → match.
    // Row 1: targets [IGNORE, 1] with argmax 2 → no match. Row 2: no targets → false.
    const logits = [0, 0, 5, 0, 0, 5, 0, 0, 5, 0, 0, 5, 1, 0, 0, 1, 0, 0];
    const r = rowScoresFromLogits(logits, [2, 2, IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX], 3, 2, 3);
    expect(r.greedyMatch).toEqual([true, false, false]);
    expect(Array.from(r.greedyCorrect)).toEqual([2, 0, 0]);
    expect(exactMatchAccuracy(r.greedyMatch).mean).toBeCloseTo(1 / 3, 12);
  });

  it('end to end with the data layer: batch targets + a bigram model give each choice its log-likelihood', () => {
    // A random bigram "model": logits at a position depend only on the input token there.
    const tok = charTokenizer();
    const V = 140;
    const rand = mulberry32(5);
    const table = Float64Array.from({ length: V * V }, () => (rand() - 0.5) * 6);
    const logp = (prev: number, next: number) => {
      const row = table.subarray(prev * V, (prev + 1) * V);
      const lse = Math.log(row.reduce((acc, z) => acc + Math.exp(z), 0));
      return (row[next] as number) - lse;
    };
    const ds: ChoiceDataset = {
      file: 't.jsonl',
      format: 'jsonl',
      kind: 'mc',
      records: [
        { context: 'the sky is', choices: ['blue', 'green', 'a'], label: 0, line: 1 },
        { context: 'one two', choices: ['three', 'four'], label: 1, line: 2 },
      ],
    };
    const { examples } = encodeChoices(ds, tok, { contextLength: 32, choiceDelimiter: ' ' });
    const batch = makeBatch(
      examples,
      examples.map((_, i) => i),
      { padId: 0 },
    );
    const { batchSize: B, seqLen: T } = batch;
    const logits = new Float32Array(B * T * V);
    for (let i = 0; i < B * T; i++) logits.set(table.subarray((batch.ids[i] as number) * V, ((batch.ids[i] as number) + 1) * V), i * V);
    const rs = rowScoresFromLogits(logits, batch.targets, B, T, V);
    const rows = examples.map((e, i) => ({ ...e, logLikelihood: rs.sumLogProb[i] as number }));
    // Reference: sum of log p(c_k | previous char) over the choice's characters (with the " " delimiter).
    ds.records.forEach((r, ei) => {
      r.choices.forEach((ch, ci) => {
        const s = tok.encode(r.context + ' ' + ch);
        let ll = 0;
        for (let k = tok.encode(r.context).length; k < s.length; k++) ll += logp(s[k - 1] as number, s[k] as number);
        const row = rows.find((x) => x.example === ei && x.choice === ci);
        expect(row?.logLikelihood).toBeCloseTo(ll, 4);
        expect(row?.chars).toBe(choiceLength(ch));
      });
    });
    const results = scoreChoiceRows(rows);
    expect(results).toHaveLength(2);
    const lls0 = rows.filter((x) => x.example === 0).map((x) => x.logLikelihood);
    expect(results[0]?.pred).toBe(argmax(lls0));
  });
});

describe('batched evaluation drivers', () => {
  const tok = charTokenizer();
  const V = 140;
  const rand = mulberry32(17);
  const table = Float32Array.from({ length: V * V }, () => (rand() - 0.5) * 6);
  // Bigram scorer: logits at each position depend only on the input token there.
  const scorer = (batch: import('../../data/batch').Batch) => {
    const { batchSize: B, seqLen: T } = batch;
    const logits = new Float32Array(B * T * V);
    for (let i = 0; i < B * T; i++) logits.set(table.subarray((batch.ids[i] as number) * V, ((batch.ids[i] as number) + 1) * V), i * V);
    return rowScoresFromLogits(logits, batch.targets, B, T, V);
  };

  it('multiple choice: batched result equals scoring every choice alone, for any batch size', async () => {
    const ds: ChoiceDataset = {
      file: 't.jsonl',
      format: 'jsonl',
      kind: 'mc',
      records: Array.from({ length: 7 }, (_, i) => ({
        context: `q${i} is`,
        choices: [' yes', ' no', ' maybe'.slice(0, 2 + (i % 5))],
        label: i % 3,
        line: i + 1,
      })),
    };
    const { examples } = encodeChoices(ds, tok, { contextLength: 32 });
    const alone = await evaluateMultipleChoice(examples, scorer, { batchSize: 1 });
    let progress = 0;
    const batched = await evaluateMultipleChoice(examples, scorer, { batchSize: 4, onProgress: (d) => (progress = d) });
    expect(progress).toBe(Math.ceil(examples.length / 4));
    expect(batched.results).toEqual(alone.results);
    expect(batched.acc).toBe(alone.acc);
    expect(batched.n).toBe(7);
    // and equal to the per-example definition applied by hand
    const byHand = ds.records.map((r, ei) =>
      scoreChoices(
        r.choices.map((_, ci) => {
          const ex = examples.find((x) => x.example === ei && x.choice === ci) as (typeof examples)[number];
          return scorer(makeBatch([ex], [0])).sumLogProb[0] as number;
        }),
        r.choices.map((c) => choiceLength(c.trimStart())),
        r.label,
      ),
    );
    expect(batched.results).toEqual(byHand);
  });

  it('perplexity: pooled over batches equals one pass over the whole stream', async () => {
    const ds: TextDataset = {
      file: 'c.txt',
      format: 'txt',
      kind: 'lm',
      records: [
        { text: 'hello world, a small corpus', line: 1 },
        { text: 'second doc', line: 3 },
      ],
    };
    const { examples } = encodeText(ds, tok, { contextLength: 5 });
    const r = await evaluatePerplexity(examples, scorer, { batchSize: 3 });
    // reference: every next-token log-prob of the EOS-joined stream
    const stream = [...tok.encode('hello world, a small corpus'), EOS, ...tok.encode('second doc'), EOS];
    let nll = 0;
    for (let k = 1; k < stream.length; k++) {
      const row = Array.from(table.subarray((stream[k - 1] as number) * V, ((stream[k - 1] as number) + 1) * V));
      nll -= (row[stream[k] as number] as number) - Math.log(row.reduce((a2, z) => a2 + Math.exp(z), 0));
    }
    expect(r.tokens).toBe(stream.length - 1);
    expect(r.perplexity).toBeCloseTo(Math.exp(nll / (stream.length - 1)), 4);
    expect(r.exactMatch?.n).toBe(examples.length);
  });
});
