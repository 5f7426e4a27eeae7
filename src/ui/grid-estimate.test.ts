import { describe, expect, it } from 'vitest';
import {
  CHARS_PER_TOKEN,
  emulatorShare,
  estimateEvalSeconds,
  estimateGrid,
  sampleTask,
  TRAIN_FACTOR,
  tokensPerRow,
  type GridShape,
} from './grid-estimate';

const base: GridShape = {
  settings: [{ method: 'svd', keep: 0.5 }],
  seeds: 1,
  params: { total: 1000, middle: 600 },
  middleMatrices: 28,
  trainExamples: 64,
  testItems: 100,
  epochs: 1,
  trainTokens: 40,
  testTokens: 70,
  supportExamples: 32,
  seqLen: 128,
  fullFT: false,
};
const cal = { forwardSecPerToken: 1e-4, svdSecondsPerMatrix: 0.02 };

describe('grid estimate', () => {
  it('emulator share: the middle shrinks to keep, the rest stays', () => {
    expect(emulatorShare(base.params, 'svd', 0.5)).toBeCloseTo((1000 - 300) / 1000, 12);
    expect(emulatorShare(base.params, 'none', 0.2)).toBe(1);
    expect(emulatorShare(base.params, 'drop', 0)).toBeCloseTo(0.4, 12);
  });

  it('one svd setting: tune + three evaluations + one SVD per matrix, plus Full ZS once', () => {
    const F = cal.forwardSecPerToken;
    const share = 0.7;
    const tune = TRAIN_FACTOR * 64 * 1 * 40 * F * share;
    const evals = 100 * 70 * F * (2 * share + 1);
    const svd = 28 * 0.02;
    const fullZS = 100 * 70 * F;
    const e = estimateGrid(base, cal);
    expect(e.perSetting[0]).toBeCloseTo(tune + evals + svd, 9);
    expect(e.once).toBeCloseTo(fullZS, 9);
    expect(e.seconds).toBeCloseTo(tune + evals + svd + fullZS, 9);
  });

  it('gradot adds its support pass; prune and drop no SVD; seeds repeat settings, not Full ZS', () => {
    const g = estimateGrid(
      {
        ...base,
        settings: [
          { method: 'gradot', keep: 0.5 },
          { method: 'svd', keep: 0.5 },
          { method: 'prune', keep: 0.5 },
        ],
      },
      cal,
    );
    expect(g.perSetting[0]! - g.perSetting[1]!).toBeCloseTo(TRAIN_FACTOR * 32 * 128 * cal.forwardSecPerToken, 9);
    expect(g.perSetting[1]! - g.perSetting[2]!).toBeCloseTo(28 * 0.02, 9);
    const two = estimateGrid({ ...base, seeds: 2 }, cal);
    const one = estimateGrid(base, cal);
    expect(two.seconds - one.seconds).toBeCloseTo(one.perSetting[0]!, 9);
  });

  it("adds the model's load time to every setting", () => {
    const without = estimateGrid(
      {
        ...base,
        settings: [
          { method: 'svd', keep: 0.5 },
          { method: 'drop', keep: 0.5 },
        ],
      },
      cal,
    );
    const withLoad = estimateGrid(
      {
        ...base,
        settings: [
          { method: 'svd', keep: 0.5 },
          { method: 'drop', keep: 0.5 },
        ],
      },
      { ...cal, loadSeconds: 1.5 },
    );
    expect(withLoad.seconds - without.seconds).toBeCloseTo(3, 9);
  });

  it('grows with examples, tokens and epochs; Full FT adds a whole-model tune and evaluation', () => {
    const one = estimateGrid(base, cal).seconds;
    for (const more of [{ trainExamples: 128 }, { testItems: 200 }, { trainTokens: 80 }, { testTokens: 140 }, { epochs: 2 }]) {
      expect(estimateGrid({ ...base, ...more }, cal).seconds, JSON.stringify(more)).toBeGreaterThan(one);
    }
    const ft = estimateGrid({ ...base, fullFT: true }, cal);
    expect(ft.once - estimateGrid(base, cal).once).toBeCloseTo(
      TRAIN_FACTOR * 64 * 40 * cal.forwardSecPerToken + 100 * 70 * cal.forwardSecPerToken,
      9,
    );
  });

  it('tokens per row: characters over CHARS_PER_TOKEN, capped at the context', () => {
    expect(tokensPerRow(400, 512)).toBe(400 / CHARS_PER_TOKEN);
    expect(tokensPerRow(4000, 128)).toBe(128);
    expect(tokensPerRow(0, 64)).toBe(64);
  });

  it('task sample: rows, characters per row and choices; a cut sample extrapolates', () => {
    const rows = Array.from({ length: 10 }, (_, i) =>
      JSON.stringify({ context: `passage ${i} `.repeat(3), choices: [' a', ' b', ' c'], label: i % 3 }),
    );
    const text = `${rows.join('\n')}\n`;
    const whole = sampleTask(text, text.length);
    expect(whole.rows).toBe(10);
    expect(whole.choices).toBe(3);
    expect(whole.charsPerRow).toBeCloseTo(text.length / 10, 9);
    // The first 4.5 rows of a file 10× as large: the partial row is ignored, the count extrapolated.
    const cut = text.slice(0, Math.floor(text.length * 0.45));
    const big = sampleTask(cut, text.length * 10);
    expect(big.rows).toBeGreaterThan(90);
    expect(big.rows).toBeLessThan(110);
    expect(sampleTask('just text\nmore text\n', 20).choices).toBe(1);
    expect(sampleTask('', 0).rows).toBe(0);
  });
});

describe('estimateEvalSeconds', () => {
  it('counts scored tokens over the forward speed implied by the training speed', () => {
    // 200 items × 2 passes × (120 chars / 4) = 12000 tokens; training 500 tokens/s → forward 1500 tokens/s → 8 s.
    expect(estimateEvalSeconds(200, 120, 2, 500)).toBeCloseTo((200 * 2 * (120 / CHARS_PER_TOKEN)) / (TRAIN_FACTOR * 500), 12);
    expect(estimateEvalSeconds(200, 120, 2, 500)).toBeCloseTo(8, 12);
    // Twice the items or passes, twice the time; twice the speed, half.
    expect(estimateEvalSeconds(400, 120, 2, 500)! / estimateEvalSeconds(200, 120, 2, 500)!).toBeCloseTo(2, 12);
    expect(estimateEvalSeconds(200, 120, 1, 1000)! / estimateEvalSeconds(200, 120, 2, 500)!).toBeCloseTo(0.25, 12);
  });
  it('says nothing without a measured speed or text', () => {
    expect(estimateEvalSeconds(200, 120, 2, 0)).toBeNull();
    expect(estimateEvalSeconds(200, 0, 2, 500)).toBeNull();
    expect(estimateEvalSeconds(0, 120, 2, 500)).toBeNull();
  });
});
